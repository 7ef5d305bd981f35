"""The identity control (textseld.models.text_identity): the text encoder replaced by the identity.

docs/METHOD.md section 5, "The identity control": the placeholder states are the three tokens
(TREP: Linear(3D, K*3*C) on them), A is their concatenation (GREP: Linear(3D, D)-GELU-Linear(D,
K*3*C) on it); no alignment term. The runs themselves are tested in test_train_runs.py.
"""

from __future__ import annotations

import pytest
import torch

from textseld.constants import IDENTITY, N_FEAT_FRAMES, N_LABEL_FRAMES, N_MELS, TEXTS
from textseld.models.config import ModelConfig
from textseld.models.factory import build_model, build_text_encoder
from textseld.models.heads import OUT_DIM, accdoa_activation
from textseld.models.text_identity import NO_TEXT_ENCODER, IdentityTextEncoder


def test_identity_is_a_text_choice_and_needs_the_token_width():
    assert IDENTITY in TEXTS
    enc = build_text_encoder(IDENTITY, width=16)
    assert isinstance(enc, IdentityTextEncoder) and enc.locked and not enc.training
    assert (enc.width, enc.embed_dim) == (16, 48)
    assert enc.weights_info["source"] == NO_TEXT_ENCODER == "identity (no text encoder)"
    assert list(enc.parameters()) == []
    with pytest.raises(ValueError, match="token width"):
        build_text_encoder(IDENTITY)
    with pytest.raises(RuntimeError, match="no sentence embedding"):
        enc.embed_sentences(["a man speaks"])


def test_identity_outputs_are_the_tokens_under_any_template():
    enc = build_text_encoder(IDENTITY, width=8)
    src, doa, dist = (torch.randn(5, 8) for _ in range(3))
    a, hidden = enc.encode_with_tokens(torch.tensor([0, 1, 2, 3, 49]), src, doa, dist)
    assert a.shape == (5, 24) and hidden.shape == (5, 3, 8)
    torch.testing.assert_close(a, torch.cat([src, doa, dist], dim=1), rtol=0, atol=0)
    torch.testing.assert_close(hidden, torch.stack([src, doa, dist], dim=1), rtol=0, atol=0)
    a2, _ = enc.encode_with_tokens(torch.zeros(5, dtype=torch.long), src, doa, dist)
    torch.testing.assert_close(a2, a, rtol=0, atol=0)  # no template enters
    cached = IdentityTextEncoder.encoded_from_tokens(torch.stack([src, doa, dist], dim=1))
    torch.testing.assert_close(cached["A"], a, rtol=0, atol=0)
    torch.testing.assert_close(cached["hidden"], hidden, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        enc.encode_with_tokens(torch.zeros(5, dtype=torch.long), src[:, :4], doa[:, :4], dist[:, :4])


@pytest.mark.parametrize("head", ["grep", "trep"])
def test_the_heads_read_what_method_says(head):
    """GREP: Linear(3D, D)-GELU-Linear(D, K*3*C) on [src, doa, dist]; TREP: Linear(3D, K*3*C) on
    the same concatenation (the placeholder states are the tokens)."""
    cfg = ModelConfig.from_size("tiny")
    d = cfg.token_width
    model = build_model("rcc", IDENTITY, head, cfg, build_text_encoder(IDENTITY, width=d)).eval()
    net = model.head.net
    first = net[0] if head == "grep" else net
    assert (first.in_features, first.out_features) == (3 * d, d if head == "grep" else OUT_DIM)
    if head == "grep":
        assert isinstance(net[1], torch.nn.GELU) and (net[2].in_features, net[2].out_features) == (d, OUT_DIM)
    batch = {k: torch.randn(2, c, N_FEAT_FRAMES, N_MELS) for k, c in (("src", 1), ("doa", 4), ("dist", 2))}
    with torch.no_grad():
        out, aux = model(batch, torch.tensor([3, 7]))
        tokens = torch.stack(model.tokenizer(batch["src"], batch["doa"], batch["dist"]), dim=2)  # (B, L, 3, D)
        expected = accdoa_activation(net(tokens.flatten(-2)), cfg.distance_activation)
    assert out.shape == (2, N_LABEL_FRAMES, OUT_DIM)
    torch.testing.assert_close(aux["hidden"], tokens, rtol=0, atol=0)
    torch.testing.assert_close(aux["A"], tokens.flatten(-2), rtol=0, atol=0)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_the_loss_of_a_control_has_no_alignment_term_even_with_a_trained_tokenizer():
    """With a trainable tokenizer, A of a text system has a gradient and its loss an MAE term;
    a control's run config (alignment_loss false) makes its step ADPIT alone, no sentence asked for."""
    import numpy as np

    from textseld.data.targets import build_targets
    from textseld.recipes import train_section
    from textseld.train.config import TrainConfig
    from textseld.train.rebuild import make_task

    cfg = ModelConfig.from_size("tiny")
    model = build_model("rcc", IDENTITY, "grep", cfg, build_text_encoder(IDENTITY, width=cfg.token_width))
    train_cfg = TrainConfig.from_dict({**train_section("paper", "finetune"), "freeze_tokenizer": False})

    def never(*args):
        raise AssertionError("a ground-truth sentence was asked for")

    task = make_task({"kind": "finetune", "alignment_loss": False}, model, train_cfg, never, never)
    assert task.alignment is False
    batch = {k: torch.randn(2, c, N_FEAT_FRAMES, N_MELS) for k, c in (("src", 1), ("doa", 4), ("dist", 2))}
    batch["target"] = torch.from_numpy(np.stack([build_targets(np.zeros((0, 6)))] * 2)).float()
    batch["index"] = torch.tensor([0, 1])
    losses = task.losses(batch, torch.Generator().manual_seed(0))
    assert "mae" not in losses
    torch.testing.assert_close(losses["loss"].detach(), train_cfg.adpit_weight * losses["adpit"], rtol=1e-6, atol=0)
    losses["loss"].backward()
    assert any(p.grad is not None for p in model.tokenizer.parameters())  # the tokenizer trains on ADPIT
    with_mae = make_task({"kind": "finetune"}, model, train_cfg, never, never)
    with pytest.raises(AssertionError, match="sentence was asked for"):  # a text system's loss would align
        with_mae.losses(batch, torch.Generator().manual_seed(0))
