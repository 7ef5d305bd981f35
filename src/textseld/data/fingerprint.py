"""Content fingerprints of a dataset's splits: what their audio and label files hold.

A split's fingerprint is one SHA-256 over the relative path and the content hash
of every audio (.wav) and label (.csv) file under its folders
(`stereo_dev/<folder>/`, `metadata_dev/<folder>/`, nested folders included).
The workflow makes it an input of the split's feature extraction and of the
test references: a fixed label, a removed event or a replaced recording reruns
that split and what depends on it, and nothing else.

Hashing a whole dataset is slow (30 000 clips are gigabytes), so file hashes are
cached beside the fingerprint, keyed by (size, mtime_ns, ctime_ns, inode): a
rerun only stats the files and rehashes the ones whose key changed. The ctime
cannot be set by users (a copy that keeps an old mtime, `cp -p`, `touch -d`,
`os.utime`, all set the ctime to now), so a file copied back with an old time
is rehashed too. The fingerprint file is rewritten only when its content
changes, so an unchanged dataset leaves every job alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from textseld.atomic import write_text_atomic
from textseld.constants import AUDIO_ROOT, META_ROOT

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".wav", ".csv")  # what a split is made of: audio and label files
CACHE_VERSION = 1


def hash_cache_path(fingerprint: str | os.PathLike) -> Path:
    """The file-hash cache kept beside a fingerprint file (one per fingerprint: jobs of
    different splits never write the same cache)."""
    path = Path(fingerprint)
    return path.with_name(f"{path.stem}.hashes.json")


def split_files(root: str | os.PathLike, folders: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the audio and label files of `folders` under `root`, the split folders that are missing),
    both as sorted paths relative to `root` with "/" separators."""
    root = Path(root)
    files: list[str] = []
    missing: list[str] = []
    for folder in folders:
        for sub in (AUDIO_ROOT, META_ROOT):
            base = root / sub / folder
            if not base.is_dir():
                missing.append(f"{sub}/{folder}")
                continue
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames.sort()
                rel = Path(dirpath).relative_to(root).as_posix()
                files.extend(f"{rel}/{name}" for name in filenames if name.lower().endswith(DATA_SUFFIXES))
    return sorted(set(files)), sorted(missing)


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_cache(path: Path) -> dict[str, list]:
    """rel path -> [size, mtime_ns, ctime_ns, inode, sha256]; a missing or damaged cache is empty."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") == CACHE_VERSION and isinstance(data.get("files"), dict):
            return data["files"]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("%s: unreadable file-hash cache (%s); every file is hashed again", path, exc)
        return {}
    log.warning("%s: file-hash cache of another format; every file is hashed again", path)
    return {}


def file_hashes(
    root: str | os.PathLike, files: Sequence[str], cache: dict[str, list], threads: int = 4
) -> tuple[dict[str, str], dict[str, list]]:
    """(rel path -> sha256 of every file, the updated cache). Only files whose
    (size, mtime_ns, ctime_ns, inode) differ from their cache entry are read."""
    root = Path(root)
    new_cache: dict[str, list] = {}
    todo: list[tuple[str, list[int]]] = []
    for rel in files:
        key = _stat_key(os.stat(root / rel))
        entry = cache.get(rel)
        if isinstance(entry, list) and len(entry) == 5 and entry[:4] == key:
            new_cache[rel] = entry
        else:
            todo.append((rel, key))
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # hashlib releases the GIL
            digests = list(pool.map(lambda item: _sha256_file(root / item[0]), todo))
        for (rel, key), digest in zip(todo, digests):
            new_cache[rel] = [*key, digest]
    return {rel: new_cache[rel][4] for rel in files}, new_cache


def split_fingerprint(
    root: str | os.PathLike, folders: Sequence[str], cache: dict[str, list] | None = None, threads: int = 4
) -> tuple[dict[str, Any], dict[str, list]]:
    """(the fingerprint record of the split made of `folders`, the updated hash cache).

    The record: {"folders": the folders, "files": how many, "missing": split folders that do not
    exist, "sha256": one digest over every file's relative path and content hash}. It holds no
    times or absolute paths: the same files give the same record wherever they are."""
    files, missing = split_files(root, folders)
    hashes, new_cache = file_hashes(root, files, cache or {}, threads=threads)
    digest = hashlib.sha256()
    for rel in missing:
        digest.update(f"missing\t{rel}\n".encode())
    for rel in files:
        digest.update(f"{rel}\t{hashes[rel]}\n".encode())
    record = {"folders": list(folders), "files": len(files), "missing": missing, "sha256": digest.hexdigest()}
    return record, new_cache


def write_fingerprint(
    out: str | os.PathLike, root: str | os.PathLike, folders: Sequence[str], threads: int = 4
) -> bool:
    """Bring `out` (JSON) up to date with the split's files, using and updating its hash cache.

    `out` is rewritten only when the record changes (its time then says "the data changed");
    both files are written atomically. Returns whether `out` was (re)written."""
    out = Path(out)
    cache_path = hash_cache_path(out)
    cache = _read_cache(cache_path)
    record, new_cache = split_fingerprint(root, folders, cache, threads=threads)
    if new_cache != cache:
        write_text_atomic(cache_path, json.dumps({"version": CACHE_VERSION, "files": new_cache}))
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    try:
        if out.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text_atomic(out, text)
    return True


def refresh_fingerprint(out: str | os.PathLike, root: str | os.PathLike, folders: Sequence[str]) -> bool:
    """At workflow start: update an existing fingerprint file (see write_fingerprint). A missing
    one is left to the workflow's rule (the dataset may not exist yet: the first run makes it),
    so that a fingerprint never goes from "absent" to a value between two runs by itself.
    Returns whether `out` was rewritten (the split's data changed)."""
    if not Path(out).is_file():
        return False
    changed = write_fingerprint(out, root, folders)
    if changed:
        log.info("%s: the data of %s changed since the last run", out, ", ".join(folders))
    return changed
