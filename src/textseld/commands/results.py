"""`textseld aggregate` (the results table) and `textseld training-curves` (one figure of every run)."""

from __future__ import annotations

import argparse

from textseld.commands import add_command, given


def register(sub) -> None:
    """Add `aggregate` and `training-curves` to the `textseld` parser."""
    p = add_command(
        sub,
        "aggregate",
        help="build the results table (CSV, Markdown, figure) from evaluated runs",
        description="One row per system: F20°/1 (%), DOAE (°), RDE (%) under the dcase2025 and strict "
        "protocols, mean and std over seeds, 95% intervals, the weights each encoder used and what "
        "produced the row (data and clips per split, recipe, model size, departures from the recipe, "
        "code version, config digest). Joins the files written by `textseld evaluate --out` and the "
        "runs' weights.json and provenance.json (beside it); recomputes nothing. Refuses runs of "
        "different data or recipes unless --allow-mixed. Writes OUT/comparison.csv, .md, .png and "
        "OUT/runs.csv.",
    )
    p.add_argument(
        "--run",
        nargs=5,
        action="append",
        required=True,
        metavar=("MODEL", "SEED", "DCASE2025_JSON", "STRICT_JSON", "WEIGHTS_JSON"),
        help="one evaluated run: model id (baseline or e.g. rcc-clip-grep), seed, its two "
        "metrics files and its weights.json (repeat per run)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for comparison.csv/.md/.png and runs.csv",
    )
    p.add_argument(
        "--n-boot",
        type=int,
        default=None,
        help="bootstrap replicates of the paired differences (default: the library function's)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="bootstrap seed of the paired differences (default: the library function's)",
    )
    p.add_argument(
        "--allow-mixed",
        action="store_true",
        help="put runs of different data (source, clips per split) or recipes into one table",
    )
    p.set_defaults(func=_run)

    c = add_command(
        sub,
        "training-curves",
        help="plot every run's training loss and validation F20°/1 per epoch into one PNG",
        description="Read the log.csv of each run directory (recomputes nothing) and plot the training "
        "loss and the validation F20°/1 per epoch, one line per run, into one PNG figure.",
    )
    c.add_argument(
        "--run",
        nargs=2,
        action="append",
        required=True,
        metavar=("LABEL", "RUN_DIR"),
        help="legend label and run directory (holding log.csv); repeat per run, in legend order",
    )
    c.add_argument("--out", required=True, metavar="FILE.png", help="figure to write (PNG)")
    c.set_defaults(func=_curves)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from textseld.results import RunRecord, aggregate, system_name

    runs = []
    for model, seed, dcase, strict, weights in args.run:
        try:
            seed_value = int(seed)
        except ValueError:
            raise ValueError(f"--run {model} {seed}: SEED must be an integer") from None
        metrics = {"dcase2025": Path(dcase), "strict": Path(strict)}
        # the run's provenance.json beside its weights.json (textseld.provenance)
        provenance = Path(weights).with_name("provenance.json")
        runs.append(RunRecord(system_name(model), seed_value, metrics, Path(weights), provenance))
    out = Path(args.out)
    aggregate(
        runs=runs,
        comparison_csv=out / "comparison.csv",
        comparison_md=out / "comparison.md",
        figure=out / "comparison.png",
        runs_csv=out / "runs.csv",
        **given(args, "n_boot", "seed"),
        allow_mixed=args.allow_mixed,
    )
    print((out / "comparison.md").read_text(encoding="utf-8"), end="")
    return 0


def _curves(args: argparse.Namespace) -> int:
    import os

    from textseld.curves import plot_training_curves

    runs: dict[str, str | os.PathLike] = {}
    for label, run_dir in args.run:
        if label in runs:
            raise ValueError(f"--run {label} {run_dir}: label {label!r} given twice")
        runs[label] = run_dir
    plot_training_curves(runs=runs, out=args.out)
    print(f"wrote {args.out}")
    return 0
