"""Validation split carved out of the training clips, grouped by recording.

Clips of one recording (same room and mix) were cut with replacement and can
overlap in time, so a recording goes entirely to train or entirely to
validation (SPEC section 1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from textseld.data.layout import parse_clip_name


def recording_key(name: str) -> tuple[int, int]:
    """The recording a clip was cut from: (room, mix).

    The fold is deliberately left out: grouping more clips together can only
    make the split more conservative, never leak a recording.
    """
    parts = parse_clip_name(name)
    return parts["room"], parts["mix"]


def validation_split(
    names: Sequence[str], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
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
        raise ValueError("cannot split an empty list of clips")
    keys = [recording_key(n) for n in names]
    groups = sorted(set(keys))
    n_groups = len(groups)
    if n_groups < 2:
        raise ValueError(
            f"need clips from at least 2 recordings (room, mix) for a validation split, got {n_groups}"
        )
    n_val = int(round(fraction * n_groups))
    n_val = min(max(n_val, 1), n_groups - 1)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(n_groups)[:n_val]
    val_groups = {groups[i] for i in chosen}
    is_val = np.array([k in val_groups for k in keys], dtype=bool)
    return np.flatnonzero(~is_val).astype(np.int64), np.flatnonzero(is_val).astype(np.int64)
