"""Atomic file writing: write to a temporary name beside the target, then rename.

An interrupted writer never leaves a file under the final name that looks
complete; a failed writer removes its temporary file.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def current_umask() -> int:
    """The process's umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporaries_of(path: str | os.PathLike, suffix: str = "") -> list[Path]:
    """The temporary files `atomic_path(path, suffix)` calls create beside `path`."""
    target = Path(path)
    return sorted(
        p for p in target.parent.glob(f".{glob.escape(target.name)}.*{glob.escape(suffix)}.tmp") if p.is_file()
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", remove_stale: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to `path` on success.

    The temporary name keeps `suffix` (e.g. ".h5", ".wav") so that libraries
    that infer the format from the extension still work. A killed writer
    (SIGKILL) cannot remove its temporary file: remove_stale=True removes the
    ones earlier writers of the same target left, for targets that only one
    writer at a time produces (workflow outputs; large files).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if remove_stale:
        for stale in temporaries_of(target, suffix):
            log.warning("removing %s, left by an interrupted writer of %s", stale, target)
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the mode a plain open() would have
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a whole text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write a whole binary file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
