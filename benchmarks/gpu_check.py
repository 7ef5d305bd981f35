"""The GPU check: the figures `textseld plan` needs from a device, measured in one run that
stops itself within --budget-s (default 540 s, under 10 minutes).

    OUT=/dir bash benchmarks/gpu_check.sh                 (on a CUDA machine: wheels, log, time limit)
    python benchmarks/gpu_check.py [--device cuda|cpu] [--quick] [--budget-s 540]
        [--records benchmarks/records] [--out benchmarks/out/gpu_check]

1. Feature extraction clips/s: benchmarks/bench_features_cuda.py on --device (its agreement
   checks included) within a share of the budget; its JSON and log are copied to the records
   folder as features_<device>_<name>.json/.log (the plan takes the best clips/s per device).
2. Paper-size training: benchmarks/bench_paper_size.py on --device at the paper setup's batch
   sizes and data-loader workers (8 clips per tokenizer pretraining and finetuning step, 256
   per Baseline step), --steps timed steps per system after an untimed one, in the time that
   is left: steps/s, seconds per clip and peak GPU memory per system, written as
   paper_size_<device>_<name>.json (rewritten after each system; systems that did not fit are
   listed under "skipped" and stay missing in the plan).
3. The records folder read back with textseld.plan.load_records, as `textseld plan` reads it:
   the check fails unless the plan finds this run's figures.

<name> is the GPU's name (the CPU's model name with --device cpu), lower case, e.g.
nvidia-h100-80gb-hbm3; the records carry it in full ("device_name"). --quick measures only
what tests the path (4 clips, the Baseline alone, batch 2, one timed step) and writes its
records under --out unless --records is given: they are not figures for a plan.
Exit status: 0 when both records were written and read back, 1 otherwise, 3 without CUDA
on --device cuda (nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_paper_size import SYSTEMS, device_name  # noqa: E402

BUDGET_S = 540.0  # 9 minutes: under the 10 the check promises, with the wrapper's margin
FEATURES_SHARE = 0.3  # of the budget, for the feature extraction step
MARGIN_S = 15.0  # kept back from every step for writing and reading the records
# modules the steps import that a bare CUDA image may lack (carry them as wheels: BENCHMARKS.md)
NEEDED_MODULES = ("torch", "numpy", "scipy", "h5py", "yaml", "soundfile", "nara_wpe", "open_clip", "transformers")
QUICK_FEATURES = [
    "--clips", "4", "--batch-sizes", "2", "--cpu-clips", "2", "--cpu-batch-size", "2",
    "--check-clips", "1", "--wpe-check-clips", "1", "--wpe-chunks", "", "--e2e-clips", "0", "--workers", "1",
]  # fmt: skip
QUICK_TRAINING = ["--systems", "baseline", "--steps", "1", "--batch", "2"]


def slug(name: str) -> str:
    """A device name as a file name part: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"


