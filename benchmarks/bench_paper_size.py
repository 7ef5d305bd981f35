"""The paper grid at its real size: cost of one optimisation step of every training run.

Resolves config/config.yaml + config/paper.yaml as Snakemake merges them and
fills the schema's defaults (textseld.plan.load_config: no Snakemake needed,
so it runs on a bare GPU machine) and checks them as the workflow does
(textseld.setups.resolve_setup), then changes only what cannot exist offline
or is a matter of run length: pretrained weights become random weights in the
same shapes (CLIP ViT-B-16 text tower, BERT L-12 H-512 built from its config,
BEATs base), every run trains for a few steps on synthetic clips (random
features, real targets), on --device, with --batch clips per step (2, or
`paper`: each kind's batch size and data-loader workers of the paper setup,
8 and 256 clips). Each of the 11 runs (2 tokenizer pretrainings, 8
finetunings, the baseline) goes through textseld.train.runs, the functions the
workflow's rules call, in its own process (so its peak memory is its own).

    .venv/bin/python benchmarks/bench_paper_size.py [--device cpu|cuda] [--steps 3] [--threads 2]
        [--batch 2|paper] [--budget-s S] [--train-clips 20000] [--out benchmarks/records/paper_size_cpu.json]

Per system: parameters (trainable / all), clips per step, seconds per
optimisation step (wall and process CPU time, median over --steps steps after
a first, untimed one) and steps/s, peak RSS and, on cuda, peak GPU memory
(allocated and reserved by torch). --out is rewritten (atomically) after each
system, so a run stopped early leaves the systems measured so far. With
--budget-s the run stops itself within that many seconds: a system is not
started when the slowest one so far would not fit in what is left (listed
under "skipped"), and a running one is stopped at the limit. It also projects the
device-hours (GPU-hours with --device cuda) of training the paper grid (3 seeds of the 8 finetunings and of the
baseline, 2 pretrainings) at the paper's epochs, from the
measured step time per clip; the number of training clips is --train-clips
(DCASE2025 does not publish per-split counts: count them after unzipping).
The paper-size test (tests/test_paper_size.py) uses the same setup with one step.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from textseld.constants import HEAD_NAMES, SOURCES
from textseld.models.text_config import SENTENCE_ENCODERS

REPO = Path(__file__).resolve().parents[1]
# the paper's systems: its text encoders (the identity controls are not in its grid)
FINETUNES = [f"{s}-{t}-{h}" for s in SOURCES for t in SENTENCE_ENCODERS for h in HEAD_NAMES]
SYSTEMS = [f"pretrain-{s}" for s in SOURCES] + ["baseline"] + FINETUNES
BATCH = 2
KINDS = ("pretrain", "finetune", "baseline")


def kind_of(system: str) -> str:
    """The train section (pretrain, finetune, baseline) of a system."""
    if system.startswith("pretrain"):
        return "pretrain"
    return "baseline" if system == "baseline" else "finetune"


def paper_setup(device: str = "cpu", steps: int = 1, batch: int | str = BATCH) -> dict:
    """The paper setup's run arguments (what the rules pass), at real size with random weights.

    `batch`: clips per step of every run, or "paper": each kind's batch size and
    data-loader workers of the paper setup (otherwise the loader runs in the process).
    Returns {"models", "text_encoders": {txt: section}, "train": {kind: section}, "split",
    "paper_train": {kind: the paper's own train section}, "seeds"}.
    """
    from textseld.plan import load_config
    from textseld.recipes import merge
    from textseld.setups import resolve_setup

    # merged as Snakemake merges --configfile files, the recipe applied, the schema's defaults filled
    config = load_config([REPO / "config/config.yaml", REPO / "config/paper.yaml"], REPO / "config/schema.yaml")
    paper_train = copy.deepcopy(config["train"])
    # offline: no weights files, the same architectures with random weights
    merge(
        config,
        {
            "text_encoders": {"random_init": True, "clip_weights": None, "bert_path": None},
            "models": {"beats_checkpoint": None},
        },
    )
    short = {"epochs": 1, "max_steps_per_epoch": steps, "device": device, "progress": False}
    for kind in KINDS:
        if batch == "paper":
            size = {"batch_size": paper_train[kind]["batch_size"], "num_workers": paper_train[kind]["num_workers"]}
        else:
            size = {"batch_size": int(batch), "num_workers": 0}
        merge(config, {"train": {kind: short | size}})
    merge(config, {"train": {"validation_split": {"fraction": 0.5}}})
    setup = resolve_setup(config)
    return {
        "models": setup["models"],
        "text_encoders": setup["text_encoders"],
        "train": {k: config["train"][k] for k in KINDS},
        "split": config["train"]["validation_split"],
        "paper_train": paper_train,
        "seeds": config["seeds"],
        "token_width": setup["token_width"],
    }


def write_data(root: Path, n_train: int, n_val: int = 2, seed: int = 0) -> dict:
    """Packed training file of n_train + n_val synthetic clips (two recordings: the shared split,
    fraction 0.5, holds out the n_val ones), its statistics and text store."""
    from textseld.constants import N_CLASSES, N_FEAT_FRAMES, N_LABEL_FRAMES, N_MELS
    from textseld.data.hdf5 import PackedWriter
    from textseld.data.splits import SplitConfig, compute_training_stats
    from textseld.data.targets import build_targets
    from textseld.text.store import build_text_store

    rng = np.random.default_rng(seed)
    train = [f"fold3_room1_mix002_deg000_start{i:04d}" for i in range(n_train)]
    val = [f"fold3_room1_mix001_deg000_start{i:04d}" for i in range(n_val)]
    names = sorted(train + val)
    split = SplitConfig(0.5, 0)
    if [names[i] for i in split.indices(names)[1]] != val:
        raise RuntimeError("the split of seed 0 does not hold out recording mix001: choose other names")

    def rows() -> np.ndarray:
        out = []
        for _ in range(int(rng.integers(1, 4))):
            cls, az, dist = int(rng.integers(N_CLASSES)), int(rng.integers(-90, 91)), int(rng.integers(50, 500))
            start = int(rng.integers(0, 30))
            out += [[f, cls, 0, az, dist, 0] for f in range(start, min(start + 20, N_LABEL_FRAMES))]
        out.sort()
        return np.asarray(out, dtype=np.float64).reshape(-1, 6)

    label_rows = [rows() for _ in names]
    feats = {
        k: rng.normal(size=(len(names), c, N_FEAT_FRAMES, N_MELS)).astype(np.float32)
        for k, c in (("src", 1), ("doa", 4), ("dist", 2))
    }
    root.mkdir(parents=True, exist_ok=True)
    train_h5 = root / "train.h5"
    with PackedWriter(train_h5, "dev-train-synth", "{}") as w:
        w.append(
            names,
            feats["src"],
            feats["doa"],
            feats["dist"],
            np.stack([build_targets(r) for r in label_rows]),
            label_rows,
        )
    stats = root / "stats.h5"
    compute_training_stats(train_h5, stats, split.to_dict())
    texts = build_text_store(train_h5, root / "texts.h5")
    return {"train_h5": str(train_h5), "stats": str(stats), "texts": str(texts)}


def run_system(system: str, setup: dict, data: dict, runs: Path, seed: int = 0, on_step=None) -> dict:
    """Train one system as its workflow rule does (same library call, same argument sections)."""
    from textseld.train.runs import finetune, pretrain, train_baseline

    run_dir = runs / system
    common = dict(
        model_cfg=setup["models"], seed=seed, split=setup["split"], on_step=on_step, on_config_change="restart"
    )
    if system.startswith("pretrain-"):
        src = system.split("-", 1)[1]
        return pretrain(run_dir, data["train_h5"], data["stats"], src, train_cfg=setup["train"]["pretrain"], **common)
    if system == "baseline":
        return train_baseline(run_dir, data["train_h5"], data["stats"], train_cfg=setup["train"]["baseline"], **common)
    src, txt, head = system.split("-")
    return finetune(
        run_dir,
        data["train_h5"],
        data["stats"],
        data["texts"],
        runs / f"pretrain-{src}",
        src,
        txt,
        head,
        text_cfg=setup["text_encoders"][txt],
        train_cfg=setup["train"]["finetune"],
        **common,
    )


def parameter_counts(run_dir: Path) -> dict:
    """(trainable, all) parameters of a run's model, rebuilt from its config.json."""
    from textseld.train.rebuild import build_run_model

    model, _ = build_run_model(json.loads((run_dir / "config.json").read_text()), load_pretrained=False)
    return {
        "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "params_all": sum(p.numel() for p in model.parameters()),
    }


def child(args) -> dict:
    """One system in this process: time its steps, report its peaks."""
    import torch

    torch.set_num_threads(args.threads)
    setup = paper_setup(args.device, args.steps + 1, args.batch)
    data = json.loads((Path(args.workdir) / "data.json").read_text())
    marks: list[tuple[float, float]] = []

    def on_step(epoch: int, step: int) -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()
        marks.append((time.perf_counter(), time.process_time()))

    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    run_system(args.child, setup, data, Path(args.workdir) / "runs", on_step=on_step)
    total = time.perf_counter() - t0
    wall = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
    cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    section = setup["train"][kind_of(args.child)]
    out = {
        "system": args.child,
        "batch": section["batch_size"],
        "num_workers": section["num_workers"],
        "steps_timed": len(wall),
        "s_per_step": statistics.median(wall),
        "steps_per_s": 1.0 / statistics.median(wall),
        "cpu_s_per_step": statistics.median(cpu),
        "run_s": total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **parameter_counts(Path(args.workdir) / "runs" / args.child),
    }
    if args.device == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    return out


def project_hours(results: list[dict], paper_train: dict, seeds: int, train_clips: int) -> dict:
    """Device-hours of training the paper grid: per system, seconds per clip at the measured
    batch x clips x the paper's epochs (x seeds for finetunings and the baseline). Validation
    is left out; so are the paper's larger batches where a smaller one was measured."""
    hours = {}
    for r in results:
        kind = kind_of(r["system"])
        epochs = int(paper_train[kind]["epochs"])
        runs = 1 if kind == "pretrain" else seeds
        hours[r["system"]] = r["s_per_step"] / r.get("batch", BATCH) * train_clips * epochs * runs / 3600
    return {"per_system": hours, "total": sum(hours.values()), "train_clips": train_clips, "seeds": seeds}


def device_name(device: str) -> str:
    """The GPU's name (cuda) or the CPU's model name (cpu), as the records name the device."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    from textseld.features.wpe_kernel import cpu_model

    return cpu_model()


def batch_arg(value: str) -> int | str:
    """--batch: a positive number of clips, or "paper"."""
    if value == "paper":
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"expected a positive number of clips or 'paper', got {value!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--steps", type=int, default=3, help="timed optimisation steps per system (after one untimed)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument(
        "--batch",
        type=batch_arg,
        default=BATCH,
        help=f"clips per step (default {BATCH}), or 'paper': each kind's batch size and loader workers",
    )
    p.add_argument("--budget-s", type=float, default=None, help="stop within this many seconds (default: no limit)")
    p.add_argument("--systems", nargs="*", default=SYSTEMS, help="subset of the systems (pretrainings first)")
    p.add_argument(
        "--train-clips",
        type=int,
        default=20000,
        help="training clips of the paper setup, for the GPU-hours projection (assumed 20000)",
    )
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0
    deadline = None if args.budget_s is None else time.monotonic() + args.budget_s
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is visible")
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        raise SystemExit(f"unknown system(s) {unknown}; expected some of {SYSTEMS}")
    setup = paper_setup(args.device, 1, args.batch)
    record = {
        "device": args.device,
        "device_name": device_name(args.device),
        "steps": args.steps,
        "threads": args.threads,
        "batch": args.batch,
        "token_width": setup["token_width"],
        "results": [],
        "skipped": [],
    }
    if args.device == "cuda":
        record["gpu"] = record["device_name"]
    results = record["results"]

    def write() -> None:
        record["projection"] = project_hours(results, setup["paper_train"], len(setup["seeds"]), args.train_clips)
        if args.out:
            from textseld.atomic import write_text_atomic

            write_text_atomic(args.out, json.dumps(record, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="paper-size-") as tmp:
        work = Path(tmp)
        most = max(setup["train"][kind_of(s)]["batch_size"] for s in args.systems) if args.systems else BATCH
        data = write_data(work / "data", n_train=most * (args.steps + 1))
        (work / "data.json").write_text(json.dumps(data))
        needed = {f"pretrain-{s.split('-')[0]}" for s in args.systems if s in FINETUNES}
        slowest = 0.0  # wall seconds of the slowest system so far
        for system in [s for s in SYSTEMS if s in args.systems or s in needed]:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and (left <= 0 or left < 1.2 * slowest):
                why = f"{max(left, 0):.0f} s of --budget-s left, the slowest system so far took {slowest:.0f} s"
                record["skipped"].append({"system": system, "why": why})
                print(f"{system:18s} skipped: {why}", flush=True)
                continue
            if system in FINETUNES:
                pre = f"pretrain-{system.split('-')[0]}"
                if not (work / "runs" / pre / "config.json").is_file():
                    record["skipped"].append({"system": system, "why": f"{pre} was not run"})
                    continue
            cmd = [
                sys.executable,
                __file__,
                "--child",
                system,
                "--workdir",
                str(work),
                "--device",
                args.device,
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
                "--batch",
                str(args.batch),
            ]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
            t0 = time.monotonic()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=left)
            except subprocess.TimeoutExpired:
                why = f"stopped at the --budget-s limit after {time.monotonic() - t0:.0f} s"
                record["skipped"].append({"system": system, "why": why})
                print(f"{system:18s} {why}", flush=True)
                continue
            slowest = max(slowest, time.monotonic() - t0)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                write()
                raise SystemExit(f"{system} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
            r = json.loads(lines[-1][len("RESULT ") :])
            results.append(r)
            write()
            print(
                f"{system:18s} {r['s_per_step']:8.3f} s/step of {r['batch']} clips (cpu {r['cpu_s_per_step']:7.2f} s)"
                f"  peak RSS {r['peak_rss_mb']:7.0f} MB"
                + (f"  peak GPU {r['peak_gpu_mb']:7.0f} MB" if "peak_gpu_mb" in r else "")
                + f"  params {r['params_trainable'] / 1e6:.1f}M / {r['params_all'] / 1e6:.1f}M",
                flush=True,
            )
    write()
    print(
        f"projected paper grid ({len(results)} systems measured): {record['projection']['total']:.0f} "
        f"{args.device.upper()}-hours ({args.train_clips} training clips, {len(setup['seeds'])} seeds, paper epochs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
