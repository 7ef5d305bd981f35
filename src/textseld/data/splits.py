"""Validation split carved out of the training clips, grouped by recording.

Clips of one recording (same room and mix) were cut with replacement and can
overlap in time, so a recording goes entirely to train or entirely to
validation (docs/METHOD.md section 1). `SplitConfig` is the one split shared by every
run and by the normalisation statistics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from textseld.data.layout import parse_clip_name


def recording_key(name: str) -> tuple[int, int]:
    """The recording a clip was cut from: (room, mix).

    The fold is deliberately left out: grouping more clips together can only
    make the split more conservative, never leak a recording.
    """
    parts = parse_clip_name(name)
    return parts["room"], parts["mix"]


def validation_split(names: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split clip names into (train_idx, val_idx), int64 index arrays, sorted.

    Whole recordings (room, mix) are assigned; about `fraction` of the
    recordings go to validation (rounded, at least one and at most all but one
    when there are >= 2 recordings). Deterministic for a given seed and set of
    names (independent of the input order).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    names = list(names)
    if not names:
        raise ValueError("holds no clips: a validation split needs clips from at least 2 recordings")
    keys = [recording_key(n) for n in names]
    groups = sorted(set(keys))
    n_groups = len(groups)
    if n_groups < 2:
        raise ValueError(f"need clips from at least 2 recordings (room, mix) for a validation split, got {n_groups}")
    n_val = int(round(fraction * n_groups))
    n_val = min(max(n_val, 1), n_groups - 1)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(n_groups)[:n_val]
    val_groups = {groups[i] for i in chosen}
    is_val = np.array([k in val_groups for k in keys], dtype=bool)
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


@dataclass(frozen=True)
class SplitConfig:
    """The one validation split of every run (docs/METHOD.md section 1): both pretrainings,
    every finetuning seed and the baseline validate on the same recordings, and
    the normalisation statistics are computed on the rest. It depends on the
    clips and on `seed` only, never on a run's seed (seeds vary initialisation
    and data order). The workflow's `train.validation_split` section."""

    fraction: float = 0.1
    seed: int = 0

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | SplitConfig | None) -> SplitConfig:
        """Build from a plain dict; unknown keys and bad values raise ValueError naming the key."""
        if isinstance(values, SplitConfig):
            values.validate()
            return values
        values = dict(values or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValueError(
                f"validation split config: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(names)}"
            )
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not (
            isinstance(self.fraction, (int, float)) and not isinstance(self.fraction, bool) and 0 < self.fraction < 1
        ):
            raise ValueError(f"validation split key 'fraction': expected a number in (0, 1), got {self.fraction!r}")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0):
            raise ValueError(f"validation split key 'seed': expected an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def indices(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(train_idx, val_idx) of `names` (see validation_split)."""
        return validation_split(names, self.fraction, self.seed)


def split_record(split: SplitConfig, names: Sequence[str]) -> dict:
    """What identifies the training part of `names` under `split`: the split settings, the
    clip counts and a SHA-256 of the sorted training clip names (stored with the statistics)."""
    train_idx, val_idx = split.indices(names)
    train_names = sorted(names[int(i)] for i in train_idx)
    digest = hashlib.sha256("\n".join(train_names).encode("utf-8")).hexdigest()
    return {**split.to_dict(), "n_train": len(train_idx), "n_validation": len(val_idx), "train_sha256": digest}


STATS_ATTR = "validation_split"  # stats.h5 attribute holding split_record(...) as JSON


def compute_training_stats(
    packed: str | os.PathLike, out: str | os.PathLike, split: SplitConfig | Mapping | None, batch_size: int = 64
) -> dict:
    """Normalisation statistics of the training part of a packed training file: the clips
    that `split` does not hold out for validation (docs/METHOD.md section 2). The split record is
    stored in `out` so that a run can check it trains on the same split."""
    from textseld.data.hdf5 import PackedDataset, compute_stats

    split = SplitConfig.from_dict(split)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    names = list(PackedDataset(packed).names)
    try:
        train_idx, _ = split.indices(names)
    except ValueError as exc:
        raise ValueError(f"{packed}: {exc}") from None
    record = split_record(split, names)
    return compute_stats(
        packed, out, indices=train_idx, batch_size=batch_size, attrs={STATS_ATTR: json.dumps(record, sort_keys=True)}
    )


def check_stats_split(
    stats: str | os.PathLike, split: SplitConfig, names: Sequence[str], packed: str | os.PathLike
) -> None:
    """Raise ValueError unless `stats` was computed on the training part of `names` (the
    clips of `packed`) under `split`."""
    import h5py

    expected = split_record(split, list(names))
    try:
        with h5py.File(stats, "r") as g:
            raw = g.attrs.get(STATS_ATTR)
    except OSError as exc:
        raise ValueError(f"{stats}: cannot read statistics file ({exc})") from None
    if raw is None:
        raise ValueError(
            f"{stats}: records no validation split, so it may include validation clips; "
            f"recompute it from {packed} with "
            f"textseld.data.splits.compute_training_stats (or `textseld feature-stats`)"
        )
    found = json.loads(raw)
    if found != expected:
        diff = ", ".join(
            f"{k}: {found.get(k)!r} in the statistics, {expected[k]!r} here"
            for k in expected
            if found.get(k) != expected[k]
        )
        raise ValueError(
            f"{stats}: computed on another training part than this run's split of {packed} "
            f"({diff}); recompute the statistics with the same validation split"
        )
