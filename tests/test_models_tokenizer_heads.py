"""Tokenizer (multi-feature attention, attentive pooling), heads, baseline."""

import pytest
import torch

from textseld.models.baseline import BaselineCRNN
from textseld.models.config import ModelConfig
from textseld.models.heads import GrepHead, PretrainHead, TrepHead, accdoa_activation
from textseld.models.tokenizer import AttentivePooling, Tokenizer


def batch(b=2):
    g = torch.Generator().manual_seed(0)
    return dict(
        src=torch.randn(b, 1, 251, 64, generator=g),
        doa=torch.randn(b, 4, 251, 64, generator=g),
        dist=torch.randn(b, 2, 251, 64, generator=g),
    )


@pytest.mark.parametrize("source", ["rcc", "beats"])
def test_tokenizer_shapes(source):
    cfg = ModelConfig.from_size("tiny")
    tok = Tokenizer(source, cfg)
    x = batch()
    outs = tok(x["src"], x["doa"], x["dist"])
    assert [o.shape for o in outs] == [(2, 50, cfg.token_width)] * 3
    assert tok.segment.shape == ((3 if source == "rcc" else 2), cfg.d_model)


def test_beats_tokens_bypass_fusion():
    # with a BEATs source the audio stream must not depend on the DOA/distance inputs
    tok = Tokenizer("beats", ModelConfig.from_size("tiny")).eval()
    x = batch(1)
    with torch.no_grad():
        a1, d1, _ = tok(x["src"], x["doa"], x["dist"])
        a2, d2, _ = tok(x["src"], torch.randn_like(x["doa"]), x["dist"])
    assert torch.allclose(a1, a2) and not torch.allclose(d1, d2)
    # ...whereas with an RCC source the fusion conformer mixes the streams
    tok = Tokenizer("rcc", ModelConfig.from_size("tiny")).eval()
    with torch.no_grad():
        a1, _, _ = tok(x["src"], x["doa"], x["dist"])
        a2, _, _ = tok(x["src"], torch.randn_like(x["doa"]), x["dist"])
    assert not torch.allclose(a1, a2)


def test_attentive_pooling_learns_non_uniform_weights():
    torch.manual_seed(0)
    pool = AttentivePooling(8)
    torch.nn.init.zeros_(pool.score.weight)
    torch.nn.init.zeros_(pool.score.bias)
    x = torch.randn(3, 5, 4, 8)
    w = pool.weights(x)
    assert torch.allclose(w, torch.full_like(w, 0.25))  # uniform at zero scores
    assert torch.allclose(pool(x), x.mean(dim=2))
    opt = torch.optim.SGD(pool.parameters(), lr=1.0)
    target = x[:, :, 0]  # favour the first token
    (pool(x) - target).square().mean().backward()
    opt.step()
    w = pool.weights(x)
    assert torch.allclose(w.sum(-1), torch.ones(3, 5))
    assert (w.max(-1).values - w.min(-1).values).min() > 1e-4  # no longer all equal


def test_tokenizer_pooling_weights_not_equal_after_a_step():
    tok = Tokenizer("rcc", ModelConfig.from_size("tiny"))
    for proj in (tok.p_audio, tok.p_doa, tok.p_dist):
        torch.nn.init.zeros_(proj.pool.score.weight)
    opt = torch.optim.Adam(tok.parameters(), lr=1e-2)
    x = batch()
    sum(o.square().mean() for o in tok(x["src"], x["doa"], x["dist"])).backward()
    opt.step()
    tokens = torch.randn(2, 50, 4, tok.p_audio.mlp[0].in_features)
    w = tok.p_audio.pool.weights(tok.p_audio.mlp(tokens))
    assert (w.max(-1).values - w.min(-1).values).mean() > 1e-4


def test_accdoa_activation_ranges_and_layout():
    raw = torch.randn(4, 117) * 5
    out = accdoa_activation(raw).view(4, 3, 3, 13)
    assert out[:, :, :2].abs().max() <= 1 and out[:, :, 2].min() >= 0
    # layout (K, [x, y, d], C): element k*39 + axis*13 + c
    assert out[1, 2, 0, 5] == torch.tanh(raw[1, 2 * 39 + 0 * 13 + 5])
    assert out[1, 2, 2, 5] == torch.relu(raw[1, 2 * 39 + 2 * 13 + 5])


def test_heads_shapes():
    a, hidden = torch.randn(6, 16), torch.randn(6, 3, 16)
    assert GrepHead(16)(a).shape == (6, 117)
    assert TrepHead(16)(a, hidden).shape == (6, 117)
    assert PretrainHead(16)(torch.randn(2, 50, 48)).shape == (2, 50, 117)
    with pytest.raises(ValueError):
        TrepHead(16)(a)
    # TREP depends only on the placeholder states, GREP only on A
    t = TrepHead(16)
    assert torch.equal(t(torch.zeros(6, 16), hidden), t(a, hidden))


