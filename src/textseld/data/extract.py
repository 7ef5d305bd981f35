"""Safe zip extraction: validate every member first, extract into a temporary
folder, then move the result into place.

Refused (before anything is written): absolute paths, drive letters, `..`
components, and symlink members (zip mode bits) whose target leaves the
extraction folder. Because the archive is first extracted into a hidden
temporary folder beside the target and only then renamed into place, an
interrupted extraction never leaves a folder that looks complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path

from tqdm import tqdm


class UnsafeArchiveError(ValueError):
    """A zip archive holds a member that would be written outside the target."""


def _member_parts(name: str) -> list[str]:
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _link_problem(folder: list[str], target: str, links: set[tuple[str, ...]]) -> str | None:
    """Why a relative link `target` placed in `folder` (components below the
    extraction root) is unsafe, or None. '..' is resolved lexically, which is
    exact only when no other link is traversed, so traversing one is refused."""
    if target.startswith(("/", "\\")) or (len(target) > 1 and target[1] == ":"):
        return f"symlink to absolute path {target!r}"
    stack = list(folder)
    components = _member_parts(target)
    for i, part in enumerate(components):
        if part == "..":
            if not stack:
                return f"symlink to {target!r} leaves the extraction folder"
            stack.pop()
        else:
            stack.append(part)
            if i < len(components) - 1 and tuple(stack) in links:
                return f"symlink to {target!r} goes through another symlink"
    return None


def check_members(archive: zipfile.ZipFile, label: str) -> None:
    """Raise UnsafeArchiveError listing every unsafe member of `archive`."""
    infos = archive.infolist()
    links = {tuple(_member_parts(i.filename)) for i in infos if _is_symlink(i)}
    seen: set[tuple[str, ...]] = set()
    bad = []
    for info in infos:
        name = info.filename
        norm = name.replace("\\", "/")
        parts = _member_parts(name)
        problem: str | None
        if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
            problem = "absolute path"
        elif ".." in parts:
            problem = "'..' in path"
        elif not parts:
            problem = "empty path"
        elif tuple(parts) in seen:
            problem = "duplicate member (a later copy could write through a symlink)"
        elif any(tuple(parts[:k]) in links for k in range(1, len(parts))):
            problem = "path goes through a symlink member"
        elif _is_symlink(info):
            problem = _link_problem(parts[:-1], archive.read(info).decode("utf-8", "replace"), links)
        else:
            problem = None
        seen.add(tuple(parts))
        if problem:
            bad.append(f"{name!r}: {problem}")
    if bad:
        raise UnsafeArchiveError(f"{label}: refusing to extract unsafe members: " + "; ".join(bad))


def _merge_into(src: Path, dst: Path) -> None:
    """Move the tree `src` into `dst`: new entries by one rename each; existing
    folders are merged; existing files are replaced (re-extraction is idempotent)."""
    if not dst.exists() and not dst.is_symlink():
        os.replace(src, dst)
        return
    if src.is_dir() and not src.is_symlink() and dst.is_dir() and not dst.is_symlink():
        for child in sorted(src.iterdir()):
            _merge_into(child, dst / child.name)
        src.rmdir()
        return
    if dst.is_dir() and not dst.is_symlink():
        raise UnsafeArchiveError(f"cannot replace folder {dst} with a file from the archive")
    os.replace(src, dst)


def safe_extract(zip_path: str | os.PathLike, out: str | os.PathLike, progress: bool = True) -> list[str]:
    """Extract `zip_path` into `out` safely. Returns the top-level entry names.

    Raises UnsafeArchiveError (nothing extracted) for unsafe members and
    zipfile.BadZipFile for a corrupt archive.
    """
    zip_path, out = Path(zip_path), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".extract-{zip_path.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)  # left over by an interrupted run
    with zipfile.ZipFile(zip_path) as archive:
        check_members(archive, str(zip_path))
        tmp.mkdir()
        try:
            members = archive.infolist()
            for info in tqdm(members, desc=f"extract {zip_path.name}", unit="file", disable=not progress):
                parts = _member_parts(info.filename)
                dest = tmp.joinpath(*parts)
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                elif _is_symlink(info):
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(archive.read(info).decode("utf-8"), dest)
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
            top = sorted(p.name for p in tmp.iterdir())
            for name in top:
                _merge_into(tmp / name, out / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return top
