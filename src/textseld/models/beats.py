"""BEATs transformer (Chen et al. 2022), our own implementation, loading the official checkpoint.

Module and parameter names follow the official `BEATs.py` / `backbone.py`
exactly, so `BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt` (a dict with
`cfg` and `model`) loads with strict=True:

    patch_embedding.weight                       (embed_dim, 1, 16, 16)
    layer_norm.{weight,bias}                     (embed_dim,)
    post_extract_proj.{weight,bias}              (768, embed_dim)
    encoder.pos_conv.0.{bias,weight_g,weight_v}  weight-norm parametrised grouped conv
    encoder.layer_norm.{weight,bias}
    encoder.layers.N.self_attn.{k,v,q,out}_proj.{weight,bias}
    encoder.layers.N.self_attn.grep_linear.{weight,bias}, .grep_a
    encoder.layers.N.self_attn.relative_attention_bias.weight  (shared by all layers)
    encoder.layers.N.{self_attn_layer_norm,fc1,fc2,final_layer_norm}.*
    predictor.{weight,bias}                      (finetuned checkpoints only)

The SELD adaptation (`BeatsEncoder`) swaps the 16x16 patch embedding for a
(5, 16) one (bilinear resize of the pretrained kernel), so a (1, 251, 64)
source feature becomes 4 frequency-band rows of 50 time patches; each row
runs through the frozen transformer as one sequence.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from textseld.models.config import ModelConfig

log = logging.getLogger(__name__)

# The official BEATsConfig defaults, then the values of the released iter3+ checkpoints.
BEATS_DEFAULTS: dict[str, Any] = dict(
    input_patch_size=16,
    embed_dim=512,
    conv_bias=False,
    encoder_layers=12,
    encoder_embed_dim=768,
    encoder_ffn_embed_dim=3072,
    encoder_attention_heads=12,
    activation_fn="gelu",
    layer_norm_first=False,
    deep_norm=True,
    dropout=0.1,
    attention_dropout=0.1,
    activation_dropout=0.0,
    encoder_layerdrop=0.05,
    dropout_input=0.0,
    conv_pos=128,
    conv_pos_groups=16,
    relative_position_embedding=True,
    num_buckets=320,
    max_distance=800,
    gru_rel_pos=True,
    finetuned_model=True,
    predictor_dropout=0.0,
    predictor_class=527,
)
BEATS_TINY: dict[str, Any] = dict(
    BEATS_DEFAULTS,
    embed_dim=16,
    encoder_layers=2,
    encoder_embed_dim=32,
    encoder_ffn_embed_dim=64,
    encoder_attention_heads=4,
    conv_pos=16,
    conv_pos_groups=4,
    num_buckets=32,
    max_distance=64,
    predictor_class=7,
)
# A CPU-sized stand-in for the embedded default (no checkpoint: random init, recorded as such).
BEATS_SMALL: dict[str, Any] = dict(
    BEATS_DEFAULTS,
    embed_dim=64,
    encoder_layers=2,
    encoder_embed_dim=128,
    encoder_ffn_embed_dim=256,
    encoder_attention_heads=4,
    conv_pos=32,
    conv_pos_groups=8,
    num_buckets=64,
    max_distance=128,
)
_USED_KEYS = set(BEATS_DEFAULTS)


def beats_arch(name: str) -> dict[str, Any]:
    """Architecture dict for `name` ("base" = the released model, "small" = CPU default, "tiny" = tests)."""
    return dict({"base": BEATS_DEFAULTS, "small": BEATS_SMALL, "tiny": BEATS_TINY}[name])


def relative_position_bucket(rel: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5-style bidirectional log buckets of relative positions (key - query), as BEATs uses."""
    half = num_buckets // 2
    bucket = (rel > 0).long() * half
    rel = rel.abs()
    exact = half // 2
    # clamp inside the log only to avoid log(0); those entries take the exact branch
    large = (
        exact + (torch.log(rel.clamp(min=1).float() / exact) / math.log(max_distance / exact) * (half - exact)).long()
    )
    large = large.clamp(max=half - 1)
    return bucket + torch.where(rel < exact, rel, large)


