"""Conformer (relative positional attention) and the RCC band-token encoder."""

import torch

from textseld.models.config import ModelConfig
from textseld.models.conformer import (
    ConformerBlock,
    RelPositionMultiHeadAttention,
    rel_shift,
    sinusoidal_relative_positions,
)
from textseld.models.rcc import RCCEncoder


def test_rel_shift_picks_distance_i_minus_j():
    length = 6
    x = torch.randn(2, 3, length, 2 * length - 1)
    y = rel_shift(x)
    assert y.shape == (2, 3, length, length)
    for i in range(length):
        for j in range(length):
            # column c of x holds distance (L-1) - c; entry (i, j) needs distance i - j
            assert torch.equal(y[..., i, j], x[..., i, (length - 1) - (i - j)])


def test_position_scores_depend_only_on_distance():
    torch.manual_seed(0)
    attn = RelPositionMultiHeadAttention(8, 2, dropout=0.0)
    # with zero content (q = k = bias only) the scores come from positions alone:
    # a Toeplitz matrix (constant along diagonals)
    for lin in (attn.q, attn.k, attn.v):
        torch.nn.init.zeros_(lin.weight)
    x = torch.zeros(1, 7, 8)
    # the position term exactly as forward() computes it
    rel = sinusoidal_relative_positions(7, 8)
    p = attn.pos(rel).view(13, 2, 4).permute(1, 2, 0)
    q = attn.q(x).view(1, 7, 2, 4)
    pos = rel_shift(torch.matmul((q + attn.bias_v).transpose(1, 2), p))
    for d in range(-6, 7):
        diag = torch.diagonal(pos, offset=d, dim1=-2, dim2=-1)
        assert torch.allclose(diag, diag[..., :1].expand_as(diag), atol=1e-6)
    assert attn(x).shape == (1, 7, 8)


def test_conformer_block_shape_and_grad():
    block = ConformerBlock(16, heads=4, ffn_mult=2, kernel=31, dropout=0.1)
    x = torch.randn(3, 12, 16, requires_grad=True)
    y = block(x)
    assert y.shape == (3, 12, 16)
    y.sum().backward()
    assert block.attn.bias_u.grad is not None and block.attn.bias_u.grad.abs().sum() > 0
    # sequences shorter than the depthwise kernel keep their length
    assert block(torch.randn(2, 4, 16)).shape == (2, 4, 16)


def test_rcc_output_shape_tiny():
    cfg = ModelConfig.from_size("tiny")
    enc = RCCEncoder(4, cfg)
    out = enc(torch.randn(2, 4, 251, 64))
    assert out.shape == (2, 50, 4, cfg.d_model)


def test_rcc_paper_structure():
    cfg = ModelConfig.from_size("paper")
    enc = RCCEncoder(1, cfg)
    assert [b.main[0].out_channels for b in enc.blocks] == [64, 128, 256, 512]
    assert [b.pool for b in enc.blocks] == [(5, 2), (1, 2), (1, 2), (1, 2)]
    assert enc.n_bands == 4 and len(enc.conformer) == 2
    assert enc.input_norm.num_features == 64


def test_rcc_bands_are_independent_sequences():
    # after the CNN, each frequency band is its own time sequence for the conformer
    cfg = ModelConfig.from_size("tiny", dropout=0.0)
    enc = RCCEncoder(1, cfg).eval()
    x = torch.randn(1, 1, 251, 64)
    with torch.no_grad():
        feats = enc.blocks(
            enc.input_norm(x.permute(0, 1, 3, 2).reshape(1, 64, 251)).reshape(1, 1, 64, 251).permute(0, 1, 3, 2)
        )
        ref = enc.conformer(feats[0].permute(2, 1, 0))  # (bands, L, d)
        out = enc(x)[0].transpose(0, 1)  # (bands, L, d)
    assert torch.allclose(out, ref, atol=1e-5)