def run_step(cmd: list[str], log: Path, timeout: float) -> int:
    """Run one step's command (its own process group) with its output in `log`, then echoed;
    its exit status, 124 when it and its children were stopped at `timeout` seconds."""
    print("$ " + " ".join(repr(c) if not c or " " in c else c for c in cmd), flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}  # no progress bars in the logs
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = 124
    sys.stdout.write(log.read_text())
    if rc == 124:
        print(f"!! stopped after {timeout:.0f} s", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--quick", action="store_true", help="a path check in seconds, not figures for a plan")
    p.add_argument("--budget-s", type=float, default=BUDGET_S, help=f"stop within this many seconds ({BUDGET_S:.0f})")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per system (after one untimed)")
    p.add_argument("--out", default=str(REPO / "benchmarks/out/gpu_check"), help="folder for the logs")
    p.add_argument("--records", default=None, help="records folder (default benchmarks/records; --quick: OUT/records)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    deadline = t0 + args.budget_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = Path(args.records) if args.records else (out / "records" if args.quick else REPO / "benchmarks/records")

    missing = []
    for module in NEEDED_MODULES:
        try:
            __import__(module)
        except ImportError as exc:
            missing.append(f"{module} ({exc})")
    if missing:
        print("!! not importable here: " + "; ".join(missing) + " (carry them as wheels: BENCHMARKS.md)")
        return 1
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("!! --device cuda: no CUDA device is visible; nothing measured")
        return 3
    name = device_name(args.device)
    tag = f"{args.device}_{slug(name)}"
    print(f"== the GPU check on {args.device} ({name}), records in {records}, budget {args.budget_s:.0f} s", flush=True)
    status = 0
    written: list[Path] = []

    # 1. feature extraction
    feat_budget = args.budget_s * FEATURES_SHARE
    feat_out = out.resolve() / "features"
    result = feat_out / "bench_features_cuda.json"
    result.unlink(missing_ok=True)  # an earlier run's result is not this run's
    cmd = [sys.executable, "benchmarks/bench_features_cuda.py", "--device", args.device, "--out", str(feat_out)]
    cmd += ["--budget-s", f"{max(feat_budget - 2 * MARGIN_S, 1):.0f}"]
    cmd += QUICK_FEATURES if args.quick else ["--clips", "1000", "--clip-time-cap-s", f"{feat_budget / 4:.0f}"]
    rc = run_step(cmd, out / "features.log", min(feat_budget, deadline - time.monotonic() - MARGIN_S))
    rec = json.loads(result.read_text()) if result.is_file() else {}
    if any(row.get("clips_per_s") for row in rec.get("throughput", [])):
        from textseld.atomic import write_text_atomic

        def portable(text: str) -> str:  # records are committed: no paths of this machine
            return text.replace(str(feat_out), "OUT")

        rec["device_name"] = name
        target = records / f"features_{tag}.json"
        write_text_atomic(target, portable(json.dumps(rec, indent=2) + "\n"))
        written.append(target)
        if (feat_out / "bench_features_cuda.log").is_file():
            log = (feat_out / "bench_features_cuda.log").read_text()
            write_text_atomic(records / f"features_{tag}.log", portable(log))
    if rc != 0 or rec.get("result") != "PASS":
        print(f"!! features: exit status {rc}, result {rec.get('result', 'none')}", flush=True)
        status = 1

    # 2. paper-size training, in the time that is left
    target = records / f"paper_size_{tag}.json"
    left = deadline - time.monotonic() - MARGIN_S
    started = time.time() - 1  # file times may be coarser than the clock
    cmd = [sys.executable, "benchmarks/bench_paper_size.py", "--device", args.device, "--out", str(target.resolve())]
    cmd += ["--budget-s", f"{max(left - MARGIN_S, 1):.0f}", "--threads", str(train_threads(args.device))]
    cmd += QUICK_TRAINING if args.quick else ["--systems", *SYSTEMS, "--steps", str(args.steps), "--batch", "paper"]
    rc = run_step(cmd, out / "training.log", left)
    if target.is_file() and target.stat().st_mtime >= started:  # not an earlier run's record
        written.append(target)
    if rc != 0:
        print(f"!! training: exit status {rc}", flush=True)
        status = 1

    # 3. what `textseld plan` reads from the records folder
    status = max(status, read_back(records, args.device, written))
    print(f"== done in {time.monotonic() - t0:.0f} s (budget {args.budget_s:.0f} s), exit status {status}", flush=True)
    return status


def train_threads(device: str) -> int:
    """CPU threads per training process: the paper setup's train resources on cuda (what a
    cluster job gets), all cores on cpu."""
    if device == "cpu":
        return os.cpu_count() or 1
    from textseld.plan import load_config

    config = load_config([REPO / "config/config.yaml", REPO / "config/paper.yaml"], REPO / "config/schema.yaml")
    return int(config["resources"]["train"]["threads"])


def read_back(records: Path, device: str, written: list[Path]) -> int:
    """Load this run's records as `textseld plan` loads a records folder; 1 unless the plan
    finds both figures of `device` in them."""
    from textseld.plan import DEFAULT_RECORD_FINETUNE, DEFAULT_RECORD_SIZE, load_records

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for path in written:
            shutil.copyfile(path, Path(tmp) / path.name)
        rec = load_records(tmp, models_size=DEFAULT_RECORD_SIZE, finetune_mode=DEFAULT_RECORD_FINETUNE)
    train = rec.train.get(device, {})
    feat = rec.features.get(device)
    print(f"== what textseld plan reads of this run ({records}) for {device}:")
    for system, fig in train.items():
        print(f"  training {system:18s} {fig['s_per_clip']:.4f} s per clip at batch {fig['batch']} ({fig['source']})")
    if feat:
        print(f"  features {feat['clips_per_s']:.1f} clips/s ({feat['source']})")
    if not train or feat is None:
        print(f"!! the plan finds no {'training' if not train else 'features'} figures of this run for {device}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
