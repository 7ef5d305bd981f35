"""The validation table of one or more workflow runs: how the default's choices are made.

    .venv/bin/python benchmarks/validation_table.py relu=/tmp/exp/R softplus=/tmp/exp/S

For each `LABEL=DIR` (a workflow's working directory, or the --out folder of
benchmarks/rerun_finetunings.py), every run's `val_metrics.json` under
`DIR/results/runs/<system>/seed<N>/` (or `DIR/<system>/seed<N>/`): the validation split of
the recipe, at the epoch the run selected on it: per system, mean ± sd over seeds of
validation F20°/1, DOAE, RDE and the fraction of dead distance units, and the selected epochs.
With two or more labels, one row per system and label, and the first label's per-seed paired
difference in F to each other label.
Nothing here reads the test split: this is the table every choice of the default is made on.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path


def read_runs(root: Path) -> dict[str, dict[int, dict]]:
    """{system: {seed: val_metrics}} of the finished runs under root/results/runs (a workflow's
    working directory) or under root itself (benchmarks/rerun_finetunings.py's --out)."""
    runs: dict[str, dict[int, dict]] = {}
    if (root / "results" / "runs").is_dir():
        root = root / "results" / "runs"
    for path in sorted(root.glob("*/seed*/val_metrics.json")):
        system, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        runs.setdefault(system, {})[seed] = json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(root.glob("pretrain-*/val_metrics.json")):
        runs.setdefault(path.parent.name, {})[0] = json.loads(path.read_text(encoding="utf-8"))
    return runs


def mean_sd(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    args = parser.parse_args(argv)
    labelled = [(item.split("=", 1)[0], Path(item.split("=", 1)[1])) for item in args.runs]
    tables = {label: read_runs(root) for label, root in labelled}
    systems = sorted({s for t in tables.values() for s in t}, key=lambda s: (s.startswith("pretrain"), s))
    first = labelled[0][0]
    print("| system | setting | val F20°/1 % | val DOAE ° | val RDE % | dead distance | epochs | ΔF vs " + first + " |")
    print("|---|---|---|---|---|---|---|---|")
    for system in systems:
        for label, _ in labelled:
            runs = tables[label].get(system, {})
            if not runs:
                continue
            seeds = sorted(runs)
            col = {k: [runs[s].get(k, math.nan) for s in seeds] for k in ("F", "DOAE", "RDE", "dead_distance")}
            delta = "-"
            base = tables[first].get(system, {})
            common = [s for s in seeds if s in base]
            if label != first and common:
                delta = mean_sd([runs[s]["F"] - base[s]["F"] for s in common], 100)
            print(
                f"| {system} | {label} | {mean_sd(col['F'], 100)} | {mean_sd(col['DOAE'])} | "
                f"{mean_sd(col['RDE'], 100)} | {mean_sd(col['dead_distance'], 1, 2)} | "
                f"{' '.join(str(runs[s].get('epoch')) for s in seeds)} | {delta} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
