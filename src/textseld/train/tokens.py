"""The fixed tokenizer's tokens of a packed file, computed once and shared by the finetunings.

With `train.finetune.freeze_tokenizer` the pretrained tokenizer is fixed
(eval mode, no gradient), so its three token streams of a clip are the same
in every finetuning of that source encoder, whatever the text encoder, head
or seed: `encode_tokens` runs it once over a packed file and stores them,
and finetuning (train and validation clips) and prediction (test clips) read
them instead of running the tokenizer again. The results are those of the
tokenizer run inside the model, up to float rounding (tested).

File layout (HDF5): `tokens` float32 (N, L, 3, D) — audio, DOA and distance
token of every label frame of every clip, in the packed file's order —
`names` (the clips), and attributes naming what they were computed from:
the pretrain run's best.pt, the packed file and the statistics (sha256).
`TokenCache` checks those against a run's inputs before use;
`textseld.train.predict.encode_tokens` writes the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from textseld import __version__
from textseld.atomic import atomic_path

log = logging.getLogger(__name__)

FORMAT = "textseld-tokens-1"


class TokenCacheError(ValueError):
    """A token file does not belong to the run's inputs; the message names the file and why."""


@torch.no_grad()
def write_tokens(tokenizer, loader, n: int, out: str | os.PathLike, names: list[str], attrs: dict, device) -> Path:
    """Run `tokenizer` (eval mode) over `loader`'s batches (n clips, in file order) and write
    the tokens with `names` and the record `attrs` to `out` (atomically)."""
    out = Path(out)
    tokenizer.eval()
    with atomic_path(out, suffix=".h5", remove_stale=True) as tmp, h5py.File(tmp, "w") as f:
        data: Any = None
        done = 0
        for batch in loader:
            streams = tokenizer(*(batch[k].to(device) for k in ("src", "doa", "dist")))
            tokens = torch.stack(streams, dim=2).float().cpu().numpy()  # (B, L, 3, D)
            if data is None:
                data = f.create_dataset("tokens", shape=(n, *tokens.shape[1:]), dtype="float32")
            data[done : done + len(tokens)] = tokens
            done += len(tokens)
        if data is None or done != n:
            raise TokenCacheError(f"{out}: expected the tokens of {n} clips, got {done}")
        f.create_dataset("names", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
        f.attrs.update({"format": FORMAT, "textseld_version": __version__, **attrs})
    return out


class TokenCache:
    """The tokens of one packed file, checked against what a run uses, held in memory.

    expect: {"pretrained_best_sha256": ..., "features_sha256": ..., "stats_sha256": ...}
    (any subset): each must equal the file's record, else TokenCacheError naming it.
    names: the packed file's clip names (file order), which the cache must list identically.
    """

    def __init__(self, path: str | os.PathLike, *, names: list[str], expect: dict[str, str]):
        self.path = Path(path)
        if not self.path.is_file():
            raise TokenCacheError(f"{self.path}: token file not found (run `textseld encode-tokens` first)")
        with h5py.File(self.path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise TokenCacheError(f"{self.path}: not a token file of this version (format {FORMAT} expected)")
            for key, value in expect.items():
                if f.attrs.get(key) != value:
                    raise TokenCacheError(
                        f"{self.path}: computed from other inputs than this run's ({key} differs): "
                        f"rebuild it with `textseld encode-tokens`"
                    )
            if list(f["names"].asstr()[:]) != list(names):
                raise TokenCacheError(f"{self.path}: its clips are not those of the packed file, in the same order")
            self.tokens = torch.from_numpy(f["tokens"][:])  # (N, L, 3, D)

    def wrap(self, dataset):
        """`dataset` (a PackedDataset, file indices as item["index"]) with item["tokens"] (L, 3, D) added."""
        return _WithTokens(dataset, self.tokens)


class _WithTokens(torch.utils.data.Dataset):
    def __init__(self, base, tokens: torch.Tensor):
        self.base, self.tokens = base, tokens

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[i]
        item["tokens"] = self.tokens[item["index"]]
        return item

    def __getattr__(self, name: str):  # names, label_rows, file_index ... of the packed file
        if name in ("base", "tokens"):
            raise AttributeError(name)
        return getattr(self.base, name)
