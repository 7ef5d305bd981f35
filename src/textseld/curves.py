"""Training curves: one figure with every run's per-epoch loss and validation F20/1.

Reads only the runs' `log.csv` files (written by `textseld.train.loop`); it
recomputes nothing.
"""

from __future__ import annotations

import csv
import math
import os
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


def plot_training_curves(runs: dict[str, str | os.PathLike], out: str | os.PathLike) -> None:
    """Plot loss and validation F20/1 (%) per epoch for every run.

    runs: label -> run directory (holding log.csv), in legend order; out: PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("plot_training_curves: no runs given")
    logs = {label: read_training_log(Path(d) / "log.csv") for label, d in runs.items()}
    fig, (ax_loss, ax_f) = plt.subplots(1, 2, figsize=(12, 4.5))
    cmap = plt.get_cmap("tab20")  # 11 runs in the default grid: 10 default colours repeat
    colors = [cmap(i) for i in range(cmap.N)]
    for i, (label, log) in enumerate(logs.items()):
        color = colors[i % len(colors)]
        epochs = [e + 1 for e in log["epoch"]]
        ax_loss.plot(epochs, log["loss"], marker="o", markersize=3, color=color, label=label)
        ax_f.plot(epochs, [100.0 * f for f in log["val_F"]], marker="o", markersize=3, color=color, label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Training loss")
    ax_f.set(xlabel="epoch", ylabel="F20°/1 (%)", title="Validation F20°/1 (dcase2025 protocol)")
    for ax in (ax_loss, ax_f):
        ax.grid(alpha=0.3)
    ax_f.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