class WeightNormConv1d(nn.Module):
    """Grouped Conv1d with weight = v * g / ||v|| (norm over all dims but 2), named like torch's weight_norm.

    Implemented directly (not with torch's parametrizations, whose state-dict
    names differ) so the checkpoint's `weight_g` / `weight_v` load as they are.
    """

    def __init__(self, channels: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.weight_v = nn.Parameter(torch.randn(channels, channels // groups, kernel) * 0.02)
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True).clone())
        self.bias = nn.Parameter(torch.zeros(channels))
        self.kernel, self.groups = kernel, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        y = F.conv1d(x, weight, self.bias, padding=self.kernel // 2, groups=self.groups)
        # an even kernel with padding k//2 yields one extra step: drop it ("SamePad")
        return y[..., :-1] if self.kernel % 2 == 0 else y


class BeatsAttention(nn.Module):
    """Self-attention with BEATs' gated relative position bias. x: (N, S, E) -> (N, S, E)."""

    def __init__(self, a: dict, has_bias_table: bool) -> None:
        super().__init__()
        e, h = a["encoder_embed_dim"], a["encoder_attention_heads"]
        self.heads, self.dh = h, e // h
        self.k_proj, self.v_proj = nn.Linear(e, e), nn.Linear(e, e)
        self.q_proj, self.out_proj = nn.Linear(e, e), nn.Linear(e, e)
        self.num_buckets, self.max_distance = a["num_buckets"], a["max_distance"]
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(a["num_buckets"], h)
        self.gru_rel_pos = a["gru_rel_pos"]
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.dh, 8)
            self.grep_a = nn.Parameter(torch.ones(1, h, 1, 1))
        self.drop = nn.Dropout(a["attention_dropout"])

    def position_bias(self, length: int, device) -> torch.Tensor:
        """(H, S, S) bias from the (shared) bucket table."""
        pos = torch.arange(length, device=device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        n, s, e = x.shape
        q = self.q_proj(x).view(n, s, self.heads, self.dh).transpose(1, 2)  # (N, H, S, dh)
        k = self.k_proj(x).view(n, s, self.heads, self.dh).transpose(1, 2)
        v = self.v_proj(x).view(n, s, self.heads, self.dh).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh)  # (N, H, S, S)
        if bias is not None:
            if self.gru_rel_pos:
                # query-dependent gate on the shared bias: 8 outputs summed in two groups of 4
                gates = torch.sigmoid(self.grep_linear(q).view(n, self.heads, s, 2, 4).sum(-1))
                gate_a, gate_b = gates[..., :1], gates[..., 1:]
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias  # (N, H, S, S)
            scores = scores + bias
        attn = self.drop(scores.softmax(dim=-1))
        return self.out_proj(torch.matmul(attn, v).transpose(1, 2).reshape(n, s, e))


class BeatsLayer(nn.Module):
    """Post-LN (deep-norm) transformer layer. x: (N, S, E) -> (N, S, E)."""

    def __init__(self, a: dict, has_bias_table: bool) -> None:
        super().__init__()
        e = a["encoder_embed_dim"]
        if a["layer_norm_first"] or a["activation_fn"] != "gelu":
            raise ValueError("only the released BEATs variant (post-LN, gelu) is implemented")
        self.self_attn = BeatsAttention(a, has_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(e)
        self.fc1 = nn.Linear(e, a["encoder_ffn_embed_dim"])
        self.fc2 = nn.Linear(a["encoder_ffn_embed_dim"], e)
        self.final_layer_norm = nn.LayerNorm(e)
        self.alpha = math.pow(2 * a["encoder_layers"], 0.25) if a["deep_norm"] else 1.0
        self.drop = nn.Dropout(a["dropout"])
        self.act_drop = nn.Dropout(a["activation_dropout"])

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn_layer_norm(x * self.alpha + self.drop(self.self_attn(x, bias)))
        y = self.fc2(self.act_drop(F.gelu(self.fc1(x))))
        return self.final_layer_norm(x * self.alpha + self.drop(y))


class BeatsTransformer(nn.Module):
    """`encoder.*` of BEATs: conv positional embedding, LayerNorm, layers. (N, S, E) -> (N, S, E)."""

    def __init__(self, a: dict) -> None:
        super().__init__()
        e = a["encoder_embed_dim"]
        self.pos_conv = nn.Sequential(WeightNormConv1d(e, a["conv_pos"], a["conv_pos_groups"]))
        self.layer_norm = nn.LayerNorm(e)
        rel = a["relative_position_embedding"]
        self.layers = nn.ModuleList([BeatsLayer(a, has_bias_table=rel and i == 0) for i in range(a["encoder_layers"])])
        if rel:
            # One table shared by every layer (registered in each, as the official model does,
            # so every layer's copy appears in the state dict).
            for i in range(1, len(self.layers)):
                self.attention(i).relative_attention_bias = self.attention(0).relative_attention_bias
        self.relative = rel
        self.layerdrop = a["encoder_layerdrop"]
        self.drop = nn.Dropout(a["dropout"])

    def attention(self, i: int) -> BeatsAttention:
        """The self-attention module of layer i."""
        return cast(BeatsLayer, self.layers[i]).self_attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + F.gelu(self.pos_conv(x.transpose(1, 2))).transpose(1, 2)
        x = self.drop(self.layer_norm(x))
        # Only layer 0's bias is ever computed; the others gate that same bias.
        bias = self.attention(0).position_bias(x.shape[1], x.device)[None] if self.relative else None
        for layer in self.layers:
            if self.training and self.layerdrop > 0 and torch.rand(()) < self.layerdrop:
                continue
            x = layer(x, bias)
        return x


class BEATs(nn.Module):
    """The official BEATs module tree (patch embedding, LayerNorm, projection, encoder, predictor).

    forward(fbank (B, 1, T, F)) -> patch tokens (B, N, E), N = (T/pt)*(F/pf), time-major.
    """

    def __init__(self, arch: dict) -> None:
        super().__init__()
        a = dict(BEATS_DEFAULTS, **arch)
        self.arch = a
        p = a["input_patch_size"]
        self.patch_embedding = nn.Conv2d(1, a["embed_dim"], p, stride=p, bias=a["conv_bias"])
        self.layer_norm = nn.LayerNorm(a["embed_dim"])
        self.post_extract_proj = (
            nn.Linear(a["embed_dim"], a["encoder_embed_dim"]) if a["embed_dim"] != a["encoder_embed_dim"] else None
        )
        self.encoder = BeatsTransformer(a)
        # kept only so finetuned checkpoints load strictly; the SELD model does not use it
        self.predictor = nn.Linear(a["encoder_embed_dim"], a["predictor_class"]) if a["finetuned_model"] else None

    def embed(self, fbank: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, F) -> (B, T', F', E) patch tokens before the transformer."""
        x = self.patch_embedding(fbank).permute(0, 2, 3, 1)  # (B, T', F', embed_dim)
        x = self.layer_norm(x)
        return self.post_extract_proj(x) if self.post_extract_proj is not None else x

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = self.embed(fbank)
        b, t, f, e = x.shape
        return self.encoder(x.reshape(b, t * f, e))


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """Read an official BEATs checkpoint -> (architecture dict, state dict).

    The file is a dict {"cfg": plain dict of numbers/strings/bools, "model":
    state dict}; all of it loads with torch.load(weights_only=True), so no
    pickle code runs. Unknown cfg keys (training options) are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BEATs checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to read it: re-raised with the file named
        raise ValueError(f"{path}: cannot be read with torch.load(weights_only=True): {exc}") from exc
    if not isinstance(ckpt, dict) or "cfg" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path}: expected a dict with keys 'cfg' and 'model' (an official BEATs checkpoint)")
    arch = {k: v for k, v in dict(ckpt["cfg"]).items() if k in _USED_KEYS}
    return dict(BEATS_DEFAULTS, **arch), ckpt["model"]


def resize_patch_kernel(weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (out, in, kh, kw) conv kernel to (out, in, *size); a constant kernel stays constant."""
    return F.interpolate(weight, size=tuple(size), mode="bilinear", align_corners=False)


class BeatsEncoder(nn.Module):
    """BEATs as the SELD source encoder.

    forward(src (B, 1, T, F)) -> (B, L, n_bands, E) band tokens, with
    L = T // patch_t and n_bands = F // patch_f ((50, 4) for T=251, F=64).
    Trainable: the new patch embedding and post_extract_proj. Everything else
    is frozen and stays in eval mode whatever `.train()` is called with.
    `weights_info` records the checkpoint file or "random init".
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.beats_checkpoint:
            arch, state = load_checkpoint(cfg.beats_checkpoint)
            self.beats = BEATs(arch)
            self.beats.load_state_dict(state, strict=True)
            self.weights_info = {"beats": str(cfg.beats_checkpoint)}
            log.info("BEATs weights loaded from %s", cfg.beats_checkpoint)
        else:
            self.beats = BEATs(beats_arch(cfg.beats_arch))
            self.weights_info = {"beats": "random init"}
            log.warning("BEATs has no checkpoint (models.beats_checkpoint is null): random init")
        old = self.beats.patch_embedding
        self.beats.patch_embedding = nn.Conv2d(
            1, old.out_channels, tuple(cfg.beats_patch), stride=tuple(cfg.beats_patch), bias=old.bias is not None
        )
        with torch.no_grad():
            self.beats.patch_embedding.weight.copy_(resize_patch_kernel(old.weight, cfg.beats_patch))
            new_bias = self.beats.patch_embedding.bias  # present exactly when old.bias is
            if old.bias is not None and new_bias is not None:
                new_bias.copy_(old.bias)
        self.input_scale = float(cfg.beats_input_scale)
        self.width = self.beats.arch["encoder_embed_dim"]
        for name, p in self.beats.named_parameters():
            p.requires_grad = name.startswith(("patch_embedding.", "post_extract_proj."))
        self.train()

    def frozen_modules(self) -> list[nn.Module]:
        """The parts that never train (and never leave eval mode)."""
        return [m for m in (self.beats.layer_norm, self.beats.encoder, self.beats.predictor) if m is not None]

    def train(self, mode: bool = True) -> BeatsEncoder:
        super().train(mode)
        for m in self.frozen_modules():
            m.eval()
        return self

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        x = self.beats.embed(src * self.input_scale)  # (B, L, bands, E)
        b, frames, bands, e = x.shape
        x = x.transpose(1, 2).reshape(b * bands, frames, e)  # each band row is one sequence
        x = self.beats.encoder(x)
        return x.reshape(b, bands, frames, e).transpose(1, 2)  # (B, L, bands, E)
