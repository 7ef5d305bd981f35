"""Training curves: one small panel per system with its runs' per-epoch loss and validation F20/1.

Reads only the runs' `log.csv` and `val_metrics.json` files (written by
`textseld.train.loop`); it recomputes nothing.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from textseld.atomic import atomic_path


def read_training_log(path: str | os.PathLike) -> dict[str, list[float]]:
    """Columns of one run's log.csv as float lists (empty cells -> NaN).

    Raises ValueError naming the file when it is missing, empty or lacks the
    `epoch`, `loss` or `val_F` column."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: training log not found (is the run complete?)")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: training log holds no epoch")
    missing = [c for c in ("epoch", "loss", "val_F") if c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: training log lacks column(s) {missing}")

    def number(text: str | None, line: int, column: str) -> float:
        if text is None or text == "":
            return math.nan
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{path}:{line}: column '{column}' must be a number, got {text!r}") from None

    return {col: [number(r.get(col), i + 2, col) for i, r in enumerate(rows)] for col in rows[0]}


_SEED_LABEL = re.compile(r"^(?P<system>.+) seed (?P<seed>\S+)$")
PANEL_COLUMNS = 4


@dataclass
class Curve:
    """One run's curves in a panel: its seed label, log columns and selected (0-based) epoch."""

    seed: str
    log: dict[str, list[float]]
    selected: int | None


def selected_epoch(run_dir: str | os.PathLike, log: dict[str, list[float]]) -> int | None:
    """The epoch whose checkpoint the run selected: `epoch` of its val_metrics.json, else (a run
    without one) the first epoch of highest validation F, the loop's rule; None if none is finite."""
    metrics = Path(run_dir) / "val_metrics.json"
    if metrics.is_file():
        try:
            epoch = json.loads(metrics.read_text(encoding="utf-8"))["epoch"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{metrics}: expected a JSON object with the selected 'epoch'") from None
        return int(epoch)
    scored = [(f, -i) for i, f in enumerate(log["val_F"]) if math.isfinite(f)]
    return int(log["epoch"][-max(scored)[1]]) if scored else None


def curve_panels(runs: dict[str, str | os.PathLike]) -> dict[str, list[Curve]]:
    """Runs grouped into one panel per system, in first-seen order: a label "SYSTEM seed S" joins
    the panel SYSTEM; any other label is a panel of its own."""
    panels: dict[str, list[Curve]] = {}
    for label, run_dir in runs.items():
        log = read_training_log(Path(run_dir) / "log.csv")
        match = _SEED_LABEL.match(label)
        system, seed = (match["system"], f"seed {match['seed']}") if match else (label, label)
        panels.setdefault(system, []).append(Curve(seed, log, selected_epoch(run_dir, log)))
    return panels


def plot_training_curves(runs: dict[str, str | os.PathLike], out: str | os.PathLike) -> None:
    """One small panel per system: validation F20/1 (%, solid, left axis) and training loss
    (dashed, log scale, right axis) per epoch, every seed of the system in its colour, the
    selected epoch of each run marked with a star.

    runs: label -> run directory (holding log.csv, and val_metrics.json once complete), labels
    "SYSTEM seed S" grouped by SYSTEM (`curve_panels`); out: PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("plot_training_curves: no runs given")
    panels = curve_panels(runs)
    ncols = min(PANEL_COLUMNS, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for i, (ax, (system, curves)) in enumerate(zip(axes.flat, panels.items())):
        color = cmap(i % cmap.N)
        ax_loss = ax.twinx()
        for curve in curves:
            epochs = [e + 1 for e in curve.log["epoch"]]
            f = [100.0 * v for v in curve.log["val_F"]]
            ax.plot(epochs, f, color=color, linewidth=1.2, label=curve.seed)
            ax_loss.plot(epochs, curve.log["loss"], color=color, linewidth=0.8, linestyle="--", alpha=0.5)
            if curve.selected is not None and curve.selected in curve.log["epoch"]:
                k = curve.log["epoch"].index(curve.selected)
                ax.plot([epochs[k]], [f[k]], marker="*", markersize=10, color=color, markeredgecolor="black")
        ax.set_title(f"{system} ({len(curves)} run{'s' if len(curves) > 1 else ''})", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("val F20°/1 (%)", fontsize=8)
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("training loss (dashed)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax_loss.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Validation F20°/1 (dcase2025 protocol) and training loss; ★ = selected epoch", fontsize=10)
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
