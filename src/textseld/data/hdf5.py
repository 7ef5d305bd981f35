"""Packed features: one HDF5 file per split (layout in docs/INTERFACES.md).

Datasets, N clips sorted by name, chunked one clip per chunk:
  names (N,) str, src (N, 1, T, F), doa (N, 4, T, F), dist (N, 2, T, F) float32,
  targets (N, L, 6, 4, C) float32, label_rows (M, 6) float64, label_offsets (N+1,) int64;
  attrs feature_config (JSON), textseld_version, split.
Every writer streams (memory bounded by one batch, never the split) into a temporary
file that is renamed only on success. Shards are merged in clip-name order, so the packed
file does not depend on how the clips were sharded. Normalisation statistics (per channel
and mel band) go to a separate small `stats.h5`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from textseld import __version__
from textseld.atomic import atomic_path
from textseld.constants import N_ADPIT_SLOTS, N_CLASSES, N_FEAT_FRAMES, N_LABEL_FRAMES, N_MELS

FEATURE_KEYS = ("src", "doa", "dist")
CHANNELS = {"src": 1, "doa": 4, "dist": 2}
TARGET_SHAPE = (N_LABEL_FRAMES, N_ADPIT_SLOTS, 4, N_CLASSES)
STD_FLOOR = 1e-6  # a constant channel/band would otherwise divide by zero at load time


class PackedFileError(ValueError):
    """A packed HDF5 file is missing, malformed or inconsistent; the message names it."""


class PackedWriter:
    """Append clips (in increasing name order) to a new packed file, written atomically.

    with PackedWriter(path, split, feature_config) as w:
        w.append(names, src, doa, dist, targets, label_rows)
    The file appears under `path` only when the block exits without an exception.
    """

    def __init__(self, path: str | os.PathLike, split: str, feature_config: str):
        self.path = Path(path)
        self.split = split
        self.feature_config = feature_config
        self._stack = contextlib.ExitStack()
        self._f: h5py.File | None = None
        self._last_name: str | None = None
        self.n_clips = 0
        self.n_rows = 0

    def __enter__(self) -> PackedWriter:
        # a killed writer of this file left its (possibly large) temporary behind: remove it
        tmp = self._stack.enter_context(atomic_path(self.path, suffix=".h5", remove_stale=True))
        self._f = h5py.File(tmp, "w")
        f = self._f
        f.create_dataset("names", (0,), maxshape=(None,), dtype=h5py.string_dtype(), chunks=(1024,))
        # Fletcher32 per chunk: a damaged chunk is a read error (naming the file), not silent garbage
        for key in FEATURE_KEYS:
            shape = (CHANNELS[key], N_FEAT_FRAMES, N_MELS)
            f.create_dataset(key, (0, *shape), maxshape=(None, *shape), dtype="f4", chunks=(1, *shape), fletcher32=True)
        f.create_dataset(
            "targets",
            (0, *TARGET_SHAPE),
            maxshape=(None, *TARGET_SHAPE),
            dtype="f4",
            chunks=(1, *TARGET_SHAPE),
            fletcher32=True,
        )
        f.create_dataset("label_rows", (0, 6), maxshape=(None, 6), dtype="f8", chunks=(4096, 6), fletcher32=True)
        f.create_dataset("label_offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(4096,))
        f.attrs["feature_config"] = self.feature_config
        f.attrs["textseld_version"] = __version__
        f.attrs["split"] = self.split
        return self

    def append(self, names: Sequence[str], src, doa, dist, targets, label_rows: Sequence[np.ndarray]) -> None:
        """Add a batch of b clips: src (b, 1, T, F), doa (b, 4, T, F), dist (b, 2, T, F),
        targets (b, L, 6, 4, C), label_rows: b arrays (n_i, 6)."""
        f = self._f
        if f is None:
            raise RuntimeError("PackedWriter.append outside its `with` block")
        b = len(names)
        arrays = {"src": src, "doa": doa, "dist": dist, "targets": targets}
        for key, value in arrays.items():
            if len(value) != b or tuple(value.shape[1:]) != f[key].shape[1:]:
                raise ValueError(f"{self.path}: {key} must have shape ({b}, {f[key].shape[1:]}), got {value.shape}")
        if len(label_rows) != b:
            raise ValueError(f"{self.path}: expected {b} label row arrays, got {len(label_rows)}")
        for name in names:  # the contract: sorted by name, unique
            if self._last_name is not None and name <= self._last_name:
                raise ValueError(
                    f"{self.path}: clip names must be strictly increasing, got {name!r} after {self._last_name!r}"
                )
            self._last_name = name
        start, end = self.n_clips, self.n_clips + b
        f["names"].resize((end,))
        f["names"][start:end] = list(names)
        for key, value in arrays.items():
            f[key].resize((end, *f[key].shape[1:]))
            f[key][start:end] = np.asarray(value, dtype=np.float32)
        counts = np.array([len(r) for r in label_rows], dtype=np.int64)
        rows_end = self.n_rows + int(counts.sum())
        f["label_rows"].resize((rows_end, 6))
        if rows_end > self.n_rows:
            f["label_rows"][self.n_rows : rows_end] = np.concatenate(
                [np.asarray(r, np.float64).reshape(-1, 6) for r in label_rows]
            )
        f["label_offsets"].resize((end + 1,))
        f["label_offsets"][start + 1 : end + 1] = self.n_rows + np.cumsum(counts)
        self.n_clips, self.n_rows = end, rows_end

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._f is not None:
            self._f.close()
            self._f = None
        return bool(self._stack.__exit__(exc_type, exc, tb))


def _open(path: str | os.PathLike) -> h5py.File:
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise PackedFileError(f"{path}: cannot open as HDF5 ({exc})") from None
    try:
        with _reading(path, "its index"):
            missing = [k for k in ("names", *FEATURE_KEYS, "targets", "label_rows", "label_offsets") if k not in f]
            missing = missing or ([] if "feature_config" in f.attrs else ["attr feature_config"])
    except PackedFileError:
        f.close()
        raise
    if missing:
        f.close()
        raise PackedFileError(f"{path}: not a packed feature file (missing {missing})")
    return f


@contextlib.contextmanager
def _reading(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn HDF5 read failures (damaged chunk or index, checksum mismatch, missing
    dataset) into a PackedFileError that names the file and what was being read."""
    try:
        yield
    except PackedFileError:
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        raise PackedFileError(f"{path}: cannot read {what} (damaged or not a packed feature file: {exc})") from None


