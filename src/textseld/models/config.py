"""Model configuration: one dataclass, three sizes, strict construction from dicts.

`ModelConfig.from_size("paper")` is docs/METHOD.md section 5; "small" is the embedded
CPU default (the whole default grid, 11 models, trains in minutes on two
cores); "tiny" makes every component run in milliseconds for tests.
The workflow's `models` config section is a plain dict handed to
`ModelConfig.from_dict`, which rejects unknown keys by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

SIZES = ("tiny", "small", "paper")
BEATS_ARCHS = ("base", "small", "tiny")
# The distance output's activation (docs/METHOD.md section 3 prescribes ReLU): "softplus" keeps a
# gradient on every frame, so a distance unit whose pre-activation went negative can come back.
DISTANCE_ACTIVATIONS = ("relu", "softplus")


@dataclass
class ModelConfig:
    """Every size knob of the tokenizer, the heads and the baseline.

    `token_width` is D, the width of the three token streams; it must equal the
    text encoder's width when a text encoder is attached (a pretrained
    tokenizer is reused by both CLIP and BERT finetunings, so both encoders
    must share it: 512 in the paper setup).
    """

    # RCC encoders (E_doa, E_dist and E_src in the RCC variant)
    rcc_channels: tuple = (64, 128, 256, 512)
    rcc_pools: tuple = ((5, 2), (1, 2), (1, 2), (1, 2))
    d_model: int = 512  # conformer width of the RCC and fusion blocks
    n_heads: int = 8
    ffn_mult: int = 2
    conv_kernel: int = 31
    dropout: float = 0.1
    rcc_conformer_blocks: int = 2
    fusion_conformer_blocks: int = 2
    # projections P_audio, P_doa, P_dist
    token_width: int = 512  # D
    proj_hidden: int | None = None  # hidden width of the projection MLPs; None = D
    # BEATs source encoder
    beats_checkpoint: str | None = None  # official .pt file; None = random init (recorded)
    beats_arch: str = "base"  # architecture used without a checkpoint (base | small | tiny)
    beats_patch: tuple = (5, 16)  # (time, freq) kernel = stride of the new patch embedding
    beats_input_scale: float = 0.5  # BEATs saw fbanks divided by 2*std; our inputs have std 1
    # DCASE2025 baseline CRNN
    baseline_filters: int = 64
    baseline_pools: tuple = ((5, 4), (1, 4), (1, 2))
    baseline_rnn: int = 128
    baseline_rnn_layers: int = 2
    baseline_attn_blocks: int = 2
    baseline_heads: int = 8
    baseline_fc: int = 128
    baseline_dropout: float = 0.05
    # output layer of every head and of the baseline: activation of the distance values
    distance_activation: str = "relu"

    # ------------------------------------------------------------------ build
    @classmethod
    def from_size(cls, size: str, **overrides: Any) -> ModelConfig:
        """The preset `size` in SIZES with `overrides` (same keys as the fields) applied."""
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; expected one of {', '.join(SIZES)}")
        base: dict[str, Any] = {}
        if size == "small":
            base = dict(
                rcc_channels=(16, 32, 32, 64),
                d_model=64,
                n_heads=4,
                rcc_conformer_blocks=1,
                fusion_conformer_blocks=1,
                token_width=512,
                proj_hidden=128,
                beats_arch="small",
                baseline_filters=32,
                baseline_rnn=64,
                baseline_fc=64,
                baseline_heads=4,
            )
        elif size == "tiny":
            base = dict(
                rcc_channels=(4, 8, 8, 16),
                d_model=16,
                n_heads=2,
                conv_kernel=7,
                rcc_conformer_blocks=1,
                fusion_conformer_blocks=1,
                token_width=16,
                beats_arch="tiny",
                baseline_filters=8,
                baseline_rnn=16,
                baseline_fc=16,
                baseline_heads=2,
            )
        base.update(overrides)
        return cls.from_dict(base)

    @classmethod
    def from_dict(cls, values: dict | None, size: str | None = None) -> ModelConfig:
        """Build from a plain dict (the `models` config section), on top of `size` if given.

        A `size` key inside `values` selects the preset too. Unknown keys raise
        ValueError naming the key and listing the valid ones.
        """
        values = dict(values or {})
        size = values.pop("size", size)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValueError(
                f"unknown model config key(s) {', '.join(map(repr, unknown))}; valid keys: size, {', '.join(names)}"
            )
        if size is not None:
            return cls.from_size(size, **values)
        # YAML/JSON give lists; the dataclass stores tuples so configs compare and hash.
        for key in ("rcc_channels", "beats_patch"):
            if key in values and values[key] is not None:
                values[key] = tuple(values[key])
        for key in ("rcc_pools", "baseline_pools"):
            if key in values and values[key] is not None:
                values[key] = tuple(tuple(p) for p in values[key])
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict:
        """Plain, JSON-ready dict (tuples as lists) that `from_dict` accepts back."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = [list(p) if isinstance(p, tuple) else p for p in v]
        return out

    # --------------------------------------------------------------- validate
    def validate(self) -> None:
        """Raise ValueError naming the offending key."""

        def need(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise ValueError(f"model config key {key!r}: expected {what}, got {getattr(self, key)!r}")

        def pos_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v > 0

        for key in (
            "d_model",
            "n_heads",
            "ffn_mult",
            "conv_kernel",
            "token_width",
            "baseline_filters",
            "baseline_rnn",
            "baseline_rnn_layers",
            "baseline_heads",
            "baseline_fc",
        ):
            need(pos_int(getattr(self, key)), key, "a positive integer")
        for key in ("rcc_conformer_blocks", "fusion_conformer_blocks", "baseline_attn_blocks"):
            v = getattr(self, key)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 0, key, "an integer >= 0")
        need(self.proj_hidden is None or pos_int(self.proj_hidden), "proj_hidden", "a positive integer or null")
        need(self.d_model % self.n_heads == 0, "n_heads", f"a divisor of d_model={self.d_model}")
        need(
            self.baseline_rnn % self.baseline_heads == 0,
            "baseline_heads",
            f"a divisor of baseline_rnn={self.baseline_rnn}",
        )
        need(self.conv_kernel % 2 == 1, "conv_kernel", "an odd integer (same padding)")
        need(
            all(pos_int(c) for c in self.rcc_channels) and len(self.rcc_channels) > 0,
            "rcc_channels",
            "a non-empty list of positive integers",
        )
        need(
            len(self.rcc_pools) == len(self.rcc_channels)
            and all(len(p) == 2 and all(pos_int(x) for x in p) for p in self.rcc_pools),
            "rcc_pools",
            "one [time, freq] pair of positive integers per RCC block",
        )
        need(
            all(len(p) == 2 and all(pos_int(x) for x in p) for p in self.baseline_pools)
            and len(self.baseline_pools) > 0,
            "baseline_pools",
            "a list of [time, freq] positive pairs",
        )
        need(
            len(self.beats_patch) == 2 and all(pos_int(x) for x in self.beats_patch),
            "beats_patch",
            "a [time, freq] pair of positive integers",
        )
        need(
            self.distance_activation in DISTANCE_ACTIVATIONS,
            "distance_activation",
            f"one of {', '.join(DISTANCE_ACTIVATIONS)}",
        )
        need(self.beats_arch in BEATS_ARCHS, "beats_arch", f"one of {', '.join(BEATS_ARCHS)}")
        need(
            isinstance(self.beats_input_scale, (int, float)) and self.beats_input_scale > 0,
            "beats_input_scale",
            "a positive number",
        )
        for key in ("dropout", "baseline_dropout"):
            v = getattr(self, key)
            need(isinstance(v, (int, float)) and 0 <= v < 1, key, "a number in [0, 1)")
        need(
            self.beats_checkpoint is None or isinstance(self.beats_checkpoint, str),
            "beats_checkpoint",
            "a file path or null",
        )
