"""DCASE2025 label / prediction CSV files: strict reading and atomic writing.

A label table is a float64 array (N, 6) with the columns of `CSV_HEADER`:
frame, class, source, azimuth (degrees), distance (cm), onscreen. Reference
files hold integers only; prediction files may hold fractional azimuth and
distance (the official reader parses those two with float()).
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from textseld.atomic import write_text_atomic
from textseld.constants import CSV_HEADER, MAX_AZIMUTH, N_CLASSES, N_LABEL_FRAMES

N_COLUMNS = len(CSV_HEADER)


class LabelFileError(ValueError):
    """A CSV label or prediction file is malformed; the message names file and line."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


def _parse_int(text: str, path, line: int, column: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise LabelFileError(path, line, f"column '{column}' must be an integer, got {text!r}") from None


def _parse_float(text: str, path, line: int, column: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise LabelFileError(path, line, f"column '{column}' must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise LabelFileError(path, line, f"column '{column}' must be finite, got {text!r}")
    return value


def _parse_row(row: list[str], path, line: int, kind: str, max_frame: int | None) -> tuple[float, ...]:
    """Parse and validate one data row; raises LabelFileError naming file and line."""
    if len(row) != N_COLUMNS:
        raise LabelFileError(path, line, f"expected {N_COLUMNS} columns ({','.join(CSV_HEADER)}), got {len(row)}")
    frame = _parse_int(row[0], path, line, "frame")
    cls = _parse_int(row[1], path, line, "class")
    source = _parse_int(row[2], path, line, "source")
    if kind == "reference":
        azimuth = float(_parse_int(row[3], path, line, "azimuth"))
        distance = float(_parse_int(row[4], path, line, "distance"))
    else:
        azimuth = _parse_float(row[3], path, line, "azimuth")
        distance = _parse_float(row[4], path, line, "distance")
    onscreen = _parse_int(row[5], path, line, "onscreen")
    if frame < 0 or (max_frame is not None and frame > max_frame):
        upper = "" if max_frame is None else f"..{max_frame}"
        raise LabelFileError(path, line, f"frame must be in 0{upper}, got {frame}")
    if not 0 <= cls < N_CLASSES:
        raise LabelFileError(path, line, f"class must be in 0..{N_CLASSES - 1}, got {cls}")
    if source < 0:
        raise LabelFileError(path, line, f"source must be >= 0, got {source}")
    if onscreen not in (0, 1):
        raise LabelFileError(path, line, f"onscreen must be 0 or 1, got {onscreen}")
    if kind == "reference":
        if not -MAX_AZIMUTH <= azimuth <= MAX_AZIMUTH:
            raise LabelFileError(path, line, f"azimuth must be in -90..90 degrees, got {azimuth:g}")
        if distance <= 0:
            raise LabelFileError(path, line, f"distance must be > 0 cm, got {distance:g}")
    elif distance < 0:
        raise LabelFileError(path, line, f"distance must be >= 0 cm, got {distance:g}")
    return (frame, cls, source, azimuth, distance, onscreen)


def _check_unique(row: tuple[float, ...], seen: dict, path, line: int) -> None:
    """A reference event is one (frame, class, source): a second row for it would fill a second
    target slot (a duplicate) or contradict the first (another direction or distance)."""
    key = row[:3]
    if key in seen:
        first_line, first = seen[key]
        what = "repeats line" if first == row else "contradicts line"
        raise LabelFileError(
            path,
            line,
            f"{what} {first_line}: frame {int(key[0])}, class {int(key[1])}, "
            f"source {int(key[2])} must occur once per file (got azimuth "
            f"{row[3]:g}, distance {row[4]:g}; line {first_line}: azimuth "
            f"{first[3]:g}, distance {first[4]:g})",
        )
    seen[key] = (line, row)


def _read_rows(
    path: str | os.PathLike, kind: str, max_frame: int | None, errors: list[LabelFileError] | None
) -> np.ndarray:
    """Shared reader: raise at the first problem (errors=None), or append every
    row's problem to `errors` and keep the valid rows."""
    if kind not in ("reference", "prediction"):
        raise ValueError(f"kind must be 'reference' or 'prediction', got {kind!r}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading byte-order mark (Excel) is accepted
    except UnicodeDecodeError as exc:
        raise LabelFileError(path, None, f"not UTF-8 text ({exc})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise LabelFileError(path, 1, f"empty file; expected the header {','.join(CSV_HEADER)}") from None
    if tuple(h.strip() for h in header) != CSV_HEADER:
        raise LabelFileError(path, 1, f"header must be {','.join(CSV_HEADER)}, got {','.join(header)}")
    rows: list[tuple[float, ...]] = []
    seen: dict[tuple[float, ...], tuple[int, tuple[float, ...]]] = {}  # (frame, class, source) -> line, row
    for row in reader:
        if not row or all(not c.strip() for c in row):
            continue
        try:
            parsed = _parse_row(row, path, reader.line_num, kind, max_frame)
            if kind == "reference":
                _check_unique(parsed, seen, path, reader.line_num)
            rows.append(parsed)
        except LabelFileError as exc:
            if errors is None:
                raise
            errors.append(exc)
    return np.asarray(rows, dtype=np.float64).reshape(-1, N_COLUMNS)


def read_labels(
    path: str | os.PathLike,
    kind: str = "reference",
    max_frame: int | None = N_LABEL_FRAMES - 1,
) -> np.ndarray:
    """Read one DCASE CSV strictly. Returns (N, 6) float64 in `CSV_HEADER` order.

    kind="reference": every value an integer, azimuth in [-90, 90], distance > 0.
    kind="prediction": azimuth and distance may be fractional (any azimuth),
    distance >= 0. In both: exact header, frame in [0, max_frame] (no upper
    bound if None), class in [0, 12], source >= 0, onscreen in {0, 1}.
    Raises LabelFileError naming the file and the line.
    """
    return _read_rows(path, kind, max_frame, None)


def label_file_errors(
    path: str | os.PathLike,
    kind: str = "reference",
    max_frame: int | None = N_LABEL_FRAMES - 1,
) -> list[LabelFileError]:
    """Every problem of one CSV (same rules as `read_labels`), one per bad line;
    a bad header or undecodable file is a single problem. Empty list = valid."""
    errors: list[LabelFileError] = []
    try:
        _read_rows(path, kind, max_frame, errors)
    except LabelFileError as exc:
        errors.append(exc)
    return errors


def format_labels(rows: np.ndarray, decimals: int | None = None) -> str:
    """Render a label table as CSV text. decimals=None writes integers (reference
    style); otherwise azimuth and distance keep that many decimals."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, N_COLUMNS)
    order = np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))
    out = [",".join(CSV_HEADER)]
    for r in rows[order]:
        if decimals is None:
            az, dist = str(int(round(r[3]))), str(int(round(r[4])))
        else:
            az, dist = f"{r[3]:.{decimals}f}", f"{r[4]:.{decimals}f}"
        out.append(f"{int(r[0])},{int(r[1])},{int(r[2])},{az},{dist},{int(r[5])}")
    return "\n".join(out) + "\n"


def write_labels(path: str | os.PathLike, rows: np.ndarray, decimals: int | None = None) -> None:
    """Write a DCASE CSV atomically (header first, rows sorted by frame, class, source)."""
    write_text_atomic(path, format_labels(rows, decimals))