def read_names(path: str | os.PathLike) -> list[str]:
    """The clip names of a packed file, in file order."""
    with _open(path) as f, _reading(path, "the clip names"):
        return list(f["names"].asstr()[:])


def merge_shards(shards: Sequence[str | os.PathLike], out: str | os.PathLike, batch_size: int = 64) -> int:
    """Merge packed shard files into one file ordered by clip name. Returns the clip count.

    Streams `batch_size` clips at a time. All shards must share `feature_config`; a clip
    name present in two shards is an error naming both.
    """
    if not shards:
        raise ValueError("merge_shards needs at least one shard")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(_open(p)) for p in shards]
        config = files[0].attrs["feature_config"]
        for path, f in zip(shards, files):
            if f.attrs["feature_config"] != config:
                raise PackedFileError(f"{path}: feature_config differs from {shards[0]}'s")
        splits = sorted({s for f in files for s in str(f.attrs["split"]).split("+") if s})
        order: list[tuple[str, int, int]] = []  # (name, shard, index)
        for s, f in enumerate(files):
            order.extend((name, s, i) for i, name in enumerate(f["names"].asstr()[:]))
        order.sort()
        if not order:  # an empty packed file would fail later, far from its cause
            raise PackedFileError(
                f"{', '.join(map(str, shards))}: the shards hold no clips (expected at least one; "
                "were the splits of extract-features empty, or given more shards than clips?)"
            )
        for (a, sa, _), (b, sb, _) in zip(order, order[1:]):
            if a == b:
                raise PackedFileError(f"clip {a} occurs in {shards[sa]} and in {shards[sb]}")
        offsets = [f["label_offsets"][:] for f in files]  # (N_s + 1,) int64 each: small
        with PackedWriter(out, "+".join(splits), config) as writer:
            for start in tqdm(range(0, len(order), batch_size), desc=f"pack {Path(out).name}", unit="batch"):
                batch = order[start : start + batch_size]
                parts: dict[str, list[Any]] = {k: [None] * len(batch) for k in (*FEATURE_KEYS, "targets")}
                rows: list = [None] * len(batch)
                for s in sorted({s for _, s, _ in batch}):
                    pos = [p for p, (_, bs, _) in enumerate(batch) if bs == s]
                    idx = [batch[p][2] for p in pos]  # increasing: each shard is sorted by name
                    with _reading(shards[s], f"clips {idx[0]}..{idx[-1]}"):
                        for key in parts:
                            block = files[s][key][idx]
                            for j, p in enumerate(pos):
                                parts[key][p] = block[j]
                        for p, i in zip(pos, idx):
                            rows[p] = files[s]["label_rows"][offsets[s][i] : offsets[s][i + 1]]
                writer.append(
                    [name for name, _, _ in batch],
                    np.stack(parts["src"]),
                    np.stack(parts["doa"]),
                    np.stack(parts["dist"]),
                    np.stack(parts["targets"]),
                    rows,
                )
        return len(order)


