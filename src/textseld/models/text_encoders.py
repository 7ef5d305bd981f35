"""The frozen text encoder base class, with placeholder-token injection (docs/METHOD.md section 5).

A `TextEncoder` wraps a pre-trained text transformer (CLIP text tower in
`text_clip.py`, BERT in `text_bert.py`; built by
`textseld.models.factory.build_text_encoder` from a `TextEncoderConfig` of
`text_config.py`). Three placeholder tokens are added to its tokenizer.
`encode_with_tokens` tokenizes the chosen template with the placeholders in
the slots (once per template, cached), replaces the word embeddings at the
placeholder positions by the frame's audio / DOA / distance tokens, and runs
the encoder's normal embedding path and transformer on the result.
`embed_sentences` runs the very same path on ground-truth sentences, so both
give comparable `A` vectors; `GroundTruthCache` keeps those of the training
sentences.

Shapes: n sequences, S = longest sequence in the batch (never padded to the
model's context length), D = `width` (token / hidden size), E = `embed_dim`
(size of `A`; equals D for the paper encoders).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from textseld.models.pretrained import sha256_file
from textseld.text.templates import TEMPLATES

SLOTS = ("src", "doa", "dist")


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

    def template_lengths(self) -> list[int]:
        """Token count of each template (by template id) with the placeholders in place: a batch
        of frames is padded to its longest template's."""
        return list(self._template_lengths)

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


class RecordedTextEncoder(nn.Module):
    """A text encoder known by its record only: its width, the size of its A and which weights it
    started from, as the file of its cached outputs records them (`textseld.train.tokens`).

    It stands in for the built encoder in a model that reads every output of its text encoder
    from such files (a finetuning on cached training and validation outputs, a prediction on
    cached test outputs), so that the run neither imports open_clip / transformers nor loads the
    weights (about 4 s of every such job). Anything that would run the encoder raises.
    """

    def __init__(self, kind: str, width: int, embed_dim: int, weights_info: dict[str, Any] | None) -> None:
        super().__init__()
        self.kind, self.width, self.embed_dim = kind, int(width), int(embed_dim)
        self.weights_info: dict[str, Any] = dict(weights_info or {})

    def lock(self) -> RecordedTextEncoder:  # nothing to freeze: it has no parameters
        return super().train(False)

    def train(self, mode: bool = True) -> RecordedTextEncoder:
        return super().train(False)

    def _absent(self, *args, **kwargs):
        raise RuntimeError(
            f"the {self.kind} text encoder was not built: this model reads every output of it from "
            f"cached files, and something asked it to compute"
        )

    encode_with_tokens = embed_sentences = forward = _absent


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


def file_info(path: str | os.PathLike) -> dict[str, Any]:
    """weights_info fields of a local weights file."""
    p = Path(path)
    return {"source": "file", "file": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size}


__all__ = ["SLOTS", "GroundTruthCache", "TextEncoder", "file_info"]