def test_baseline_shape_and_param_count():
    cfg = ModelConfig.from_size("paper")
    model = BaselineCRNN(cfg)
    x = batch(2)
    out, aux = model(x)
    assert out.shape == (2, 50, 117) and aux == {}
    assert out.view(2, 50, 3, 3, 13)[:, :, :, 2].min() >= 0
    n = sum(p.numel() for p in model.parameters())
    # conv 2->64, 64->64, 64->64 (~75k) + biGRU(128) x2 layers on 128 inputs (~595k)
    # + 2 MHSA(128) (~132k) + linears (~32k): about 0.8 M, as the DCASE2025 baseline
    assert 6e5 < n < 1.1e6, n
    assert model.gru.input_size == 64 * 2  # 64 bands / (4*4*2) = 2 bands x 64 filters
    small = BaselineCRNN(ModelConfig.from_size("tiny"))
    assert small(x, frames=torch.tensor([0, 7]))[0].shape == (2, 2, 117)
    with pytest.raises(ValueError, match="logmel_lr"):
        small.forward_features(torch.randn(1, 3, 251, 64))


# ------------------------------------------------------------- distance output that cannot stay dead
_D, _CLS, _DIST = 16, 3, 3.17


def _overfit_one_clip(activation: str, steps: int = 40) -> tuple[float, float, float]:
    """Fit the pretraining head alone to one single-event clip (docs/METHOD.md section 3): the
    case BENCHMARKS describes, where one of the three tracks' distance ReLU dies.

    Its inputs share a positive component, as features after a ReLU/GELU layer do, so a unit's
    pre-activation has one sign on every frame. Returns (relative distance error of the mean
    of the three tracks before, after, fraction of the active class's distance units dead).
    """
    import math

    from textseld.constants import N_ADPIT_SLOTS, N_CLASSES, N_LABEL_FRAMES, N_TRACKS
    from textseld.losses import adpit_loss
    from textseld.models.heads import distance_values, live_distance_units

    torch.manual_seed(0)
    head = PretrainHead(_D, activation)
    x = 1.0 + 0.1 * torch.randn(1, N_LABEL_FRAMES, 3 * _D)
    target = torch.zeros(1, N_LABEL_FRAMES, N_ADPIT_SLOTS, 4, N_CLASSES)
    target[0, :, 0, :, _CLS] = torch.tensor([1.0, math.cos(0.5), math.sin(0.5), _DIST])

    def error() -> float:
        with torch.no_grad():
            d = distance_values(head(x))[0].reshape(N_LABEL_FRAMES, N_TRACKS, N_CLASSES)[:, :, _CLS]
        return float((d.mean(1) - _DIST).abs().mean() / _DIST)

    before = error()
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = adpit_loss(head(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        live = live_distance_units(head(x)).reshape(N_TRACKS, N_CLASSES)[:, _CLS]
    return before, error(), float((~live).float().mean())


def test_relu_distance_stays_dead_on_a_one_clip_overfit():
    before, after, dead = _overfit_one_clip("relu")
    assert dead >= 1 / 3  # a track outputs distance 0 on every frame
    assert after > 0.2, (before, after)  # and the distance error stays large


def test_softplus_distance_does_not_stay_dead_and_its_error_falls():
    before, after, dead = _overfit_one_clip("softplus")
    assert dead == 0.0
    assert after < 0.1 and after < before / 5, (before, after)


def test_distance_activation_reaches_every_head_and_the_baseline():
    from textseld.models.factory import build_baseline, build_model

    cfg = ModelConfig.from_size("tiny", distance_activation="softplus")
    assert build_model("rcc", None, "pretrain", cfg).head.distance_activation == "softplus"
    assert build_baseline(cfg).distance_activation == "softplus"
    for head in (GrepHead, TrepHead):
        assert head(8, None, "softplus").distance_activation == "softplus"
    raw = -torch.ones(2, 117)  # negative pre-activations: ReLU gives 0, softplus log(1 + e^-1)
    assert torch.all(accdoa_activation(raw).reshape(2, 3, 3, 13)[:, :, 2] == 0)
    assert torch.all(accdoa_activation(raw, "softplus").reshape(2, 3, 3, 13)[:, :, 2] > 0)
    assert ModelConfig.from_size("tiny").distance_activation == "relu"
    with pytest.raises(ValueError, match="distance_activation"):
        ModelConfig.from_size("tiny", distance_activation="elu")
