"""SELD scores F20°/1, DOAE and RDE (DCASE2025 Task 3), vectorised over cells.

The metric (docs/METHOD.md section 8) is frame-level and per class: in each (clip, frame,
class) cell with R reference and Q predicted events, references and
predictions are paired by a minimum-cost assignment on folded azimuth; a pair
is a true positive unless its azimuth error exceeds 20° or its relative
distance error exceeds 1.0. Two protocols:

- `dcase2025` reproduces the official evaluation code exactly: per clip only
  frames 0..T_ref-1 are scored (T_ref = the largest annotated frame index),
  clips without a prediction file are skipped, and a cell keeps at most 10
  events the way the official code's track slots do.
- `strict` scores all 50 frames of every clip; a missing prediction is empty.

The work is split into `clip_statistics` (per clip and class sufficient
statistics, once) and `summarize` (any weighting of clips: the totals for the
score, resampled weights for the bootstrap).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from textseld.constants import AVERAGES, N_CLASSES, N_LABEL_FRAMES, PROTOCOLS
from textseld.metrics.assignment import batched_assignment

DOA_THRESHOLD = 20.0  # degrees, a pair with a larger error is spatially wrong
REL_DIST_THRESHOLD = 1.0  # relative distance error above this is spatially wrong
MAX_TRACKS = 10  # track slots per frame and class in the official code
EPS = np.finfo(np.float64).eps
log = logging.getLogger(__name__)

# Columns of the sufficient statistics, per clip and class.
STAT_NAMES = ("TP", "FP", "FN", "FPs", "doa_sum", "rde_sum", "pairs")
TP, FP, FN, FPS, DOA_SUM, RDE_SUM, PAIRS = range(len(STAT_NAMES))


def fold_azimuth(az: np.ndarray) -> np.ndarray:
    """Fold azimuths (degrees) onto [-90, 90]: wrap to [-180, 180), mirror the rear."""
    az = (np.asarray(az, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return np.where(az < -90.0, -180.0 - az, np.where(az > 90.0, 180.0 - az, az))


def _official_slot_order(sources: np.ndarray) -> np.ndarray:
    """Positions (in file order) of the events the official code keeps in one cell,
    in the order it lists them. Only differs from arange when a cell has more
    than MAX_TRACKS events: a row takes slot `source` if free and < 10, else
    the lowest free slot, and once all are taken it overwrites slot 0."""
    slots: dict[int, int] = {}
    for pos, src in enumerate(sources.astype(np.int64).tolist()):
        if src not in slots and src < MAX_TRACKS:
            slot = src
        else:
            free = [s for s in range(MAX_TRACKS) if s not in slots]
            slot = free[0] if free else 0
        slots[slot] = pos
    return np.asarray(list(slots.values()), dtype=np.int64)


def _runs(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal values in a sorted key: (values, starts, lengths)."""
    if key.size == 0:
        return key, np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return key[start], start, np.diff(np.r_[start, key.size])


def _cell_table(rows: list[np.ndarray], limit: list[int], official_slots: bool, names: list[str], what: str):
    """Concatenate rows of all clips, keep frames < limit, sort into cells.

    Returns (key, azimuth, distance) sorted by cell key (stable: file order
    inside a cell), key = (clip * L + frame) * C + class. Rows with a frame
    outside 0..L-1, a class outside 0..C-1 or a non-finite value raise
    ValueError naming the clip.
    """
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    lengths = [len(r) for r in rows]
    table = np.concatenate(rows)
    clip = np.repeat(np.arange(len(rows)), lengths)
    frame, cls = table[:, 0], table[:, 1]
    bad = ~np.isfinite(table).all(axis=1) | (frame < 0) | (frame >= N_LABEL_FRAMES) | (frame != np.round(frame))
    bad |= (cls < 0) | (cls >= N_CLASSES) | (cls != np.round(cls))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what} of clip {names[clip[i]]!r}: bad row {table[i].tolist()} (frame must be an "
            f"integer in 0..{N_LABEL_FRAMES - 1}, class in 0..{N_CLASSES - 1}, values finite)"
        )
    keep = table[:, 0] < np.repeat(np.asarray(limit), lengths)
    table, clip = table[keep], clip[keep]
    key = (clip * N_LABEL_FRAMES + table[:, 0].astype(np.int64)) * N_CLASSES + table[:, 1].astype(np.int64)
    order = np.argsort(key, kind="stable")
    key, az, dist, src = key[order], table[order, 3], table[order, 4], table[order, 2]
    if official_slots and key.size:
        _, start, count = _runs(key)
        over = np.flatnonzero(count > MAX_TRACKS)
        if over.size:  # rare: rebuild the few overfull cells the official way
            keep = np.ones(key.size, dtype=bool)
            perm = np.arange(key.size)
            for c in over:
                s, n = start[c], count[c]
                kept = _official_slot_order(src[s : s + n])
                keep[s : s + n] = False
                keep[s : s + kept.size] = True
                perm[s : s + kept.size] = s + kept
            perm = perm[keep]
            key, az, dist = key[perm], az[perm], dist[perm]
    return key, az, dist


