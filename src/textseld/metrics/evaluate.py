"""Scoring a folder of DCASE prediction CSVs: the `evaluate` rule and command.

File handling and orchestration around the pure scorer (`textseld.metrics.seld`):
read the reference and prediction CSVs (errors name the file), score them under
one protocol, add bootstrap intervals over clips and, for paired comparisons,
each clip's statistics; write the scores as JSON (NaN as null) and a readable
report.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from textseld.atomic import write_text_atomic
from textseld.constants import AVERAGES, CLASS_NAMES, PROTOCOLS
from textseld.metrics.bootstrap import bootstrap_ci
from textseld.metrics.seld import STAT_NAMES, clip_statistics, summarize

log = logging.getLogger(__name__)


def evaluate(
    *,
    refs: str | os.PathLike,
    predictions: str | os.PathLike,
    out: str | os.PathLike | None = None,
    protocol: str = "dcase2025",
    average: str = "macro",
    ci: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    clip_stats: bool = True,
) -> dict:
    """Score `predictions` (one CSV per clip) against the reference CSVs under `refs` and,
    with `out`, write the scores JSON (atomically). Returns them (`format_report` reads them)."""
    result = evaluate_dirs(
        refs, predictions, protocol=protocol, average=average, ci=ci, n_boot=n_boot, seed=seed, clip_stats=clip_stats
    )
    if out is not None:
        write_text_atomic(out, json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n")
    return result


def _json_safe(value):
    """NaN/inf -> None (JSON null), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _fmt(value: float, scale: float = 1.0, digits: int = 2) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def format_report(result: dict) -> str:
    """Human-readable summary: F20°/1 (%), DOAE (°), RDE (%), per class when macro."""
    ci = result.get("ci")
    lines = [f"protocol {result['protocol']}, {result['average']} average, {result['n_clips']} clips scored"]
    for key, label, scale in (("F", "F20°/1 (%)", 100.0), ("DOAE", "DOAE (°)", 1.0), ("RDE", "RDE (%)", 100.0)):
        text = f"{label:<12} {_fmt(result[key], scale)}"
        if ci:
            lo, hi = ci[key]
            text += f"  [{_fmt(lo, scale)}, {_fmt(hi, scale)}] ({100 * ci['level']:.0f}% bootstrap CI)"
        lines.append(text)
    if result["average"] == "macro":
        lines.append(f"{'class':<22} {'F (%)':>7} {'DOAE':>7} {'RDE (%)':>8}")
        cw = result["classwise"]
        for c, name in enumerate(CLASS_NAMES):
            lines.append(
                f"{c:>2} {name:<19} {_fmt(cw['F'][c], 100):>7} {_fmt(cw['DOAE'][c]):>7} {_fmt(cw['RDE'][c], 100):>8}"
            )
    return "\n".join(lines)


def _csv_files(folder: Path, recursive: bool) -> list[Path]:
    """CSV files in `folder` (any letter case of the extension: `.CSV` too), sorted."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() == ".csv" and not p.name.startswith(".") and p.is_file())


def _by_stem(paths: list[Path], what: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in paths:
        if path.stem in files:
            raise ValueError(f"{path}: clip {path.stem!r} also has a {what} file {files[path.stem]}")
        files[path.stem] = path
    return files


def _read_dirs(ref_dir, pred_dir) -> tuple[dict, dict]:
    """Read reference CSVs (any depth under ref_dir) and prediction CSVs (top level
    of pred_dir), keyed by file stem. Errors name the offending file; a prediction
    folder without any CSV is an error (a wrong path must not score F = 0)."""
    from tqdm import tqdm

    from textseld.data.labels import read_labels

    ref_dir, pred_dir = Path(ref_dir), Path(pred_dir)
    for what, folder in (("reference", ref_dir), ("prediction", pred_dir)):
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{folder}: a file; expected the {what} folder (of CSV files)")
        if not folder.is_dir():
            raise FileNotFoundError(f"{what} folder {folder} does not exist")
    ref_files = _by_stem(_csv_files(ref_dir, recursive=True), "reference")
    if not ref_files:
        raise FileNotFoundError(f"no reference CSV files under {ref_dir}")
    pred_files = _by_stem(_csv_files(pred_dir, recursive=False), "prediction")
    if not pred_files:
        deeper = sorted({p.parent for p in _csv_files(pred_dir, recursive=True)})
        hint = f"; there are CSVs in {deeper[0]}: give that folder as the prediction folder" if deeper else ""
        raise FileNotFoundError(
            f"{pred_dir}: no prediction CSV files in this folder (expected one CSV per "
            f"clip, named like its reference, e.g. {next(iter(ref_files))}.csv){hint}"
        )
    for path in pred_files.values():
        if path.stem not in ref_files:
            raise ValueError(f"{path}: prediction file has no reference {path.stem}.csv under {ref_dir}")
    if len(pred_files) < len(ref_files):
        log.warning(
            "%s: %d of %d reference clips have no prediction file",
            pred_dir,
            len(ref_files) - len(pred_files),
            len(ref_files),
        )
    refs = {
        name: read_labels(path, kind="reference")
        for name, path in tqdm(ref_files.items(), desc="references", unit="file", disable=None)
    }
    preds = {
        name: read_labels(path, kind="prediction")
        for name, path in tqdm(pred_files.items(), desc="predictions", unit="file", disable=None)
    }
    return refs, preds


def evaluate_dirs(
    ref_dir,
    pred_dir,
    protocol: str = "dcase2025",
    average: str = "macro",
    ci: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    clip_stats: bool = False,
) -> dict:
    """Score the prediction CSVs in pred_dir against the reference CSVs under ref_dir.

    ref_dir may hold the CSVs in subfolders (like metadata_dev/<split>/);
    pred_dir holds one CSV per clip named like its reference. A prediction
    without a reference, or a malformed file, raises an error naming the file
    (and line). Returns the `score` dict plus n_ref_files, n_pred_files and,
    with ci=True, "ci": 95 % bootstrap intervals over clips (see bootstrap); with
    clip_stats=True, "clip_stats": {"names", "columns", "stats" (n_clips, C, 7)}, the
    per-clip statistics that a paired comparison of two systems resamples.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    refs, preds = _read_dirs(ref_dir, pred_dir)
    names, stats = clip_statistics(refs, preds, protocol)
    result = summarize(stats, average, protocol)
    if clip_stats:
        result["clip_stats"] = {"names": list(names), "columns": list(STAT_NAMES), "stats": stats.tolist()}
    result["n_ref_files"] = len(refs)
    result["n_pred_files"] = len(preds)
    if ci:
        result["ci"] = bootstrap_ci(stats, average, n_boot=n_boot, seed=seed)
    return result
