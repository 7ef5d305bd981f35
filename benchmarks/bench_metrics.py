"""Benchmark: vectorised SELD scoring vs a per-cell loop with one scipy call per cell.

Generates N synthetic clips in memory (references with overlapping events,
same-class overlaps included, and noisy predictions: azimuth and distance
noise, misses, false alarms, some integer-valued so that assignment ties
occur), checks that `textseld.metrics.seld.score` and the loop
(`reference_seld_loop.score_loop`) give the same numbers, and prints both
times and their ratio. Also times the 1000-replicate bootstrap.

    .venv/bin/python benchmarks/bench_metrics.py [--clips 6000] [--seed 0] [--all]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_seld_loop import score_loop
from textseld.metrics.bootstrap import bootstrap_ci
from textseld.metrics.seld import clip_statistics, score


def synth_clip(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """One clip: reference rows (events of 5..50 frames) and noisy predicted rows."""
    ref = []
    for source in range(int(rng.integers(0, 7))):
        cls = int(rng.integers(0, 13))
        start = int(rng.integers(0, 45))
        stop = min(50, start + int(rng.integers(5, 40)))
        az0, az1 = rng.integers(-90, 91, size=2)
        dist = int(rng.integers(50, 600))
        for f in range(start, stop):
            az = int(round(az0 + (az1 - az0) * (f - start) / max(1, stop - start)))
            ref.append((f, cls, source, az, dist, 0))
    ref = np.array(ref, dtype=np.float64).reshape(-1, 6)
    if rng.random() < 0.03:
        return ref, None  # missing prediction file
    keep = rng.random(len(ref)) > 0.2  # 20 % misses
    pred = ref[keep].copy()
    pred[:, 3] += rng.normal(0, 15, len(pred))
    pred[:, 4] *= rng.uniform(0.4, 2.2, len(pred))
    n_fa = int(rng.integers(0, 30))  # false alarms
    fa = np.column_stack(
        [
            rng.integers(0, 50, n_fa),
            rng.integers(0, 13, n_fa),
            np.zeros(n_fa),
            rng.uniform(-180, 180, n_fa),
            rng.uniform(30, 700, n_fa),
            np.zeros(n_fa),
        ]
    )
    pred = np.vstack([pred, fa])
    if rng.random() < 0.5:
        pred[:, 3:5] = np.round(pred[:, 3:5])  # integer outputs, like the official writer
    pred[:, 2] = 0
    return ref, pred[np.argsort(pred[:, 0], kind="stable")]


def timed(fn, *args, repeat=1):
    """Run fn `repeat` times; return (result, best wall seconds, CPU seconds of that run).
    CPU time is reported too because the machine is shared: it is less
    affected by other processes than wall time."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args)
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return result, best[0], best[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--all", action="store_true", help="also compare strict protocol and micro average")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    refs, preds = {}, {}
    for i in range(args.clips):
        r, p = synth_clip(rng)
        refs[f"clip{i:05d}"] = r
        if p is not None:
            preds[f"clip{i:05d}"] = p
    n_ref = sum(len(r) for r in refs.values())
    n_pred = sum(len(p) for p in preds.values())
    print(f"{args.clips} clips, {n_ref} reference rows, {n_pred} predicted rows")
    cases = [("dcase2025", "macro")] + ([("strict", "macro"), ("dcase2025", "micro")] if args.all else [])
    for protocol, average in cases:
        fast, t_fast, c_fast = timed(score, refs, preds, protocol, average, repeat=3)
        slow, t_slow, c_slow = timed(score_loop, refs, preds, protocol, average, repeat=1)
        diff = max(abs(fast[k] - slow[k]) for k in ("F", "DOAE", "RDE"))
        cw = max(
            np.nanmax(np.abs(np.subtract(fast["classwise"][k], slow["classwise"][k])), initial=0.0)
            for k in ("F", "DOAE", "RDE")
        )
        same = diff < 1e-10 and cw < 1e-10 and fast["n_clips"] == slow["n_clips"]
        print(
            f"[{protocol}/{average}] F {100 * fast['F']:.4f} %  DOAE {fast['DOAE']:.4f}°  RDE {100 * fast['RDE']:.4f} %"
            f"  | loop F {100 * slow['F']:.4f} %  DOAE {slow['DOAE']:.4f}°  RDE {100 * slow['RDE']:.4f} %"
        )
        print(f"  max |difference| overall {diff:.2e}, classwise {cw:.2e} -> {'SAME' if same else 'DIFFERENT'}")
        print(f"  wall: vectorised {t_fast:.3f} s (best of 3), loop {t_slow:.3f} s, speed-up x{t_slow / t_fast:.1f}")
        print(f"  CPU:  vectorised {c_fast:.3f} s, loop {c_slow:.3f} s, speed-up x{c_slow / c_fast:.1f}")
        if not same:
            return 1
    _, stats = clip_statistics(refs, preds, "dcase2025")
    t0 = time.perf_counter()
    ci = bootstrap_ci(stats, "macro", n_boot=1000, seed=0)
    t_ci = time.perf_counter() - t0
    print(f"bootstrap 1000 replicates: {t_ci:.3f} s; 95% CI F [{100 * ci['F'][0]:.2f}, {100 * ci['F'][1]:.2f}] %")
    print("command: .venv/bin/python benchmarks/bench_metrics.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
