"""The data stages at the real data's size, on CPU, and the training data loader.

A synthetic dataset shaped like the DCASE2025 Stereo SELD development set (5 s stereo
clips at 24 kHz, two thirds training and one third test, as its 20 000 / 10 000 split;
the generator's default scenes, not the embedded default's easier ones) goes through
the workflow's own data rules, run by Snakemake over config/paper.yaml with the
feature shards the rehearsal asks for:

    synthesize_dataset -> fingerprint_split -> extract_features -> pack_features -> feature_stats

For each dataset size (`--clips`, e.g. 600 and 3000: 2 % and 10 % of 30 000) it records
the wall time and the peak memory per rule (Snakemake's `benchmark:` files: the job's
process tree), the peak of the whole run's process tree (sampled every 0.2 s), and the
file sizes per stage. With the same shard count at both sizes, a stage whose memory
grows with its clips shows it as a higher peak at the larger size.

Then, on the larger size's packed training file, the training data loader as the
training loop builds it (`PackedDataset` with the statistics, `EpochSampler`,
`make_loader`) at the paper's batch sizes (8 clips for pretraining and finetuning,
256 for the Baseline) with the paper setup's loader workers (4): clips per second
with a cold page cache (dropped first, as root) and a warm one, against the model's
clips per second from the `paper_size_*.json` records of `bench_paper_size.py` (and
`gpu_check.py`).

    .venv/bin/python benchmarks/rehearsal.py --clips 600 3000 --out benchmarks/records/rehearsal_cpu.json

Writes the record (JSON) and prints the tables of BENCHMARKS.md. The work folder
(`--work`, default a temporary one) is removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from textseld.features.wpe_kernel import cpu_model

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("Snakefile", "rules", "workflow_scripts", "config", "envs", "profiles", "report")
REAL_CLIPS = 30_000  # the DCASE2025 Stereo SELD development set: 41.7 h of 5 s clips
DATA_RULES = ("synthesize_dataset", "extract_features", "pack_features", "feature_stats")
TARGETS = ("results/features/train.h5", "results/features/test.h5", "results/features/stats.h5")


def rehearsal_config(clips: int, shards: int) -> dict:
    """The override merged over config/paper.yaml: synthetic data of the development set's
    shape, no weights (the data rules need none)."""
    from textseld.data.synthesis.scene import SceneConfig

    train = round(clips * 2 / 3)
    return {
        "data": {
            "source": "synthetic",
            "synthesis": {"train_clips": train, "test_clips": clips - train, "scene": SceneConfig().to_dict()},
            "train_splits": ["dev-train-synth"],
            "test_splits": ["dev-test-synth"],
        },
        "features": {"shards": shards},
        "weights": {"fetch": []},
        "models": {"beats_checkpoint": None},
        "text_encoders": {"random_init": True, "clip_weights": None, "bert_path": None},
    }


class TreePeak:
    """Peak summed RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def folder_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def rule_benchmarks(bench: Path) -> dict[str, dict]:
    """rule -> jobs, summed seconds, summed CPU seconds, the largest max_rss (MB) of its jobs."""
    out: dict[str, dict] = {}
    for tsv in sorted(bench.rglob("*.tsv")):
        rel = tsv.relative_to(bench)
        rule = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        with tsv.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        for row in rows:
            entry = out.setdefault(rule, {"jobs": 0, "seconds": 0.0, "cpu_seconds": 0.0, "max_rss_mb": 0.0})
            entry["jobs"] += 1
            entry["seconds"] += float(row["s"])
            entry["cpu_seconds"] += float(row.get("cpu_time") or 0.0)
            entry["max_rss_mb"] = max(entry["max_rss_mb"], float(row.get("max_rss") or 0.0))
    return out


def run_data_stages(work: Path, clips: int, shards: int) -> dict:
    import yaml

    work.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        (work / part).symlink_to(REPO / part)
    (work / "rehearsal.yaml").write_text(yaml.safe_dump(rehearsal_config(clips, shards), sort_keys=False))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "--configfile",
        "config/paper.yaml",
        "rehearsal.yaml",
        "--",
        *TARGETS,
    ]
    t0 = time.perf_counter()
    with (work / "snakemake.out").open("w") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        peak = TreePeak(proc.pid)
        rc = proc.wait()
        tree_peak = peak.stop()
    wall = time.perf_counter() - t0
    if rc != 0:
        tail = (work / "snakemake.out").read_text()[-4000:]
        raise SystemExit(f"snakemake failed ({rc}) in {work}:\n{tail}")
    data = work / "resources" / "datasets" / "synthetic"
    features = work / "results" / "features"
    summary = json.loads((data / "synth_summary.json").read_text())
    return {
        "clips": clips,
        "train_clips": summary["splits"]["dev-train-synth"]["clips"],
        "test_clips": summary["splits"]["dev-test-synth"]["clips"],
        "shards_per_split": shards,
        "command": " ".join(["snakemake", *cmd[3:]]),
        "wall_s": wall,
        "tree_peak_rss_mb": tree_peak / 2**20,
        "rules": rule_benchmarks(work / "results" / "benchmarks"),
        "bytes": {
            "audio (WAV)": folder_bytes(data / "stereo_dev"),
            "labels (CSV)": folder_bytes(data / "metadata_dev"),
            "feature shards": folder_bytes(features / "shards", "*.h5"),
            "packed train": (features / "train.h5").stat().st_size,
            "packed test": (features / "test.h5").stat().st_size,
            "statistics": (features / "stats.h5").stat().st_size,
        },
        "synthesis_seconds_per_clip": summary["seconds_per_clip"],
    }


