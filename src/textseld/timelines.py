"""Reference against prediction over time for a few clips: what a system predicts, seen.

For each clip, three panels over the 50 label frames (100 ms each): the active classes, the
azimuth and the distance of every event, the reference's as large grey markers and the
prediction's as small markers in the class's colour. Reads the DCASE CSVs of a reference
folder and of a prediction folder (docs/METHOD.md section 7); recomputes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from textseld.atomic import atomic_path
from textseld.constants import CLASS_NAMES, N_CLASSES, N_LABEL_FRAMES
from textseld.data.labels import read_labels

# columns of a label row: [frame, class, source, azimuth deg, distance cm, onscreen]
_FRAME, _CLASS, _AZIMUTH, _DISTANCE = 0, 1, 3, 4
_PANELS = ("class", "azimuth (°)", "distance (m)")


def reference_files(ref_dir: str | os.PathLike) -> dict[str, Path]:
    """Clip name -> reference CSV of a reference folder, its split subfolders included (the
    workflow's test references are grouped by split folder; predictions are one flat folder),
    sorted by clip name. A clip name found twice is an error naming both files."""
    found: dict[str, Path] = {}
    for path in sorted(Path(ref_dir).rglob("*.csv")):
        if path.stem in found:
            raise ValueError(f"{ref_dir}: clip {path.stem!r} has two reference files, {found[path.stem]} and {path}")
        found[path.stem] = path
    return dict(sorted(found.items()))


def clip_rows(ref_dir: str | os.PathLike, pred_dir: str | os.PathLike, clip: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference and predicted label rows (N, 6) of `clip` (a CSV stem in both folders; the
    reference may lie in a subfolder of `ref_dir`)."""
    ref = reference_files(ref_dir).get(clip, Path(ref_dir) / f"{clip}.csv")
    pred = Path(pred_dir) / f"{clip}.csv"
    for path, what in ((ref, "reference"), (pred, "prediction")):
        if not path.is_file():
            raise ValueError(f"{path}: {what} file of clip {clip!r} not found")
    return read_labels(ref, "reference"), read_labels(pred, "prediction")


def choose_clips(ref_dir: str | os.PathLike, n: int) -> list[str]:
    """The first `n` clips of a reference folder (and its subfolders; sorted by name) that hold an
    event: a fixed, reproducible choice."""
    chosen = []
    for clip, path in reference_files(ref_dir).items():
        if len(read_labels(path, "reference")):
            chosen.append(clip)
        if len(chosen) == n:
            break
    if not chosen:
        raise ValueError(f"{ref_dir}: no reference CSV with an event")
    return chosen


def plot_clip_timelines(
    ref_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    out: str | os.PathLike,
    clips: list[str] | None = None,
    n_clips: int = 3,
    title: str | None = None,
) -> list[str]:
    """Plot `clips` (default: `choose_clips(ref_dir, n_clips)`), one column each, rows class /
    azimuth / distance over the label frames, into the PNG `out`. Returns the clips plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = list(clips) if clips else choose_clips(ref_dir, n_clips)
    rows = {clip: clip_rows(ref_dir, pred_dir, clip) for clip in clips}
    fig, axes = plt.subplots(len(_PANELS), len(clips), figsize=(4.2 * len(clips), 7.5), squeeze=False, sharex=True)
    cmap = plt.get_cmap("tab20")
    for col, (clip, (ref, pred)) in enumerate(rows.items()):
        for row, (ax, ylabel) in enumerate(zip(axes[:, col], _PANELS)):
            for data, size, reference in ((ref, 60, True), (pred, 12, False)):
                if not len(data):
                    continue
                y = (
                    data[:, _CLASS],
                    data[:, _AZIMUTH],
                    data[:, _DISTANCE] / 100.0,
                )[row]
                colors = "0.7" if reference else [cmap(int(c) % cmap.N) for c in data[:, _CLASS]]
                ax.scatter(
                    data[:, _FRAME], y, s=size, c=colors, marker="s" if reference else "o", label=None, zorder=2 + row
                )
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        axes[0, col].set_title(clip, fontsize=8)
        axes[0, col].set_yticks(range(N_CLASSES), CLASS_NAMES, fontsize=6)
        axes[0, col].set_ylim(-0.5, N_CLASSES - 0.5)
        axes[2, col].set_ylim(bottom=0)
        axes[-1, col].set_xlabel("label frame (100 ms)", fontsize=8)
        axes[-1, col].set_xlim(-1, N_LABEL_FRAMES)
    fig.suptitle(
        (title + ": " if title else "") + "reference (grey squares) against prediction (dots, colour = class)",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return clips