def compute_stats(
    packed: str | os.PathLike, out: str | os.PathLike, indices=None, batch_size: int = 64, attrs: dict | None = None
) -> dict:
    """Per-channel, per-band mean and std of src/doa/dist over clips and frames of a packed
    (training) file, streamed in float64 with Chan's pairwise update; `indices` restricts
    the clips (e.g. without the validation part: textseld.data.splits.compute_training_stats).
    Writes `out` (groups src/doa/dist with mean and std (channels, F) float32, plus `attrs`
    as file attributes) atomically and returns {key: (mean, std)}."""
    with _open(packed) as f:
        n_total = len(f["names"])
        idx = np.arange(n_total) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
        if len(idx) == 0:
            raise PackedFileError(f"{packed}: no clips to compute statistics on")
        if idx[0] < 0 or idx[-1] >= n_total:
            raise PackedFileError(f"{packed}: indices must be in 0..{n_total - 1}")
        # per key: [count, mean, sum of squared deviations]
        acc: dict[str, list[Any]] = {
            k: [0, np.zeros((CHANNELS[k], N_MELS)), np.zeros((CHANNELS[k], N_MELS))] for k in FEATURE_KEYS
        }
        for start in tqdm(range(0, len(idx), batch_size), desc="stats", unit="batch"):
            sel = idx[start : start + batch_size]
            for key in FEATURE_KEYS:
                with _reading(packed, f"{key} of clips {sel[0]}..{sel[-1]}"):
                    x = f[key][sel].astype(np.float64)  # (b, C, T, F)
                n_b = x.shape[0] * x.shape[2]
                mean_b = x.mean(axis=(0, 2))
                m2_b = ((x - mean_b[None, :, None, :]) ** 2).sum(axis=(0, 2))
                n_a, mean_a, m2_a = acc[key]
                tot = n_a + n_b
                delta = mean_b - mean_a
                acc[key] = [tot, mean_a + delta * (n_b / tot), m2_a + m2_b + delta**2 * (n_a * n_b / tot)]
    stats = {k: (acc[k][1], np.maximum(np.sqrt(acc[k][2] / acc[k][0]), STD_FLOOR)) for k in FEATURE_KEYS}
    with atomic_path(out, suffix=".h5", remove_stale=True) as tmp, h5py.File(tmp, "w") as g:
        g.attrs["source"] = str(packed)
        g.attrs["n_clips"] = len(idx)
        g.attrs["std_floor"] = STD_FLOOR
        for name, value in (attrs or {}).items():
            g.attrs[name] = value
        for key, (mean, std) in stats.items():
            grp = g.create_group(key)
            grp.create_dataset("mean", data=mean.astype(np.float32))
            grp.create_dataset("std", data=std.astype(np.float32))
    return stats


