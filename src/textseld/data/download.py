"""Download a Zenodo record's files: resumable, verified, safely extracted.

The file list (name, size, MD5, URL) comes from the Zenodo records API
(`{api_url}{record}`, JSON `files[]` with `key`, `size`, `checksum` =
"md5:<hex>", `links.self`). Each file is fetched into `<name>.part`, resumed
with an HTTP Range request after an interruption, verified (size and MD5),
renamed into place, then extracted (see `textseld.data.extract`). A corrupted
download is deleted and fetched again a bounded number of times. Progress is
recorded in `OUT/manifest.json` (written atomically), so a second run skips
what is already downloaded, verified and extracted. Standard library HTTP only.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from textseld import __version__
from textseld.atomic import write_text_atomic
from textseld.data.extract import safe_extract

log = logging.getLogger(__name__)

DEFAULT_RECORD = "15559774"
DEFAULT_FILES = ("stereo_dev.zip", "metadata_dev.zip")
DEFAULT_API_URL = "https://zenodo.org/api/records/"
CHUNK = 1 << 20
_USER_AGENT = f"textseld/{__version__} (urllib)"
# Network failures worth retrying (a dropped connection, a timeout, a reset).
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError)


class DownloadError(RuntimeError):
    """A file could not be listed, fetched, verified or extracted; names the file."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a record as published by the API."""

    key: str
    size: int
    md5: str
    url: str


def _record_url(api_url: str, record: str) -> str:
    return api_url.rstrip("/") + "/" + str(record)


def parse_record(data: dict, source: str) -> dict[str, RemoteFile]:
    """RemoteFile per name from a records-API JSON document. Accepts the
    current shape (key, size, checksum, links.self) and the legacy one
    (filename, filesize, links.download)."""
    entries = data.get("files") if isinstance(data, dict) else None
    if isinstance(entries, dict):  # some API versions nest them under "entries"
        entries = entries.get("entries")
        entries = list(entries.values()) if isinstance(entries, dict) else entries
    if not isinstance(entries, list):
        raise DownloadError(f"{source}: no 'files' list in the record JSON")
    files = {}
    for i, entry in enumerate(entries):
        try:
            key = entry.get("key", entry.get("filename"))
            size = int(entry.get("size", entry.get("filesize")))
            algo, _, digest = str(entry["checksum"]).partition(":")
            links = entry.get("links", {})
            url = links.get("self") or links.get("content") or links.get("download")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DownloadError(f"{source}: files[{i}] lacks key/size/checksum ({exc!r})") from None
        if algo != "md5" or not re.fullmatch(r"[0-9a-f]{32}", digest):
            raise DownloadError(
                f"{source}: files[{i}] ({key}): checksum must be 'md5:<hex>', got {entry['checksum']!r}"
            )
        if not key or not url:
            raise DownloadError(f"{source}: files[{i}] lacks a name or a download link")
        files[key] = RemoteFile(key, size, digest, url)
    return files


def fetch_file_list(
    record: str, api_url: str = DEFAULT_API_URL, retries: int = 5, timeout: float = 60.0, backoff: float = 2.0
) -> dict[str, RemoteFile]:
    """Read a record's file list from the records API (with retries)."""
    url = _record_url(api_url, record)
    for attempt in range(retries + 1):
        try:
            request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": _USER_AGENT})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = json.loads(response.read().decode("utf-8"))
            return parse_record(data, url)
        except urllib.error.HTTPError as exc:
            if (exc.code < 500 and exc.code != 429) or attempt == retries:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except _TRANSIENT + (ValueError,) as exc:
            if attempt == retries:
                raise DownloadError(f"{url}: could not read the record ({exc})") from None
        log.warning("record %s: attempt %d failed, retrying", record, attempt + 1)
        time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def md5_of(path: str | os.PathLike) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class _BadRange(Exception):
    """The server's partial answer does not start where the part file ends."""


