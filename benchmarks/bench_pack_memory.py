"""Peak RSS of `pack` (merge shards + training statistics) for 200 vs 2000 clips.

Each measurement runs in a fresh subprocess (resource.getrusage ru_maxrss of that child),
on cheap random-feature shards written with PackedWriter. Memory must not grow with the
clip count beyond per-clip bookkeeping (names, offsets: a few bytes per clip).

    .venv/bin/python benchmarks/bench_pack_memory.py [--counts 200 2000] [--shards 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
from textseld.data.hdf5 import PackedWriter, compute_stats, merge_shards
from textseld.data.targets import build_targets
base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # after imports (torch, h5py)
mode, workdir, n, n_shards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
shards = [f"{workdir}/shard{i}.h5" for i in range(n_shards)]
if mode == "write":
    rng = np.random.default_rng(0)
    rows = np.array([[0, 1, 0, 30, 200, 1]], dtype=np.float64)
    target = build_targets(rows)
    for s in range(n_shards):
        names = [f"fold3_room1_mix{i:05d}_deg000_start0000" for i in range(s * n // n_shards, (s + 1) * n // n_shards)]
        with PackedWriter(shards[s], "bench", "{}") as w:
            for start in range(0, len(names), 50):
                part = names[start:start + 50]
                b = len(part)
                feats = [rng.standard_normal((b, c, 251, 64), np.float32) for c in (1, 4, 2)]
                w.append(part, *feats, np.repeat(target[None], b, 0), [rows] * b)
else:
    t = time.time()
    merge_shards(shards, f"{workdir}/packed.h5", batch_size=64)
    compute_stats(f"{workdir}/packed.h5", f"{workdir}/stats.h5", batch_size=64)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak_mb, "seconds": time.time() - t, "import_rss_mb": base_mb}))
"""


def measure(n: int, n_shards: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_pack_") as tmp:
        subprocess.run([sys.executable, "-c", CHILD, "write", tmp, str(n), str(n_shards)], check=True)
        out = subprocess.run(
            [sys.executable, "-c", CHILD, "pack", tmp, str(n), str(n_shards)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--shards", type=int, default=3)
    args = parser.parse_args()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    results = {}
    for n in args.counts:
        r = measure(n, args.shards)
        results[n] = r
        print(
            f"{n:6d} clips ({n * 7 * 251 * 64 * 4 / 2**20:7.0f} MB of features): peak RSS {r['peak_rss_mb']:7.1f} MB "
            f"(after imports {r['import_rss_mb']:6.1f} MB), "
            f"pack + stats {r['seconds']:6.1f} s"
        )
    lo, hi = min(args.counts), max(args.counts)
    print(
        f"peak RSS ratio {hi} / {lo} clips: {results[hi]['peak_rss_mb'] / results[lo]['peak_rss_mb']:.3f} "
        f"(difference {results[hi]['peak_rss_mb'] - results[lo]['peak_rss_mb']:.1f} MB)"
    )


if __name__ == "__main__":
    main()