def read_stats(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{key: (mean (C, F), std (C, F))} float32 from a stats.h5 file."""
    try:
        with h5py.File(path, "r") as g:
            out = {}
            for key in FEATURE_KEYS:
                if not isinstance(g.get(key), h5py.Group):
                    what = "a packed features file" if "names" in g else "not a statistics file"
                    raise PackedFileError(
                        f"{path}: {what}: expected the statistics of feature-stats (groups src, doa, dist "
                        "with mean and std), e.g. stats.h5 beside the packed training features"
                    )
                mean, std = g[key]["mean"][:], g[key]["std"][:]
                if mean.shape != (CHANNELS[key], N_MELS) or std.shape != mean.shape:
                    raise PackedFileError(f"{path}: {key}/mean and {key}/std must be ({CHANNELS[key]}, {N_MELS})")
                out[key] = (mean.astype(np.float32), std.astype(np.float32))
            return out
    except (OSError, KeyError) as exc:
        raise PackedFileError(f"{path}: not a statistics file with groups src/doa/dist ({exc})") from None


class PackedDataset(torch.utils.data.Dataset):
    """Clips of a packed file as a torch Dataset (file opened lazily, once per process).

    indices: file indices of the clips to serve (default all), e.g. a validation subset.
    Item i = dict(src (1, T, F), doa (4, T, F), dist (2, T, F) float32 tensors, standardised
    per channel and band when `stats_path` is given; target (L, 6, 4, C); index = the clip's
    index IN THE FILE (indices[i]); name str). `.names` lists all clip names of the file
    (file order, so names[item["index"]] is the item's name); `.label_rows(index)` takes a file
    index too. The HDF5 handle is never opened in __init__ nor pickled, so DataLoader
    workers (fork or spawn) each open their own.
    """

    def __init__(self, path: str | os.PathLike, stats_path: str | os.PathLike | None = None, indices=None):
        self.path = Path(path)
        if not self.path.is_file():
            raise PackedFileError(f"{self.path}: packed feature file not found")
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        self.stats = None  # small, read once and closed: safe before fork
        if stats_path is not None:
            self.stats = {
                k: (torch.from_numpy(m)[:, None, :], torch.from_numpy(s)[:, None, :])
                for k, (m, s) in read_stats(stats_path).items()
            }
        self._names: list[str] | None = None
        self._offsets: np.ndarray | None = None
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():  # a forked worker opens its own handle
            self._file = _open(self.path)
            self._pid = os.getpid()
        return self._file

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    @property
    def names(self) -> list[str]:
        if self._names is None:
            with _open(self.path) as f, _reading(self.path, "the clip names"):  # short-lived: no handle in workers
                self._names = list(f["names"].asstr()[:])
                if (
                    self.indices is not None
                    and len(self.indices)
                    and (self.indices.min() < 0 or self.indices.max() >= len(self._names))
                ):
                    raise PackedFileError(f"{self.path}: indices must be in 0..{len(self._names) - 1}")
        return self._names

    def __len__(self) -> int:
        return len(self.names) if self.indices is None else len(self.indices)

    def file_index(self, i: int) -> int:
        """File index of item i."""
        return int(i if self.indices is None else self.indices[i])

    def item_names(self) -> list[str]:
        """The clip names of the items, in item order (names[file_index(i)] for every i)."""
        names = self.names
        return list(names) if self.indices is None else [names[int(i)] for i in self.indices]

    def label_rows(self, index: int) -> np.ndarray:
        """Reference label rows (n, 6) float64 of the clip at file index `index`."""
        f = self._h5()
        with _reading(self.path, f"the label rows of clip {index}"):
            if self._offsets is None:
                self._offsets = f["label_offsets"][:]
            return f["label_rows"][self._offsets[index] : self._offsets[index + 1]]

    def __getitem__(self, i: int) -> dict:
        return self.item(i)

    def item(self, i: int, features: bool = True) -> dict:
        """Item i: the standardised features (unless features=False: for a model that reads
        cached outputs instead), "target", "index" (in the file) and "name"."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} clips")
        index = self.file_index(i % len(self))
        f = self._h5()
        item: dict[str, Any] = {}
        keys = FEATURE_KEYS if features else ()
        with _reading(self.path, f"clip {index}"):
            raw = {key: f[key][index] for key in (*keys, "targets")}
        for key in keys:
            x = torch.from_numpy(raw[key])  # (C, T, F)
            if self.stats is not None:
                mean, std = self.stats[key]
                x = (x - mean) / std
            item[key] = x
        item["target"] = torch.from_numpy(raw["targets"])
        item["index"] = index
        item["name"] = self.names[index]
        return item
