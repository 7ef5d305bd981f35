"""What a fixed tokenizer and the frozen text encoder compute for a clip, computed once and shared.

With `train.finetune.freeze_tokenizer` the pretrained tokenizer is fixed
(eval mode, no gradient) and the text encoder is frozen, so two things are
the same in every finetuning of a source encoder (and text encoder),
whatever its head or seed:

- the three token streams of a training clip (`encode_tokens`, kind
  "tokens": key `tokens` (N, L, 3, D)), which the training steps send
  through the text encoder with randomly drawn templates;
- the text encoder's outputs for a clip's frames under its fixed template,
  which is all that validation and test prediction compute before the head
  (`encode_sentences`, kind "encoded": keys `A` (N, L, E) and `hidden`
  (N, L, 3, D)).

Both are written once by a workflow rule and read by the finetunings and
predictions instead of recomputing them; the results are those of the
model's own forward pass, up to float rounding (tested). The two writers
live in `textseld.train.encode`.

File layout (HDF5): one float32 dataset per key, rows in `names` order, and
attributes naming what they were computed from (sha256 of the pretrain
run's best.pt, the packed file, the statistics; the text encoder's record).
`ClipArrays` checks those against a run's inputs before use.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import torch

from textseld import __version__
from textseld.atomic import atomic_path

log = logging.getLogger(__name__)

FORMAT = "textseld-clip-arrays-1"
KEYS = {"tokens": ("tokens",), "encoded": ("A", "hidden")}
COMMANDS = {"tokens": "textseld encode-tokens", "encoded": "textseld encode-sentences"}  # the writers
# An "encoded" file's record of the text encoder that computed it (JSON: width, embed_dim and its
# weights record), from which a run that reads all its outputs cached rebuilds it as a record only.
ENCODER_SHAPE_ATTR = "text_encoder_built"


class TokenCacheError(ValueError):
    """A cached file does not belong to the run's inputs; the message names the file and why."""


def write_clip_arrays(
    out: str | os.PathLike, kind: str, names: list[str], batches: Iterable[dict[str, np.ndarray]], attrs: dict
) -> Path:
    """Write the arrays of `kind` for the clips `names` (batches in that order) with the record
    `attrs` (plain values; dicts are stored as JSON) to `out`, atomically."""
    out = Path(out)
    keys = KEYS[kind]
    with atomic_path(out, suffix=".h5", remove_stale=True) as tmp, h5py.File(tmp, "w") as f:
        done = 0
        for batch in batches:
            rows = len(batch[keys[0]])
            for key in keys:
                if key not in f:
                    f.create_dataset(key, shape=(len(names), *batch[key].shape[1:]), dtype="float32")
                f[key][done : done + rows] = batch[key]
            done += rows
        if done != len(names):
            raise TokenCacheError(f"{out}: expected the arrays of {len(names)} clips, got {done}")
        f.create_dataset("names", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
        record = {k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in attrs.items()}
        f.attrs.update({"format": FORMAT, "kind": kind, "textseld_version": __version__, **record})
    return out


class ClipArrays:
    """The arrays of one cached file, checked against what a run uses, held in memory.

    kind: "tokens" or "encoded". names: the clips the run needs (each must be in the file).
    expect: attribute -> value (dicts compared as JSON); each must equal the file's record,
    else TokenCacheError naming the file and the attribute.
    """

    def __init__(self, path: str | os.PathLike, kind: str, *, names: list[str], expect: dict):
        self.path, self.kind = Path(path), kind
        if not self.path.is_file():
            raise TokenCacheError(f"{self.path}: cached {kind} file not found (run `{COMMANDS[kind]}` first)")
        with h5py.File(self.path, "r") as f:
            if f.attrs.get("format") != FORMAT or f.attrs.get("kind") != kind:
                raise TokenCacheError(f"{self.path}: not a file of cached {kind} ({FORMAT} expected)")
            for key, value in expect.items():
                want = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
                if f.attrs.get(key) != want:
                    raise TokenCacheError(
                        f"{self.path}: computed from other inputs than this run's ({key} differs): "
                        f"rebuild it with `{COMMANDS[kind]}`"
                    )
            stored = list(f["names"].asstr()[:])
            row = {n: i for i, n in enumerate(stored)}
            missing = [n for n in names if n not in row]
            if missing:
                raise TokenCacheError(f"{self.path}: holds no {kind} for {len(missing)} clip(s), e.g. {missing[0]}")
            self.arrays = {key: torch.from_numpy(f[key][:]) for key in KEYS[kind]}
            built = f.attrs.get(ENCODER_SHAPE_ATTR)
            self.text = f.attrs.get("text")
        self.row = row
        self._built = json.loads(built) if built is not None else None

    def text_encoder(self):
        """The text encoder that computed an "encoded" file, as a record only
        (`RecordedTextEncoder`: width, size of A, weights record), for a model that reads all
        its outputs from such files; None for files that do not record it (older ones)."""
        if self.kind != "encoded" or self._built is None:
            return None
        from textseld.models.text_encoders import RecordedTextEncoder

        b = self._built
        return RecordedTextEncoder(str(self.text), b["width"], b["embed_dim"], b["weights"])

    def as_encoded(self, outputs) -> ClipArrays:
        """This "tokens" file as an "encoded" one, for a text encoder whose outputs are a function
        of the tokens alone under any template (the identity control): `outputs(tokens (N, L, 3, D))`
        -> {"A", "hidden"}. Same clips and rows; nothing read again."""
        if self.kind != "tokens":
            raise TokenCacheError(f"{self.path}: holds {self.kind}, not tokens")
        view = object.__new__(ClipArrays)
        view.path, view.kind, view.row, view.text, view._built = self.path, "encoded", self.row, None, None
        made = outputs(self.arrays["tokens"])
        view.arrays = {key: made[key] for key in KEYS["encoded"]}
        return view

    def wrap(self, dataset):
        """`dataset` (items with a "name") with this file's arrays of the item's clip added."""
        return _WithArrays(dataset, self)


class _WithArrays(torch.utils.data.Dataset):
    def __init__(self, base, cache: ClipArrays):
        self.base, self.cache = base, cache

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        # cached text-encoder outputs are all a model reads before its head: the clip's
        # features are not read (the base dataset's `item(i, features=False)`, if it has one)
        lean = self.cache.kind == "encoded" and hasattr(self.base, "item")
        item = self.base.item(i, features=False) if lean else self.base[i]
        r = self.cache.row[item["name"]]
        for key, values in self.cache.arrays.items():
            item[key] = values[r]
        return item

    def __getattr__(self, name: str):  # names, label_rows, file_index ... of the packed file
        if name in ("base", "cache"):
            raise AttributeError(name)
        return getattr(self.base, name)
