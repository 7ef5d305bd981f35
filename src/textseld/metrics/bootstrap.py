"""Bootstrap confidence intervals of the SELD scores, resampling clips.

The scores are ratios of sums over clips, so a resample of clips only changes
the weight of each clip's sufficient statistics (TP, FP, FN, FPs, DOA and
distance error sums, pair count; computed once by `clip_statistics`): each
bootstrap replicate is a weight vector (how often each clip was drawn) times
the (n_clips, C*7) statistics matrix, and no cell is matched twice.
"""

from __future__ import annotations

import numpy as np

from textseld.metrics.seld import STAT_NAMES, summary_arrays

CHUNK = 256                   # replicates per matrix product (bounds memory: CHUNK x n_clips)


def bootstrap_replicates(stats: np.ndarray, average: str = "macro", n_boot: int = 1000,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Scores of n_boot clip resamples. stats: (n_clips, C, 7).
    Returns {"F", "DOAE", "RDE"}: (n_boot,) each (NaN where undefined)."""
    stats = np.asarray(stats, dtype=np.float64)
    n, n_classes, n_stats = stats.shape
    if n_stats != len(STAT_NAMES):
        raise ValueError(f"stats must have {len(STAT_NAMES)} columns {STAT_NAMES}, got {n_stats}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if n == 0:
        raise ValueError("cannot bootstrap: no clip was evaluated")
    rng = np.random.default_rng(seed)
    flat = stats.reshape(n, n_classes * n_stats)
    out = {key: np.empty(n_boot) for key in ("F", "DOAE", "RDE")}
    for lo in range(0, n_boot, CHUNK):
        b = min(CHUNK, n_boot - lo)
        draws = rng.integers(0, n, size=(b, n))
        # weights[j, i] = how often clip i was drawn in replicate j
        weights = np.bincount((draws + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        totals = (weights.astype(np.float64) @ flat).reshape(b, n_classes, n_stats)
        s = summary_arrays(totals, average)
        for key in out:
            out[key][lo:lo + b] = s[key]
    return out


def bootstrap_ci(stats: np.ndarray, average: str = "macro", n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict:
    """Percentile bootstrap interval of F, DOAE and RDE over clips.

    Returns {"F": [lo, hi], "DOAE": [lo, hi], "RDE": [lo, hi], "level",
    "n_boot", "seed", "method"}; an interval is [NaN, NaN] when the score is
    undefined in every replicate. Deterministic for a given seed.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    reps = bootstrap_replicates(stats, average, n_boot, seed)
    q = [50.0 * (1.0 - level), 100.0 - 50.0 * (1.0 - level)]
    result: dict = {}
    for key, values in reps.items():
        values = values[~np.isnan(values)]
        result[key] = np.percentile(values, q).tolist() if values.size else [float("nan")] * 2
    result.update(level=level, n_boot=n_boot, seed=seed, method="percentile bootstrap over clips")
    return result
