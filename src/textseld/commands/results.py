"""`textseld aggregate`: join the runs' metrics and weights files into the results table."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    """Add `aggregate` to the `textseld` parser."""
    p = sub.add_parser(
        "aggregate",
        help="build the results table (CSV, Markdown, figure) from evaluated runs",
        description="One row per system: F20°/1 (%%), DOAE (°), RDE (%%) under the dcase2025 and strict "
        "protocols, mean and std over seeds, 95%% intervals, and the weights each encoder used. "
        "Joins the files written by `textseld evaluate --json` and the runs' weights.json; "
        "recomputes nothing.",
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
    p.add_argument("--out-dir", required=True, help="folder for comparison.csv/.md/.png and runs.csv")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from textseld.results import RunRecord, aggregate, markdown_table, system_name

    runs = []
    for model, seed, dcase, strict, weights in args.run:
        try:
            seed_value = int(seed)
        except ValueError:
            raise ValueError(f"--run {model} {seed}: SEED must be an integer") from None
        runs.append(
            RunRecord(system_name(model), seed_value, {"dcase2025": Path(dcase), "strict": Path(strict)}, Path(weights))
        )
    out = Path(args.out_dir)
    rows = aggregate(
        runs, out / "comparison.csv", out / "comparison.md", out / "comparison.png", runs_csv=out / "runs.csv"
    )
    print(markdown_table(rows))
    return 0
