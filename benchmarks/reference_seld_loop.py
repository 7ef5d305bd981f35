"""Reference SELD scorer: a plain per-clip, per-frame, per-class loop.

Written for this project as the yardstick for `textseld.metrics.seld`: it
follows the metric text of docs/METHOD.md section 8 step by step (dict of track slots per
frame and class, one scipy linear_sum_assignment call per cell, counters per
class) with no vectorisation, so that it is easy to check by reading.
Same inputs and outputs as `textseld.metrics.seld.score`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

N_CLASSES, N_FRAMES, N_SLOTS = 13, 50, 10
EPS = np.finfo(np.float64).eps


def fold(az):
    az = (np.asarray(az, dtype=np.float64) + 180.0) % 360.0 - 180.0
    out = az.copy()
    out[az < -90] = -180.0 - az[az < -90]
    out[az > 90] = 180.0 - az[az > 90]
    return out


def organise(rows, n_frames, slot_quirk):
    """rows -> {frame: {class: {slot: (azimuth, distance)}}} for frames < n_frames."""
    table = {f: {} for f in range(n_frames)}
    for frame, cls, src, az, dist, _ in np.asarray(rows, dtype=np.float64).reshape(-1, 6):
        frame, cls, src = int(frame), int(cls), int(src)
        if frame >= n_frames:
            continue
        cell = table[frame].setdefault(cls, {})
        if not slot_quirk:
            cell[len(cell)] = (az, dist)
            continue
        if src not in cell and src < N_SLOTS:
            slot = src
        else:
            free = sorted(set(range(N_SLOTS)) - set(cell))
            slot = free[0] if free else 0
        cell[slot] = (az, dist)
    return table


def score_loop(refs, preds, protocol="dcase2025", average="macro"):
    tp, fp, fn, fps = (np.zeros(N_CLASSES) for _ in range(4))
    doa_sum, rde_sum, pairs = (np.zeros(N_CLASSES) for _ in range(3))
    n_clips = 0
    for name in sorted(refs):
        ref = np.asarray(refs[name], dtype=np.float64).reshape(-1, 6)
        pred = preds.get(name)
        if protocol == "dcase2025":
            if pred is None:
                continue
            n_frames = int(ref[:, 0].max()) if len(ref) else 0
        else:
            n_frames = N_FRAMES
            pred = np.zeros((0, 6)) if pred is None else pred
        n_clips += 1
        quirk = protocol == "dcase2025"
        gt, est = organise(ref, n_frames, quirk), organise(pred, n_frames, quirk)
        for frame in range(n_frames):
            for c in range(N_CLASSES):
                in_gt, in_est = c in gt[frame], c in est[frame]
                if in_gt and in_est:
                    g = np.array(list(gt[frame][c].values()))
                    p = np.array(list(est[frame][c].values()))
                    cost = np.abs(fold(g[:, 0])[:, None] - fold(p[:, 0])[None, :])
                    r, k = linear_sum_assignment(cost)
                    e_doa = cost[r, k]
                    e_rel = np.abs(g[r, 1] - p[k, 1]) / (g[r, 1] + EPS)
                    wrong = int(np.sum((e_doa > 20) | (e_rel > 1.0)))
                    n_pairs = min(len(g), len(p))
                    tp[c] += n_pairs - wrong
                    fps[c] += wrong
                    fp[c] += max(0, len(p) - len(g))
                    fn[c] += max(0, len(g) - len(p))
                    doa_sum[c] += e_doa.sum()
                    rde_sum[c] += e_rel.sum()
                    pairs[c] += n_pairs
                elif in_gt:
                    fn[c] += len(gt[frame][c])
                elif in_est:
                    fp[c] += len(est[frame][c])
    f_c = tp / (EPS + tp + fps + 0.5 * (fp + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        doa_c = np.where(pairs > 0, doa_sum / (pairs + EPS), np.nan)
        rde_c = np.where(pairs > 0, rde_sum / (pairs + EPS), np.nan)
    if average == "macro":
        f = f_c.mean()
        doae = np.nanmean(doa_c) if np.any(pairs > 0) else np.nan
        rde = np.nanmean(rde_c) if np.any(pairs > 0) else np.nan
    else:
        f = tp.sum() / (EPS + tp.sum() + fps.sum() + 0.5 * (fp.sum() + fn.sum()))
        doae = doa_sum.sum() / (pairs.sum() + EPS) if pairs.sum() else np.nan
        rde = rde_sum.sum() / (pairs.sum() + EPS) if pairs.sum() else np.nan
    return {
        "F": float(f),
        "DOAE": float(doae),
        "RDE": float(rde),
        "classwise": {"F": f_c.tolist(), "DOAE": doa_c.tolist(), "RDE": rde_c.tolist()},
        "protocol": protocol,
        "average": average,
        "n_clips": n_clips,
    }