def _fetch_range(remote: RemoteFile, part: Path, timeout: float, bar) -> None:
    """Append the bytes after the current end of `part` (one HTTP request).

    Raises a transient error when the transfer is cut; leaves what arrived."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(remote.url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if offset and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            match = re.match(r"bytes (\d+)-", content_range)
            if not match or int(match.group(1)) != offset:
                raise _BadRange(f"server answered Range {offset}- with Content-Range {content_range!r}")
            mode = "ab"
        else:
            # Full content (a server that ignores Range restarts from byte 0).
            mode, offset = "wb", 0
        bar.reset(total=remote.size)
        bar.update(offset)
        with open(part, mode) as f:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                bar.update(len(block))


def download_file(
    remote: RemoteFile, dest: Path, retries: int = 5, timeout: float = 60.0, backoff: float = 2.0, progress: bool = True
) -> None:
    """Download `remote` to `dest` via `dest.part`, resuming and verifying.

    A failure counts against `retries` only when an attempt made no progress
    or the finished file fails verification (then it is deleted and fetched
    again from byte 0). Raises DownloadError naming the file when it keeps failing.
    """
    part = dest.with_name(dest.name + ".part")
    failures, last_error = 0, "no attempt made"
    with tqdm(total=remote.size, desc=remote.key, unit="B", unit_scale=True, disable=not progress) as bar:
        while failures <= retries:
            last_error = ""
            before = part.stat().st_size if part.exists() else 0
            if before > remote.size:
                part.unlink()
                before = 0
            try:
                if before < remote.size:
                    _fetch_range(remote, part, timeout, bar)
            except urllib.error.HTTPError as exc:
                if exc.code == 416:  # range not satisfiable: start over
                    part.unlink(missing_ok=True)
                elif exc.code < 500 and exc.code != 429:
                    raise DownloadError(f"{remote.key}: HTTP {exc.code} {exc.reason} from {remote.url}") from None
                last_error = f"HTTP {exc.code}"
            except _BadRange as exc:
                part.unlink(missing_ok=True)
                last_error = str(exc)
            except _TRANSIENT as exc:
                last_error = f"transfer interrupted ({exc!r})"
            size = part.stat().st_size if part.exists() else 0
            if size < remote.size:
                if size <= before:
                    failures += 1
                log.warning(
                    "%s: %s at %d of %d bytes; resuming", remote.key, last_error or "short transfer", size, remote.size
                )
                if failures <= retries and size <= before:
                    time.sleep(backoff * 2 ** min(failures - 1, 5))
                continue
            got = md5_of(part) if size == remote.size else None
            if size == remote.size and got == remote.md5:
                os.replace(part, dest)
                return
            failures += 1
            last_error = (
                f"size {size} != expected {remote.size}" if got is None else f"MD5 {got} != expected {remote.md5}"
            )
            log.error("%s: corrupt download (%s); deleting and fetching again", remote.key, last_error)
            part.unlink()
    raise DownloadError(f"{remote.key}: download failed after {retries} retries: {last_error}")


def _load_manifest(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s unreadable (%s); starting a new one", path, exc)
        return {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _manifest(record: str, api_url: str, entries: dict[str, dict]) -> dict:
    """The manifest document of a record's downloaded files (entries by file name)."""
    return {"record": str(record), "api_url": api_url, "files": [entries[k] for k in sorted(entries)]}


def _extracted(out: Path, entry: dict | None) -> bool:
    """A manifest entry whose zip is extracted into `out`, every top-level name still there."""
    return bool(entry and entry.get("extracted") and all((out / c).exists() for c in entry.get("contents", [])))


def _verified_copy(dest: Path, remote: RemoteFile, recorded: bool) -> bool:
    """Whether `dest` already holds the record's file `remote`: at full size and either recorded
    as verified (`recorded`) or of its MD5. A file that does not verify is removed."""
    if dest.exists() and dest.stat().st_size == remote.size and (recorded or md5_of(dest) == remote.md5):
        log.info("%s: already downloaded and verified", dest.name)
        return True
    if dest.exists():
        log.warning("%s: existing file does not verify; downloading again", dest)
        dest.unlink()
    return False


def download_record(
    out: str | os.PathLike,
    record: str = DEFAULT_RECORD,
    files: Iterable[str] = DEFAULT_FILES,
    api_url: str = DEFAULT_API_URL,
    retries: int = 5,
    progress: bool = True,
    timeout: float = 60.0,
    backoff: float = 2.0,
    extract: bool = True,
) -> dict:
    """Download, verify and extract `files` of a Zenodo record into `out`.

    Skips a file whose manifest entry matches the API's MD5 and size and whose
    extracted folders exist (no request made for it), and a present zip that
    verifies. Returns the manifest dict (also written to `out/manifest.json`):
    {"record", "api_url", "files": [{record, file, size, md5, url,
    downloaded_at, extracted, contents}]}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = _load_manifest(manifest_path)
    entries = {e["file"]: e for e in manifest.get("files", []) if isinstance(e, dict) and "file" in e}
    wanted = list(files)
    try:
        available = fetch_file_list(record, api_url, retries, timeout, backoff)
    except DownloadError as exc:
        # Offline re-run: everything already verified and extracted is fine.
        if all(_extracted(out, entries.get(f)) for f in wanted):
            log.warning("%s; all requested files are already verified and extracted in %s", exc, out)
            return _manifest(record, api_url, entries)
        raise
    missing = [f for f in wanted if f not in available]
    if missing:
        raise DownloadError(f"record {record} has no file(s) {missing}; it has {sorted(available)}")

    def document() -> dict:
        return _manifest(record, api_url, entries)

    for name in wanted:
        remote = available[name]
        dest = out / name
        entry = entries.get(name)
        if not (entry and entry.get("md5") == remote.md5 and entry.get("size") == remote.size):
            entry = None  # unknown, or the record's file changed
        if _extracted(out, entry):
            log.info("%s: already downloaded, verified and extracted; skipping", name)
            continue
        if not _verified_copy(dest, remote, entry is not None):
            download_file(remote, dest, retries, timeout, backoff, progress)
            entry = None
        if entry is None:
            entry = dict(
                record=str(record),
                file=name,
                size=remote.size,
                md5=remote.md5,
                url=remote.url,
                downloaded_at=_now(),
                extracted=False,
                contents=[],
            )
        entry["extracted"] = False
        entries[name] = entry
        write_text_atomic(manifest_path, json.dumps(document(), indent=2) + "\n")
        if extract and name.lower().endswith(".zip"):
            try:
                entry["contents"] = safe_extract(dest, out, progress)
            except Exception as exc:
                raise DownloadError(f"{name}: extraction failed: {exc}") from exc
            entry["extracted"] = True
            write_text_atomic(manifest_path, json.dumps(document(), indent=2) + "\n")
    return document()
