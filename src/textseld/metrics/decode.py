"""Decode a multi-ACCDOA network output into DCASE event rows.

The network emits, per label frame, K = 3 tracks of (x, y, d) for each of
C = 13 classes, flattened as (L, K*3*C) with index k*3*C + j*C + c, j in
{x, y, d}. A track is active when |(x, y)| > 0.5; its azimuth is atan2(y, x)
and its distance max(d, 0) metres. Per frame and class, two active tracks
less than 15 degrees apart are one event (mean of x, y, d); when two or more
of the three track pairs are that close, all three tracks become one event
(docs/METHOD.md section 7; the same rule as the official baseline's decoder).
"""

from __future__ import annotations

import numpy as np

from textseld.constants import N_CLASSES, N_TRACKS

ACTIVITY_THRESHOLD = 0.5  # |(x, y)| above this = track active
MERGE_ANGLE_DEG = 15.0  # active tracks closer than this are one event
_PAIRS = ((0, 1), (1, 2), (2, 0))
_THIRD = (2, 0, 1)  # the track not in _PAIRS[p]


def _as_tracks(out) -> np.ndarray:
    """(L, K*3*C) or (L, K, 3, C) array/tensor -> (L, K, 3, C) float64."""
    if hasattr(out, "detach"):  # torch tensor, without importing torch here
        out = out.detach().cpu().double().numpy()  # double(): bfloat16 has no numpy dtype
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == N_TRACKS * 3 * N_CLASSES:
        arr = arr.reshape(arr.shape[0], N_TRACKS, 3, N_CLASSES)
    if arr.ndim != 4 or arr.shape[1:] != (N_TRACKS, 3, N_CLASSES):
        raise ValueError(
            f"decode_output expects (L, {N_TRACKS * 3 * N_CLASSES}) or (L, {N_TRACKS}, 3, {N_CLASSES}), "
            f"got shape {tuple(arr.shape)}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("decode_output: network output contains NaN or infinite values")
    return arr


def _angle_deg(x1, y1, x2, y2) -> np.ndarray:
    """Angle between 2-D directions in degrees (vectors normalised first)."""
    n1 = np.sqrt(x1 * x1 + y1 * y1 + 1e-10)
    n2 = np.sqrt(x2 * x2 + y2 * y2 + 1e-10)
    cos = np.clip((x1 * x2 + y1 * y2) / (n1 * n2), -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def decode_output(out) -> np.ndarray:
    """Network output of one clip -> event rows (N, 6) float64.

    out: (L, K*3*C) or (L, K, 3, C) with [x, y, d] per track (d in metres).
    Returns rows [frame, class, source, azimuth deg, distance cm, onscreen=0],
    sorted by frame, class, source; `source` numbers the events of one frame
    and class 0, 1, ... in emission order (unmerged tracks in track order; with
    one merged pair, the lone track first, then the pair).
    """
    arr = _as_tracks(out)
    x, y = arr[:, :, 0, :], arr[:, :, 1, :]  # (L, K, C)
    d = np.maximum(arr[:, :, 2, :], 0.0)
    active = np.sqrt(x * x + y * y) > ACTIVITY_THRESHOLD  # (L, K, C)

    close = np.stack(
        [
            active[:, a] & active[:, b] & (_angle_deg(x[:, a], y[:, a], x[:, b], y[:, b]) < MERGE_ANGLE_DEG)
            for a, b in _PAIRS
        ],
        axis=1,
    )  # (L, 3 pairs, C)
    n_close = close.sum(axis=1)  # (L, C)

    # Candidate events per (frame, class), in emission order; each candidate is
    # (x, y, d, valid) of shape (L, C). At most 3 events survive per cell.
    cand_x, cand_y, cand_d, cand_ok = [], [], [], []

    def add(cx, cy, cd, ok):
        cand_x.append(cx)
        cand_y.append(cy)
        cand_d.append(cd)
        cand_ok.append(ok)

    none = n_close == 0
    for k in range(N_TRACKS):  # no merging
        add(x[:, k], y[:, k], d[:, k], none & active[:, k])
    one = n_close == 1
    # exactly one close pair: lone track (if active), then the pair's mean
    for p, (a, b) in enumerate(_PAIRS):
        sel = one & close[:, p]
        t = _THIRD[p]
        add(x[:, t], y[:, t], d[:, t], sel & active[:, t])
        add((x[:, a] + x[:, b]) / 2, (y[:, a] + y[:, b]) / 2, (d[:, a] + d[:, b]) / 2, sel)
    many = n_close >= 2  # all three -> one event
    add(x.sum(axis=1) / 3, y.sum(axis=1) / 3, d.sum(axis=1) / 3, many)

    ok = np.stack(cand_ok, axis=-1)  # (L, C, M)
    cx, cy, cd = (np.stack(v, axis=-1) for v in (cand_x, cand_y, cand_d))
    frame, cls, m = np.nonzero(ok)  # sorted by frame, class, candidate
    if frame.size == 0:
        return np.zeros((0, 6), dtype=np.float64)
    # source = rank of the event within its (frame, class) cell
    cell = frame * N_CLASSES + cls
    first = np.r_[True, cell[1:] != cell[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(cell.size), 0))
    source = np.arange(cell.size) - start
    azimuth = np.degrees(np.arctan2(cy[frame, cls, m], cx[frame, cls, m]))
    distance_cm = cd[frame, cls, m] * 100.0
    return np.stack([frame, cls, source, azimuth, distance_cm, np.zeros_like(azimuth)], axis=1).astype(np.float64)


def decode_batch(outputs) -> list[np.ndarray]:
    """(B, L, K*3*C) or (B, L, K, 3, C) -> list of B row arrays (see decode_output)."""
    if hasattr(outputs, "detach"):
        outputs = outputs.detach().cpu().double().numpy()
    return [decode_output(o) for o in np.asarray(outputs)]
