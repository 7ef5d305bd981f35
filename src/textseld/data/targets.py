"""Multi-ACCDOA training targets with distance, in the ADPIT layout (docs/METHOD.md section 3).

Per clip a float32 array (L, 6, 4, C) = (50 frames, slots, values, 13 classes):
- slots [A0 | B0 B1 | C0 C1 C2]: a (frame, class) with one event fills A0,
  with two events B0 and B1, with three or more C0, C1 and C2;
- values [activity, x = cos az, y = sin az, distance in metres * scale].
Each slot holds a DIFFERENT event (the published code copies the first event
into every slot). Events of one (frame, class) are ordered by source index,
then azimuth, so the assignment is deterministic; the 4th and later events
are dropped and counted.
"""

from __future__ import annotations

import logging
from typing import Literal, overload

import numpy as np

from textseld.constants import N_ADPIT_SLOTS, N_CLASSES, N_LABEL_FRAMES

log = logging.getLogger(__name__)

# First slot of each group: group n (n events) starts at slot n*(n-1)/2.
_GROUP_START = {1: 0, 2: 1, 3: 3}
MAX_EVENTS = 3


@overload
def build_targets(
    rows: np.ndarray, distance_scale: float = 1.0, *, return_dropped: Literal[False] = False, name: str | None = None
) -> np.ndarray: ...


@overload
def build_targets(
    rows: np.ndarray, distance_scale: float = 1.0, *, return_dropped: Literal[True], name: str | None = None
) -> tuple[np.ndarray, int]: ...


def build_targets(
    rows: np.ndarray,
    distance_scale: float = 1.0,
    *,
    return_dropped: bool = False,
    name: str | None = None,
) -> np.ndarray | tuple[np.ndarray, int]:
    """Build the ADPIT target tensor of one clip.

    rows: (N, 6) [frame, class, source, azimuth deg, distance cm, onscreen],
    as returned by `textseld.data.labels.read_labels`.
    Returns (L=50, 6, 4, C=13) float32; with return_dropped=True, also the
    number of events dropped because a (frame, class) had more than 3.
    `name` only labels the log message about dropped events.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 6:
        raise ValueError(f"label rows must have shape (N, 6), got {rows.shape}")
    target = np.zeros((N_LABEL_FRAMES, N_ADPIT_SLOTS, 4, N_CLASSES), dtype=np.float32)
    dropped = 0
    if len(rows):
        frame = rows[:, 0].astype(np.int64)
        cls = rows[:, 1].astype(np.int64)
        if frame.min() < 0 or frame.max() >= N_LABEL_FRAMES:
            raise ValueError(f"frame indices must be in 0..{N_LABEL_FRAMES - 1}, got {frame.min()}..{frame.max()}")
        if cls.min() < 0 or cls.max() >= N_CLASSES:
            raise ValueError(f"class indices must be in 0..{N_CLASSES - 1}, got {cls.min()}..{cls.max()}")
        # Sort by (frame, class, source, azimuth): lexsort's last key is primary.
        order = np.lexsort((rows[:, 3], rows[:, 2], cls, frame))
        rows, frame, cls = rows[order], frame[order], cls[order]
        key = frame * N_CLASSES + cls
        # Rank of each event within its (frame, class) group and the group size.
        new_group = np.r_[True, key[1:] != key[:-1]]
        group_id = np.cumsum(new_group) - 1
        group_first = np.flatnonzero(new_group)
        rank = np.arange(len(key)) - group_first[group_id]
        size = np.bincount(group_id)[group_id]
        keep = rank < MAX_EVENTS
        dropped = int((~keep).sum())
        n_used = np.minimum(size, MAX_EVENTS)
        slot = np.array([_GROUP_START[n] for n in range(1, MAX_EVENTS + 1)])[n_used - 1] + rank
        az = np.deg2rad(rows[:, 3])
        values = np.stack(
            [np.ones(len(rows)), np.cos(az), np.sin(az), rows[:, 4] / 100.0 * distance_scale], axis=1
        ).astype(np.float32)
        f, s, c, v = frame[keep], slot[keep], cls[keep], values[keep]
        target[f, s, :, c] = v
    if dropped:
        log.info("%s: dropped %d event(s) beyond %d per frame and class", name or "clip", dropped, MAX_EVENTS)
    if return_dropped:
        return target, dropped
    return target