def drop_page_cache() -> bool:
    """Drop the kernel's page cache (root only): the next read of the packed file is from disk."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def loader_rate(train_h5: Path, stats_h5: Path, batch: int, workers: int, budget_s: float, cold: bool) -> dict:
    """Clips per second of the training loader over at most `budget_s` seconds of one epoch."""
    from textseld.data.hdf5 import PackedDataset
    from textseld.train.loop import EpochSampler, make_loader

    dropped = drop_page_cache() if cold else False
    dataset = PackedDataset(train_h5, stats_h5)
    n = len(dataset)
    loader = make_loader(dataset, batch, EpochSampler(n, batch, 0, 0), workers, 0)
    t0 = time.perf_counter()
    first = None
    clips = 0
    for item in loader:
        now = time.perf_counter()
        if first is None:
            first = now - t0
            t_first, clips_first = now, len(item["name"])
        clips += len(item["name"])
        if now - t0 > budget_s:
            break
    end = time.perf_counter()
    steady = (clips - clips_first) / (end - t_first) if end > t_first else None
    return {
        "batch": batch,
        "workers": workers,
        "cache": "cold" if dropped else ("warm" if not cold else "cold (not dropped: needs root)"),
        "clips": clips,
        "seconds": end - t0,
        "first_batch_s": first,
        "clips_per_s": clips / (end - t0),
        "steady_clips_per_s": steady,
    }


def model_rates() -> list[dict]:
    """Clips per second of each paper-size system from the records of bench_paper_size.py
    (CPU) and gpu_check.py (CUDA): batch / seconds per step."""
    out = []
    for path in sorted((REPO / "benchmarks" / "records").glob("paper_size_*.json")):
        rec = json.loads(path.read_text())
        for row in rec.get("results", []):
            if not row.get("s_per_step"):
                continue
            batch = int(row.get("batch") or rec.get("batch") or 1)
            out.append(
                {
                    "record": path.name,
                    "device": rec.get("device_name") or rec.get("device"),
                    "system": row["system"],
                    "batch": batch,
                    "clips_per_s": batch / float(row["s_per_step"]),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs="+", default=[600, 3000], help="dataset sizes (all clips)")
    parser.add_argument("--shards", type=int, default=3, help="feature shards per split, at every size")
    parser.add_argument("--loader-budget-s", type=float, default=25.0, help="seconds per loader measurement")
    parser.add_argument("--workers", type=int, default=4, help="loader workers (the paper setup's num_workers)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--out", type=Path, default=None, help="record (JSON)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="textseld_rehearsal_"))
    record: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "sizes": [],
        "loader": [],
    }
    try:
        for clips in sorted(args.clips):
            print(f"data stages, {clips} clips ...", flush=True)
            record["sizes"].append(run_data_stages(work / f"clips{clips}", clips, args.shards))
        largest = work / f"clips{max(args.clips)}" / "results" / "features"
        for batch in (8, 256):
            for cold in (True, False):
                print(f"loader, batch {batch}, {'cold' if cold else 'warm'} cache ...", flush=True)
                record["loader"].append(
                    loader_rate(
                        largest / "train.h5", largest / "stats.h5", batch, args.workers, args.loader_budget_s, cold
                    )
                )
        record["models"] = model_rates()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2) + "\n")
    print_tables(record)


def print_tables(record: dict) -> None:
    print(f"\ncommand: {record['command']}\nmachine: {record['machine']}; {record['date']}; commit {record['commit']}")
    sizes = record["sizes"]
    print(
        "\n| stage | "
        + " | ".join(f"{s['clips']} clips: wall / peak RSS" for s in sizes)
        + " | 30 000 clips (projected) |"
    )
    print("|---|" + "---|" * (len(sizes) + 1))
    big = sizes[-1]
    for rule in DATA_RULES:
        cells = []
        for s in sizes:
            r = s["rules"].get(rule)
            cells.append("-" if r is None else f"{r['seconds']:.0f} s / {r['max_rss_mb']:.0f} MB ({r['jobs']} jobs)")
        r = big["rules"].get(rule)
        proj = "-" if r is None else f"{r['seconds'] * REAL_CLIPS / big['clips'] / 3600:.2f} h job-time"
        print(f"| {rule} | " + " | ".join(cells) + f" | {proj} |")
    print(
        "| whole run (wall, peak of the process tree) | "
        + " | ".join(f"{s['wall_s']:.0f} s / {s['tree_peak_rss_mb']:.0f} MB" for s in sizes)
        + f" | {big['wall_s'] * REAL_CLIPS / big['clips'] / 3600:.1f} h |"
    )
    print(
        "\n| files | " + " | ".join(f"{s['clips']} clips" for s in sizes) + " | per clip | 30 000 clips (projected) |"
    )
    print("|---|" + "---|" * (len(sizes) + 2))
    for key in big["bytes"]:
        per_clip = big["bytes"][key] / big["clips"]
        print(
            f"| {key} | "
            + " | ".join(f"{s['bytes'][key] / 2**20:.1f} MiB" for s in sizes)
            + f" | {per_clip / 1e3:.1f} kB | {per_clip * REAL_CLIPS / 1e9:.1f} GB |"
        )
    print("\n| loader | cache | clips/s (all) | clips/s after the first batch | first batch |")
    print("|---|---|---|---|---|")
    for r in record["loader"]:
        print(
            f"| batch {r['batch']}, {r['workers']} workers | {r['cache']} | {r['clips_per_s']:.0f} | "
            f"{r['steady_clips_per_s'] or 0:.0f} | {r['first_batch_s']:.2f} s |"
        )
    if record.get("models"):
        print("\n| record | system | batch | model clips/s |")
        print("|---|---|---|---|")
        for m in record["models"]:
            print(f"| {m['record']} ({m['device']}) | {m['system']} | {m['batch']} | {m['clips_per_s']:.3f} |")


if __name__ == "__main__":
    main()
