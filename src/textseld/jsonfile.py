"""A JSON object read from a file, with errors that name the file and what it should hold."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_json_object(
    path: str | os.PathLike, what: str, expected: str, error: type[Exception] = ValueError
) -> dict[str, Any]:
    """The JSON object in `path`. A file that is not JSON raises `error`
    "PATH: WHAT (the parser's message); expected EXPECTED", one that holds another JSON
    value "PATH: WHAT: expected a JSON object, got TYPE". A missing file is the caller's
    (OSError)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: {what} ({exc}); expected {expected}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: {what}: expected a JSON object, got {type(data).__name__}")
    return data
