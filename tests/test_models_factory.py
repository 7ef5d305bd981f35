"""Factory, the full text model (with a fake text encoder following the contract), parameter groups."""

import pytest
import torch
from torch import nn

from textseld.models.config import ModelConfig
from textseld.models.factory import build_baseline, build_model
from textseld.models.systems import PretrainModel, SeldTextModel


class FakeTextEncoder(nn.Module):
    """Follows the TextEncoder contract (docs/INTERFACES.md) with a tiny frozen network:
    A depends on the template and all three tokens; hidden states are per placeholder."""

    def __init__(self, width=16, n_templates=60, embed_dim=24):
        super().__init__()
        self.width, self.embed_dim = width, embed_dim
        self.template = nn.Embedding(n_templates, width)
        self.mix = nn.Linear(width, width)
        self.proj = nn.Linear(width, embed_dim)
        self.calls = []
        self.lock()

    def lock(self):
        for p in self.parameters():
            p.requires_grad = False
        self.eval()
        return self

    def train(self, mode=True):
        return super().train(False)

    @property
    def weights_info(self):
        return {"fake": "random init"}

    def encode_with_tokens(self, template_ids, src, doa, dist):
        self.calls.append(template_ids.clone())
        t = self.template(template_ids)
        hidden = torch.stack([self.mix(src + t), self.mix(doa + t), self.mix(dist + t)], dim=1)
        return self.proj(torch.tanh(hidden.sum(1))), hidden


def batch(b=2):
    g = torch.Generator().manual_seed(1)
    return dict(
        src=torch.randn(b, 1, 251, 64, generator=g),
        doa=torch.randn(b, 4, 251, 64, generator=g),
        dist=torch.randn(b, 2, 251, 64, generator=g),
    )


CFG = ModelConfig.from_size("tiny")


def test_factory_errors_list_valid_names():
    with pytest.raises(ValueError, match="rcc, beats"):
        build_model("cnn", None, "pretrain", CFG)
    with pytest.raises(ValueError, match="pretrain, grep, trep"):
        build_model("rcc", "clip", "mlp", CFG, FakeTextEncoder())
    with pytest.raises(ValueError, match="clip, bert"):
        build_model("rcc", "gpt", "grep", CFG, FakeTextEncoder())
    with pytest.raises(ValueError, match="needs a built"):
        build_model("rcc", "clip", "grep", CFG)
    with pytest.raises(ValueError, match="token_width"):
        build_model("rcc", "bert", "grep", CFG, FakeTextEncoder(width=32))
    with pytest.raises(ValueError, match="no text encoder"):
        build_model("rcc", "clip", "pretrain", CFG)


@pytest.mark.parametrize("source", ["rcc", "beats"])
def test_pretrain_model_shape_and_groups(source):
    model = build_model(source, None, "pretrain", CFG)
    assert isinstance(model, PretrainModel)
    out, aux = model(batch())
    assert out.shape == (2, 50, 117) and aux["tokens"].shape == (2, 50, 3, CFG.token_width)
    groups = model.parameter_groups()
    assert groups["pretrained"] == [] and len(groups["new"]) == sum(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("head", ["grep", "trep"])
def test_text_model_forward_frames_and_templates(head):
    enc = FakeTextEncoder()
    model = build_model("rcc", "clip", head, CFG, enc)
    assert isinstance(model, SeldTextModel)
    out, aux = model(batch(), torch.tensor([3, 41]))
    assert out.shape == (2, 50, 117) and aux["A"].shape == (2, 50, 24) and aux["hidden"].shape == (2, 50, 3, 16)
    # template ids are repeated per frame: B*L calls' worth, clip-major
    assert torch.equal(enc.calls[-1], torch.tensor([3] * 50 + [41] * 50))
    # frame subsampling: shared (L',) and per-clip (B, L') indices match the full output
    model.eval()
    with torch.no_grad():
        full, full_aux = model(batch(), torch.tensor([3, 41]))
        sub, sub_aux = model(batch(), torch.tensor([3, 41]), frames=torch.tensor([0, 9, 49]))
        per, _ = model(batch(), torch.tensor([3, 41]), frames=torch.tensor([[1, 2], [48, 0]]))
    assert sub.shape == (2, 3, 117) and enc.calls[-2].shape == (6,)
    assert torch.allclose(sub, full[:, [0, 9, 49]], atol=1e-6)
    assert torch.allclose(sub_aux["A"], full_aux["A"][:, [0, 9, 49]], atol=1e-6)
    assert torch.allclose(per[0], full[0, [1, 2]], atol=1e-6) and torch.allclose(per[1], full[1, [48, 0]], atol=1e-6)


def test_parameter_groups_partition_and_frozen_encoder_unchanged():
    enc = FakeTextEncoder()
    model = build_model("beats", "bert", "grep", CFG, enc)
    groups = model.parameter_groups()
    ids_pre = {id(p) for p in groups["pretrained"]}
    ids_new = {id(p) for p in groups["new"]}
    assert ids_pre and ids_new and not ids_pre & ids_new
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == ids_pre | ids_new  # each trainable param in exactly one group
    assert not {id(p) for p in enc.parameters()} & (ids_pre | ids_new)
    assert ids_new == {id(p) for p in model.head.parameters()}
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.Adam([{"params": groups["pretrained"], "lr": 1e-3}, {"params": groups["new"], "lr": 1e-2}])
    model.train()
    assert not enc.training and not model.tokenizer.e_src.beats.encoder.training
    out, aux = model(batch(), torch.tensor([0, 1]), frames=torch.tensor([0, 1]))
    (out.square().mean() + aux["A"].abs().mean()).backward()
    opt.step()
    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), n


def test_state_dict_leaves_out_text_encoder_and_reloads():
    model = build_model("rcc", "clip", "trep", CFG, FakeTextEncoder())
    sd = model.state_dict()
    assert sd and not any(k.startswith("text_encoder.") for k in sd)
    other = build_model("rcc", "clip", "trep", CFG, FakeTextEncoder())
    result = other.load_state_dict(sd, strict=True)
    assert not result.missing_keys
    assert all(torch.equal(other.state_dict()[k], v) for k, v in sd.items())
    # a missing tokenizer key is still an error
    del sd[next(k for k in sd if k.startswith("tokenizer."))]
    with pytest.raises(RuntimeError, match="Missing key"):
        other.load_state_dict(sd, strict=True)


def test_pretrained_tokenizer_transfers_to_text_model():
    pre = build_model("rcc", None, "pretrain", CFG)
    model = build_model("rcc", "bert", "grep", CFG, FakeTextEncoder())
    model.tokenizer.load_state_dict(pre.tokenizer.state_dict(), strict=True)


def test_build_baseline():
    model = build_baseline(CFG)
    out, _ = model(batch())
    assert out.shape == (2, 50, 117)


def test_with_the_real_tiny_bert_encoder():
    from textseld.models.factory import build_text_encoder
    from textseld.models.text_config import TextEncoderConfig

    enc = build_text_encoder("bert", TextEncoderConfig.tiny())
    cfg = ModelConfig.from_size("tiny", token_width=enc.width)
    model = build_model("rcc", "bert", "grep", cfg, enc)
    out, aux = model(batch(), torch.tensor([0, 49]), frames=torch.tensor([2, 3]))
    assert out.shape == (2, 2, 117) and aux["A"].shape[:2] == (2, 2)
    out.square().mean().backward()
    assert all(p.grad is None for p in enc.parameters())
    assert model.tokenizer.p_audio.mlp[0].weight.grad.abs().sum() > 0  # gradient reaches the tokens
