"""Write system output as DCASE CSV files, one per clip, named after the clip."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from textseld.data.labels import write_labels
from textseld.metrics.decode import decode_output

DEFAULT_DECIMALS = 2  # azimuth (deg) and distance (cm) are written with this many decimals


def _clip_stem(name: str) -> str:
    """Clip name (optionally with .wav/.csv) -> file stem; refuses path-like names."""
    stem = name[:-4] if name.lower().endswith((".wav", ".csv")) else name
    if not stem or "/" in stem or "\\" in stem or stem in (".", ".."):
        raise ValueError(f"clip name {name!r} is not a plain file stem")
    return stem


def write_prediction(out_dir: str | os.PathLike, name: str, rows: np.ndarray, decimals: int = DEFAULT_DECIMALS) -> Path:
    """Write event rows (N, 6) [frame, class, source, azimuth deg, distance cm,
    onscreen] of clip `name` to out_dir/<name>.csv atomically (header first,
    integer frame/class/source/onscreen). Returns the path."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    path = Path(out_dir) / f"{_clip_stem(name)}.csv"
    write_labels(path, rows, decimals=decimals)
    return path


def write_predictions(
    out_dir: str | os.PathLike,
    rows_by_clip: Mapping[str, np.ndarray] | Iterable[tuple[str, np.ndarray]],
    decimals: int = DEFAULT_DECIMALS,
) -> list[Path]:
    """Write several clips' event rows (mapping or (name, rows) pairs)."""
    items = rows_by_clip.items() if isinstance(rows_by_clip, Mapping) else rows_by_clip
    return [write_prediction(out_dir, name, rows, decimals) for name, rows in items]


def write_outputs(
    out_dir: str | os.PathLike, names: list[str], outputs, decimals: int = DEFAULT_DECIMALS
) -> list[Path]:
    """Decode network outputs (B, L, K*3*C) (array or tensor) of clips `names`
    and write one CSV per clip."""
    if hasattr(outputs, "detach"):
        outputs = outputs.detach().cpu().double().numpy()
    outputs = np.asarray(outputs)
    if len(names) != outputs.shape[0]:
        raise ValueError(f"write_outputs: {len(names)} names for {outputs.shape[0]} outputs")
    return [write_prediction(out_dir, name, decode_output(o), decimals) for name, o in zip(names, outputs)]
