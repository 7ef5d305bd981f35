"""BEATs: official parameter names/shapes, strict checkpoint loading, patch resize, freezing."""

import pytest
import torch

from textseld.models.beats import BEATs, BeatsEncoder, beats_arch, relative_position_bucket, resize_patch_kernel
from textseld.models.config import ModelConfig


def official_shapes(
    n_layers, embed=512, width=768, ffn=3072, heads=12, conv_pos=128, groups=16, buckets=320, classes=527, patch=16
):
    """Names and shapes of the official BEATs (iter3+, finetuned) state dict, written out by hand
    from the official architecture (BEATs.py / backbone.py), not from our module tree."""
    s = {
        "patch_embedding.weight": (embed, 1, patch, patch),
        "layer_norm.weight": (embed,),
        "layer_norm.bias": (embed,),
        "post_extract_proj.weight": (width, embed),
        "post_extract_proj.bias": (width,),
        "encoder.pos_conv.0.bias": (width,),
        "encoder.pos_conv.0.weight_g": (1, 1, conv_pos),
        "encoder.pos_conv.0.weight_v": (width, width // groups, conv_pos),
        "encoder.layer_norm.weight": (width,),
        "encoder.layer_norm.bias": (width,),
        "predictor.weight": (classes, width),
        "predictor.bias": (classes,),
    }
    for i in range(n_layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            s[p + f"self_attn.{proj}.weight"] = (width, width)
            s[p + f"self_attn.{proj}.bias"] = (width,)
        s[p + "self_attn.grep_linear.weight"] = (8, width // heads)
        s[p + "self_attn.grep_linear.bias"] = (8,)
        s[p + "self_attn.grep_a"] = (1, heads, 1, 1)
        s[p + "self_attn.relative_attention_bias.weight"] = (buckets, heads)
        for ln in ("self_attn_layer_norm", "final_layer_norm"):
            s[p + f"{ln}.weight"] = (width,)
            s[p + f"{ln}.bias"] = (width,)
        s[p + "fc1.weight"] = (ffn, width)
        s[p + "fc1.bias"] = (ffn,)
        s[p + "fc2.weight"] = (width, ffn)
        s[p + "fc2.bias"] = (width,)
    return s


TINY = dict(embed=16, width=32, ffn=64, heads=4, conv_pos=16, groups=4, buckets=32, classes=7)


def test_base_architecture_matches_official_names_and_shapes():
    with torch.device("meta"):
        model = BEATs(beats_arch("base"))
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == official_shapes(12)
    state = {k: torch.empty(v, device="meta") for k, v in official_shapes(12).items()}
    model.load_state_dict(state, strict=True, assign=True)


def test_two_layer_architecture_matches_official_names():
    arch = dict(beats_arch("tiny"))
    model = BEATs(arch)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == official_shapes(2, **TINY)


def make_checkpoint(path, cfg_extra=None):
    torch.manual_seed(0)
    shapes = official_shapes(2, **TINY)
    state = {k: torch.randn(v) for k, v in shapes.items()}
    # the official model shares one bucket table between layers
    state["encoder.layers.1.self_attn.relative_attention_bias.weight"] = state[
        "encoder.layers.0.self_attn.relative_attention_bias.weight"
    ]
    state["encoder.pos_conv.0.weight_g"] = state["encoder.pos_conv.0.weight_g"].abs()
    cfg = dict(beats_arch("tiny"))
    cfg.update({"layer_wise_gradient_decay_ratio": 0.6, "mask_prob": 0.8})  # training keys: ignored
    cfg.update(cfg_extra or {})
    torch.save({"cfg": cfg, "model": state}, path)
    return state


def test_encoder_loads_checkpoint_strictly_with_weights_only(tmp_path):
    path = tmp_path / "beats.pt"
    state = make_checkpoint(path)
    torch.load(path, weights_only=True)  # the file format itself is weights_only-safe
    enc = BeatsEncoder(ModelConfig.from_size("tiny", beats_checkpoint=str(path)))
    assert enc.weights_info == {"beats": str(path)}
    loaded = enc.beats.state_dict()
    for k, v in state.items():
        if k != "patch_embedding.weight":
            assert torch.equal(loaded[k], v), k
    assert loaded["patch_embedding.weight"].shape == (16, 1, 5, 16)
    assert torch.allclose(
        loaded["patch_embedding.weight"], resize_patch_kernel(state["patch_embedding.weight"], (5, 16))
    )


def test_bad_checkpoint_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        BeatsEncoder(ModelConfig.from_size("tiny", beats_checkpoint=str(tmp_path / "nope.pt")))
    bad = tmp_path / "bad.pt"
    torch.save({"weights": {}}, bad)
    with pytest.raises(ValueError, match="bad.pt"):
        BeatsEncoder(ModelConfig.from_size("tiny", beats_checkpoint=str(bad)))
    wrong = tmp_path / "wrong.pt"
    make_checkpoint(wrong, {"encoder_layers": 3})  # cfg says 3 layers, state has 2
    with pytest.raises(RuntimeError, match="Missing key"):
        BeatsEncoder(ModelConfig.from_size("tiny", beats_checkpoint=str(wrong)))


def test_patch_resize_keeps_constants_and_shape():
    w = torch.full((3, 1, 16, 16), 0.25)
    r = resize_patch_kernel(w, (5, 16))
    assert r.shape == (3, 1, 5, 16)
    assert torch.allclose(r, torch.full_like(r, 0.25))
    # a ramp along time stays monotone; frequency (unchanged size) is copied exactly
    ramp = torch.arange(16.0).view(1, 1, 16, 1).expand(1, 1, 16, 16)
    rr = resize_patch_kernel(ramp, (5, 16))
    assert (rr[0, 0, 1:, 0] > rr[0, 0, :-1, 0]).all()
    assert torch.allclose(rr[0, 0, :, 0], rr[0, 0, :, 15])


def test_random_init_output_shape_and_record():
    enc = BeatsEncoder(ModelConfig.from_size("tiny"))
    assert enc.weights_info == {"beats": "random init"}
    out = enc(torch.randn(2, 1, 251, 64))
    assert out.shape == (2, 50, 4, 32)


def test_transformer_frozen_and_eval_even_in_train_mode():
    enc = BeatsEncoder(ModelConfig.from_size("tiny"))
    parent = torch.nn.Sequential(enc)
    parent.train()
    assert enc.beats.patch_embedding.training
    assert not enc.beats.encoder.training and not any(m.training for m in enc.beats.encoder.modules())
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {
        "beats.patch_embedding.weight",
        "beats.post_extract_proj.weight",
        "beats.post_extract_proj.bias",
    }
    # eval + frozen: two forward passes agree (no dropout / layer drop) and an optimiser
    # step moves only the trainable parameters
    x = torch.randn(1, 1, 251, 64)
    assert torch.equal(enc(x), enc(x))
    before = {n: p.detach().clone() for n, p in enc.named_parameters()}
    opt = torch.optim.SGD([p for p in enc.parameters() if p.requires_grad], lr=0.1)
    enc(x).square().mean().backward()
    opt.step()
    for n, p in enc.named_parameters():
        assert torch.equal(p, before[n]) != (n in trainable), n


def test_relative_position_buckets():
    rel = torch.arange(-1000, 1001)
    b = relative_position_bucket(rel, 320, 800)
    assert b.min() >= 0 and b.max() <= 319
    assert b[1000] == 0  # distance 0
    assert b[1001] == 161 and b[999] == 1  # +1 in the upper half, -1 in the lower
    assert b[-1] == 319 and b[0] == 159  # far distances saturate
    assert (b[1000:].diff() >= 0).all()  # monotone in distance


def test_shared_bias_table_is_one_parameter():
    model = BEATs(beats_arch("tiny"))
    tables = {id(layer.self_attn.relative_attention_bias.weight) for layer in model.encoder.layers}
    assert len(tables) == 1


def test_band_rows_are_separate_sequences_and_gate_is_wired():
    enc = BeatsEncoder(ModelConfig.from_size("tiny")).eval()
    x = torch.randn(1, 1, 251, 64)
    y = x.clone()
    y[..., :16] = torch.randn(1, 1, 251, 16)  # change only the lowest band (kernel width 16)
    with torch.no_grad():
        a, b = enc(x), enc(y)
        assert not torch.allclose(a[:, :, 0], b[:, :, 0])
        assert torch.allclose(a[:, :, 1:], b[:, :, 1:], atol=1e-6)
        for layer in enc.beats.encoder.layers:
            layer.self_attn.grep_a.fill_(3.0)
        assert not torch.allclose(enc(x), a)


def test_deep_norm_alpha():
    with torch.device("meta"):
        model = BEATs(beats_arch("base"))
    assert model.encoder.layers[0].alpha == pytest.approx(24**0.25)