def _scored_clips(
    refs: Mapping[str, np.ndarray], preds: Mapping[str, np.ndarray | None], protocol: str
) -> tuple[list[str], list[np.ndarray], list[np.ndarray], list[int]]:
    """The clips a protocol scores, sorted by name: (names, reference rows, predicted rows, the
    number of frames scored in each). `dcase2025` skips a clip without a prediction and scores
    the frames before its last annotated one; `strict` scores every clip, all frames."""
    names, ref_rows, pred_rows, limit = [], [], [], []
    empty = np.zeros((0, 6))
    for name in sorted(refs):
        r = np.asarray(refs[name], dtype=np.float64).reshape(-1, 6)
        p = preds.get(name)
        if protocol == "dcase2025":
            if p is None:
                continue  # official: a reference without a prediction file is skipped
            t = int(r[:, 0].max()) if len(r) else 0  # official: last annotated frame is not scored
        else:
            t = N_LABEL_FRAMES
        names.append(name)
        ref_rows.append(r)
        pred_rows.append(empty if p is None else np.asarray(p, dtype=np.float64).reshape(-1, 6))
        limit.append(t)
    return names, ref_rows, pred_rows, limit


def _matched_cell_errors(
    ref: tuple[np.ndarray, ...], pred: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell with references and predictions: (spatially wrong pairs, azimuth error sum,
    relative distance error sum) of its minimum-cost assignment. ref, pred: (first row of each
    cell, rows per cell, azimuths, distances); cells solved in groups of equal (R, Q)."""
    rs, rn, raz, rd = ref
    ps, pn, paz, pd = pred
    wrong = np.zeros(rs.size)
    doa_sum = np.zeros(rs.size)
    rde_sum = np.zeros(rs.size)
    shape_code = rn * (int(pn.max(initial=0)) + 1) + pn
    by_shape = np.argsort(shape_code, kind="stable")
    _, g_start, g_len = _runs(shape_code[by_shape])
    for s0, n in zip(g_start.tolist(), g_len.tolist()):
        g = by_shape[s0 : s0 + n]
        n_ref, n_pred = int(rn[g[0]]), int(pn[g[0]])
        ri = rs[g, None] + np.arange(n_ref)[None, :]  # (n, R)
        pi = ps[g, None] + np.arange(n_pred)[None, :]  # (n, Q)
        cost = np.abs(fold_azimuth(raz[ri])[:, :, None] - fold_azimuth(paz[pi])[:, None, :])
        rows, cols = batched_assignment(cost)  # (n, K)
        e_doa = np.take_along_axis(cost.reshape(n, -1), rows * n_pred + cols, axis=1)
        d_ref = np.take_along_axis(rd[ri], rows, axis=1)
        d_pred = np.take_along_axis(pd[pi], cols, axis=1)
        e_rel = np.abs(d_ref - d_pred) / (d_ref + EPS)
        wrong[g] = ((e_doa > DOA_THRESHOLD) | (e_rel > REL_DIST_THRESHOLD)).sum(axis=1)
        doa_sum[g] = e_doa.sum(axis=1)
        rde_sum[g] = e_rel.sum(axis=1)
    return wrong, doa_sum, rde_sum


def clip_statistics(
    refs: Mapping[str, np.ndarray],
    preds: Mapping[str, np.ndarray | None],
    protocol: str = "dcase2025",
) -> tuple[list[str], np.ndarray]:
    """Per-clip, per-class sufficient statistics.

    refs: name -> reference rows (N, 6); preds: name -> predicted rows or None
    (missing prediction file; an absent key means the same).
    Returns (names of the evaluated clips, stats (n_clips, C, 7)) with the
    columns `STAT_NAMES`. Under `dcase2025` only clips with a prediction are
    evaluated; under `strict` every reference clip is.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    unknown = sorted(set(preds) - set(refs))
    if unknown:
        raise KeyError(f"prediction for clip {unknown[0]!r} has no reference ({len(unknown)} such clips)")
    names, ref_rows, pred_rows, limit = _scored_clips(refs, preds, protocol)
    official = protocol == "dcase2025"
    rk, raz, rd = _cell_table(ref_rows, limit, official, names, "reference")
    pk, paz, pd = _cell_table(pred_rows, limit, official, names, "prediction")

    rcell, rstart, rcount = _runs(rk)
    pcell, pstart, pcount = _runs(pk)
    both_r = np.isin(rcell, pcell, assume_unique=True, kind="sort")
    both_p = np.isin(pcell, rcell, assume_unique=True, kind="sort")
    cells = rcell[both_r]  # cells with references and predictions
    rs, rn = rstart[both_r], rcount[both_r]
    ps, pn = pstart[both_p], pcount[both_p]  # same cell order (both sorted)

    wrong, doa_sum, rde_sum = _matched_cell_errors((rs, rn, raz, rd), (ps, pn, paz, pd))

    # the statistics row of a cell is (clip, class) = (key // (L*C), key % C)
    def row_of(key):
        return (key // (N_LABEL_FRAMES * N_CLASSES)) * N_CLASSES + key % N_CLASSES

    n_rows = len(names) * N_CLASSES

    def add(key, w):
        return np.bincount(row_of(key), weights=w, minlength=n_rows)

    pairs = np.minimum(rn, pn).astype(np.float64)
    stats = np.zeros((n_rows, len(STAT_NAMES)), dtype=np.float64)
    stats[:, TP] = add(cells, pairs - wrong)
    stats[:, FPS] = add(cells, wrong)
    # references alone in their cell are misses, predictions alone false alarms
    stats[:, FP] = add(cells, np.maximum(0, pn - rn).astype(np.float64)) + add(
        pcell[~both_p], pcount[~both_p].astype(np.float64)
    )
    stats[:, FN] = add(cells, np.maximum(0, rn - pn).astype(np.float64)) + add(
        rcell[~both_r], rcount[~both_r].astype(np.float64)
    )
    stats[:, DOA_SUM] = add(cells, doa_sum)
    stats[:, RDE_SUM] = add(cells, rde_sum)
    stats[:, PAIRS] = add(cells, pairs)
    return names, stats.reshape(len(names), N_CLASSES, len(STAT_NAMES))


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """nanmean without the all-NaN warning (all NaN -> NaN)."""
    valid = ~np.isnan(x)
    n = valid.sum(axis=axis)
    total = np.where(valid, x, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def summary_arrays(totals: np.ndarray, average: str = "macro") -> dict[str, np.ndarray]:
    """Scores from summed statistics totals (..., C, 7) (any leading axes).

    Returns F, DOAE, RDE with the leading shape, and classwise F_c, DOAE_c,
    RDE_c (..., C). Formulas and eps placement as in the official code.
    """
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    t = np.asarray(totals, dtype=np.float64)
    tp, fp, fn, fps = t[..., TP], t[..., FP], t[..., FN], t[..., FPS]
    doa, rde, pairs = t[..., DOA_SUM], t[..., RDE_SUM], t[..., PAIRS]
    f_c = tp / (EPS + tp + fps + 0.5 * (fp + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        doa_c = np.where(pairs > 0, doa / (pairs + EPS), np.nan)
        rde_c = np.where(pairs > 0, rde / (pairs + EPS), np.nan)
    if average == "macro":
        f, doae, rdee = f_c.mean(axis=-1), _nanmean(doa_c, -1), _nanmean(rde_c, -1)
    else:

        def s(a):
            return a.sum(axis=-1)

        f = s(tp) / (EPS + s(tp) + s(fps) + 0.5 * (s(fp) + s(fn)))
        k = s(pairs)
        with np.errstate(invalid="ignore", divide="ignore"):
            doae = np.where(k > 0, s(doa) / (k + EPS), np.nan)
            rdee = np.where(k > 0, s(rde) / (k + EPS), np.nan)
    return {"F": f, "DOAE": doae, "RDE": rdee, "F_c": f_c, "DOAE_c": doa_c, "RDE_c": rde_c}


def summarize(stats: np.ndarray, average: str = "macro", protocol: str = "dcase2025") -> dict:
    """Result dict from per-clip statistics (n_clips, C, 7): see `score`."""
    s = summary_arrays(np.asarray(stats).reshape(-1, N_CLASSES, len(STAT_NAMES)).sum(axis=0), average)
    return {
        "F": float(s["F"]),
        "DOAE": float(s["DOAE"]),
        "RDE": float(s["RDE"]),
        "classwise": {"F": s["F_c"].tolist(), "DOAE": s["DOAE_c"].tolist(), "RDE": s["RDE_c"].tolist()},
        "protocol": protocol,
        "average": average,
        "n_clips": int(np.asarray(stats).shape[0]),
    }


def score(
    refs: Mapping[str, np.ndarray],
    preds: Mapping[str, np.ndarray | None],
    protocol: str = "dcase2025",
    average: str = "macro",
) -> dict:
    """SELD scores of predictions against references (rows as from read_labels).

    Returns {"F", "DOAE", "RDE", "classwise": {"F", "DOAE", "RDE": 13 values},
    "protocol", "average", "n_clips"}: F and RDE as fractions, DOAE in
    degrees, NaN where no pair was matched. Classwise values are per class for
    both averages. n_clips = clips evaluated.
    """
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    _, stats = clip_statistics(refs, preds, protocol)
    return summarize(stats, average, protocol)
