"""Rerun finetunings of a finished workflow run with other training settings, and score them.

    .venv/bin/python benchmarks/rerun_finetunings.py --run . --out /tmp/shuffled [--set-model JSON] \
        --set '{"shuffle_frames": true}' --systems rcc-clip-grep beats-clip-grep --seeds 0 1 2

For each system and seed: the run's own `results/runs/<system>/seed<N>/config.json` with the
`--set` keys laid over its `train` section, `textseld.train.runs.finetune` on the run's inputs
(packed features, statistics, texts, pretrained tokenizer and, where the run used them, its
cached text-encoder outputs). One JSON line per run on stdout: the validation F20°/1, DOAE and
RDE of the epoch the run selected (on validation), the validation curve and the seconds of the
finetuning: what the default's choices are made on. Only with `--test` is the run also
predicted on the test split and scored there (`dcase2025`): for the one look at test at the
end, never for a choice. With `--set '{}'` it reproduces the workflow's own runs.
`--jobs` runs that many side by side, one torch thread each (as `make run` does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def rerun(
    root: Path, system: str, seed: int, out: Path, overrides: dict, test: bool = False, model: dict | None = None
) -> dict:
    """Finetune, predict and score one system and seed of the workflow run in `root`."""
    import torch

    torch.set_num_threads(1)
    from textseld.metrics.evaluate import evaluate_dirs
    from textseld.train.predict import predict_split
    from textseld.train.runs import finetune

    src, txt, head = system.split("-")
    config = json.loads((root / "results/runs" / system / f"seed{seed}" / "config.json").read_text())
    inputs = config["inputs"]
    run_dir = out / system / f"seed{seed}"
    started = time.monotonic()
    selected = finetune(
        run_dir=run_dir,
        train_h5=inputs["train_h5"],
        stats_h5=inputs["stats_h5"],
        texts=inputs.get("texts"),  # none for the identity controls
        pretrained_dir=inputs["pretrained_dir"],
        source=src,
        text=txt,
        head=head,
        model_cfg={**config["model"], **(model or {})},
        text_cfg=config["text_encoder"],
        train_cfg={**config["train"], **overrides, "progress": False, "torch_threads": 1},
        seed=seed,
        split=config["split"],
        on_config_change="restart",
        tokens=inputs.get("tokens"),
        encoded=inputs.get("encoded_validation"),
        encoded_train=inputs.get("encoded_train"),
    )
    seconds = time.monotonic() - started
    lines = (run_dir / "log.csv").read_text().splitlines()
    column = lines[0].split(",").index("val_F")
    record = {
        "system": system,
        "seed": seed,
        "set": overrides,
        "set_model": model or {},
        "selected_epoch": selected.get("epoch"),
        "val_F20_1_pct": round(100 * selected["F"], 2),
        "val_DOAE_deg": round(selected["DOAE"], 2),
        "val_RDE_pct": round(100 * selected["RDE"], 2),
        "val_F_pct": [round(100 * float(line.split(",")[column]), 1) for line in lines[1:]],
        "finetune_s": round(seconds, 1),
    }
    if not test:
        return record
    encoded_test = root / "results/encoded" / f"{src}-{txt}" / "test.h5"
    predict_split(
        run_dir,
        root / "results/features/test.h5",
        inputs["stats_h5"],
        run_dir / "predictions",
        encoded_h5=encoded_test if inputs.get("encoded_validation") and encoded_test.is_file() else None,
        threads=1,
    )
    scores = evaluate_dirs(root / "results/references/test", run_dir / "predictions", protocol="dcase2025")
    return {
        **record,
        "test_F20_1_pct": round(100 * scores["F"], 2),
        "test_DOAE_deg": round(scores["DOAE"], 2),
        "test_RDE_pct": round(100 * scores["RDE"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("."), help="folder of a finished workflow run")
    parser.add_argument("--out", type=Path, required=True, help="folder for the new run directories")
    parser.add_argument("--set", default="{}", help="JSON object laid over each run's train section")
    parser.add_argument("--systems", nargs="+", required=True, help="e.g. rcc-clip-grep")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one process each)")
    parser.add_argument("--set-model", default="{}", help="JSON object laid over each run's model section")
    parser.add_argument("--test", action="store_true", help="also predict and score the test split")
    parser.add_argument("--one", nargs=2, metavar=("SYSTEM", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    overrides = json.loads(args.set)
    if not isinstance(overrides, dict):
        parser.error(f"--set: expected a JSON object, got {args.set!r}")
    root = args.run.resolve()
    if args.one:  # a worker process: one system and seed
        model = json.loads(args.set_model)
        record = rerun(root, args.one[0], int(args.one[1]), args.out.resolve(), overrides, args.test, model)
        print(json.dumps(record), flush=True)
        return 0

    def worker(job: tuple[str, int]) -> str:
        system, seed = job
        cmd = [sys.executable, __file__, "--run", str(root), "--out", str(args.out), "--set", args.set]
        cmd += ["--set-model", args.set_model] + (["--test"] if args.test else [])
        done = subprocess.run([*cmd, "--systems", system, "--one", system, str(seed)], capture_output=True, text=True)
        if done.returncode:
            return json.dumps({"system": system, "seed": seed, "error": done.stderr[-2000:]})
        return done.stdout.strip().splitlines()[-1]

    jobs = [(system, seed) for system in args.systems for seed in args.seeds]
    failed = 0
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for line in pool.map(worker, jobs):
            print(line, flush=True)
            failed += '"error"' in line
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
