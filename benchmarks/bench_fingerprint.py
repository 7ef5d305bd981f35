"""Benchmark: what seeing data edits costs the workflow at every start (textseld.data.fingerprint).

Generates a split of N clips (N small WAV files under stereo_dev/ and N label CSVs under
metadata_dev/) in a temporary folder, then times `write_fingerprint` as the workflow calls
it (the rule once, every later start through `refresh_fingerprint`):

- first: every file hashed (the rule, once the dataset exists);
- unchanged: every file stat'ed, none read (every later start: the per-rerun cost);
- one edit: one label file changed, its old modification time put back;
- copied: the dataset copied elsewhere keeping times (new inodes and ctimes: all rehashed).

Hashing real audio costs its bytes: the SHA-256 throughput is measured too, and the first
run on 30 000 DCASE2025 clips (5 s, 2 channels, 24 kHz, 16 bit: 480 kB each) is projected.

    .venv/bin/python benchmarks/bench_fingerprint.py [--clips 30000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from textseld.data.fingerprint import hash_cache_path, write_fingerprint
from textseld.features.wpe_kernel import cpu_model

FOLDER = "dev-train-bench"
WAV_BYTES = 2048  # small files: the benchmark measures the per-file cost, not the disk


def make_split(root: Path, clips: int) -> None:
    wav_dir, csv_dir = root / "stereo_dev" / FOLDER, root / "metadata_dev" / FOLDER
    wav_dir.mkdir(parents=True)
    csv_dir.mkdir(parents=True)
    for i in range(clips):
        name = f"fold3_room{i // 1000 + 1}_mix{i % 1000:03d}_deg000_start0000"
        (wav_dir / f"{name}.wav").write_bytes(i.to_bytes(4, "little") * (WAV_BYTES // 4))
        (csv_dir / f"{name}.csv").write_text(f"frame,class,source,azimuth,distance,onscreen\n{i % 50},3,0,20,150,0\n")


def timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sha256_throughput(megabytes: int = 256) -> float:
    data = os.urandom(1 << 20) * megabytes
    start = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return megabytes / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=30000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fingerprint-") as tmp:
        root, out = Path(tmp) / "data", Path(tmp) / "results" / "train.json"
        start = time.perf_counter()
        make_split(root, args.clips)
        print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); {args.clips} clips = {2 * args.clips} files")
        print(f"generated in {time.perf_counter() - start:.1f} s")
        first = timed(lambda: write_fingerprint(out, root, [FOLDER]))
        print(f"first (all hashed):        {first:.2f} s")
        unchanged = timed(lambda: write_fingerprint(out, root, [FOLDER]), repeat=args.repeat)
        print(f"unchanged (stat only):     {unchanged:.3f} s (median of {args.repeat})")
        csv = sorted((root / "metadata_dev" / FOLDER).iterdir())[0]
        st = csv.stat()
        csv.write_text(csv.read_text() + "7,3,1,-20,150,0\n")
        os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns))
        changed = {}
        one_edit = timed(lambda: changed.setdefault("changed", write_fingerprint(out, root, [FOLDER])))
        assert changed["changed"], "the edit was not seen"
        print(f"one edit (old mtime):      {one_edit:.3f} s")
        copy = Path(tmp) / "copy"
        shutil.copytree(root, copy)
        shutil.copy2(out, Path(tmp) / "copy.json")
        shutil.copy2(hash_cache_path(out), hash_cache_path(Path(tmp) / "copy.json"))
        copied = timed(lambda: write_fingerprint(Path(tmp) / "copy.json", copy, [FOLDER]))
        print(f"copied (all rehashed):     {copied:.2f} s")
        print(f"hash cache: {hash_cache_path(out).stat().st_size / 1e6:.1f} MB")
    mb_s = sha256_throughput()
    dcase_gb = 30000 * 480e3 / 1e9
    print(f"sha256: {mb_s:.0f} MB/s on one core; 30 000 DCASE2025 clips ({dcase_gb:.1f} GB of audio) hash in")
    print(f"  about {dcase_gb * 1e3 / mb_s:.0f} s of CPU (4 threads: less, when the disk keeps up), once")


if __name__ == "__main__":
    main()
