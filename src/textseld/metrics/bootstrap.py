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

CHUNK = 256  # replicates per matrix product (bounds memory: CHUNK x n_clips)


def bootstrap_replicates(
    stats: np.ndarray, average: str = "macro", n_boot: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
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
            out[key][lo : lo + b] = s[key]
    return out


def bootstrap_ci(
    stats: np.ndarray, average: str = "macro", n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
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


def _replicate_weights(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """(b, n) float64: how often each of n clips was drawn in each of b replicates."""
    draws = rng.integers(0, n, size=(b, n))
    return np.bincount((draws + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def paired_bootstrap_difference(
    stats_a: list[np.ndarray],
    stats_b: list[np.ndarray],
    average: str = "macro",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Difference B - A of the seed-mean scores of two systems on the SAME clips, with a
    paired percentile bootstrap interval.

    stats_a, stats_b: one (n_clips, C, 7) statistics array per seed of each system, every
    array over the same clips in the same order. Each replicate draws one resample of
    clips and applies it to every run of both systems, so clip difficulty cancels in the
    difference. The score of a system in a replicate is the mean over its seeds.
    Returns {"F", "DOAE", "RDE": {"diff", "ci": [lo, hi]}, "level", "n_boot", "seed",
    "method"}; NaN where a score is undefined.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    runs = [np.asarray(s, dtype=np.float64) for s in list(stats_a) + list(stats_b)]
    if not stats_a or not stats_b:
        raise ValueError("paired bootstrap needs at least one run of each system")
    shape = runs[0].shape
    if len(shape) != 3 or shape[2] != len(STAT_NAMES) or shape[0] == 0:
        raise ValueError(f"stats must be (n_clips > 0, C, {len(STAT_NAMES)}), got {shape}")
    if any(r.shape != shape for r in runs):
        raise ValueError(f"paired bootstrap needs every run on the same clips: shapes {[r.shape for r in runs]}")
    n, n_classes, n_stats = shape
    n_a = len(stats_a)
    flat = np.stack([r.reshape(n, n_classes * n_stats) for r in runs])  # (runs, n, C*7)

    def seed_means(totals: np.ndarray) -> dict[str, np.ndarray]:
        """totals (runs, b, C, 7) -> {key: (b,) diff of seed means}."""
        s = summary_arrays(totals, average)
        with np.errstate(all="ignore"):
            return {k: np.nanmean(s[k][n_a:], axis=0) - np.nanmean(s[k][:n_a], axis=0) for k in ("F", "DOAE", "RDE")}

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN: NaN, reported as such
        full = flat.sum(axis=1).reshape(len(runs), 1, n_classes, n_stats)  # every clip once
        point = {k: float(v[0]) for k, v in seed_means(full).items()}
        rng = np.random.default_rng(seed)
        reps: dict[str, list[np.ndarray]] = {"F": [], "DOAE": [], "RDE": []}
        for lo in range(0, n_boot, CHUNK):
            b = min(CHUNK, n_boot - lo)
            weights = _replicate_weights(rng, b, n)  # shared by all runs
            totals = np.einsum("bn,rnk->rbk", weights, flat).reshape(len(runs), b, n_classes, n_stats)
            for k, v in seed_means(totals).items():
                reps[k].append(v)
    q = [50.0 * (1.0 - level), 100.0 - 50.0 * (1.0 - level)]
    result: dict = {}
    for k, parts in reps.items():
        values = np.concatenate(parts)
        values = values[~np.isnan(values)]
        result[k] = {"diff": point[k], "ci": np.percentile(values, q).tolist() if values.size else [float("nan")] * 2}
    result.update(
        level=level,
        n_boot=n_boot,
        seed=seed,
        method="paired percentile bootstrap over clips (same resample for both systems)",
    )
    return result
