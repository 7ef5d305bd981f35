"""Fetch pre-trained weights once into a local folder, with a checksum manifest.

Runs on a machine with network access (the workflow's download rule); every
compute job then loads from the folder only. Layout under DIR:

- `clip/<arch>-<tag><ext>`: open_clip checkpoint (file as published)
- `bert/<org>--<name>/`: config, tokenizer files and weights of a HF model
- `beats/<file>`: the BEATs checkpoint (URL or local path)
- `manifest.json`: {"entries": {"clip"|"bert"|"beats": {"path": relative
  file or folder, "files": {relative path: {"sha256", "bytes"}}, "source",
  ...}}}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from textseld.atomic import atomic_path, write_text_atomic
from textseld.constants import BERT_REPO, CLIP_ARCH, CLIP_TAG
from textseld.jsonfile import read_json_object

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
BERT_PATTERNS = (
    "config.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors",
    "pytorch_model.bin",
)


# (device, inode, size, mtime_ns, ctime_ns) -> hex digest of files of at least _SHA256_MEMO_BYTES:
# a run checks the same inputs several times (config.json's input_sha256, then each cached
# file's record), 0.26 s per 200 MB. A file rewritten by a rename (every writer here) gets
# another inode; one rewritten in place another mtime, except within the file system's
# timestamp granularity (a few ms), which the size floor keeps to files too large to rewrite
# that fast. Smaller files take under 10 ms to hash and are always read.
_SHA256_SEEN: dict[tuple[int, ...], str] = {}
_SHA256_MEMO_BYTES = 8 << 20


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (remembered per process for an unchanged file)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key in _SHA256_SEEN:
            return _SHA256_SEEN[key]
        h = hashlib.sha256()
        while block := f.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    if st.st_size >= _SHA256_MEMO_BYTES and os.stat(path).st_mtime_ns == st.st_mtime_ns:  # unchanged while read
        _SHA256_SEEN[key] = digest
    return digest


def _file_record(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def _copy_into(src: Path, dest: Path) -> Path:
    with atomic_path(dest, suffix=dest.suffix) as tmp:
        shutil.copyfile(src, tmp)
    return dest


def fetch_clip(out_dir: str | os.PathLike, arch: str = CLIP_ARCH, tag: str = CLIP_TAG) -> dict[str, Any]:
    """Download an open_clip checkpoint with open_clip's own download API."""
    import open_clip

    pcfg = open_clip.get_pretrained_cfg(arch, tag)
    if not pcfg:
        raise ValueError(f"open_clip has no pretrained tag {tag!r} for {arch!r}")
    out = Path(out_dir)
    cache = Path(tempfile.mkdtemp(prefix=".clip-cache-", dir=out))
    try:
        downloaded = Path(open_clip.download_pretrained(pcfg, cache_dir=str(cache)))
        if not downloaded.is_file():
            raise RuntimeError(f"open_clip download of {arch}/{tag} gave no file ({downloaded})")
        rel = Path("clip") / f"{arch}-{tag}{''.join(downloaded.suffixes[-1:])}"
        _copy_into(downloaded.resolve(), out / rel)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "path": str(rel),
        "files": {str(rel): _file_record(out / rel)},
        "source": pcfg.get("hf_hub") or pcfg.get("url"),
        "arch": arch,
        "tag": tag,
        "quick_gelu": bool(pcfg.get("quick_gelu", False)),
    }


def fetch_bert(out_dir: str | os.PathLike, repo_id: str = BERT_REPO) -> dict[str, Any]:
    """Download config, tokenizer and weights of a HF BERT with huggingface_hub."""
    from huggingface_hub import snapshot_download

    out = Path(out_dir)
    rel = Path("bert") / repo_id.replace("/", "--")
    snapshot_download(repo_id=repo_id, local_dir=str(out / rel), allow_patterns=list(BERT_PATTERNS))
    return {"path": str(rel), "files": _folder_records(out, out / rel), "source": f"hf://{repo_id}"}


def _folder_records(root: Path, folder: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(root)): _file_record(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def fetch_beats(out_dir: str | os.PathLike, source: str) -> dict[str, Any]:
    """Copy or download the BEATs checkpoint: an http(s)/file URL or a local path."""
    out = Path(out_dir)
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https", "file"):
        name = Path(urllib.parse.unquote(parsed.path)).name or "beats.pt"
        dest = out / "beats" / name
        with urllib.request.urlopen(source, timeout=60) as resp, atomic_path(dest, suffix=dest.suffix) as tmp:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(resp, f, length=1 << 20)
    else:
        src = Path(source)
        if not src.is_file():
            raise FileNotFoundError(f"BEATs checkpoint not found: {src} (give a URL or an existing file)")
        dest = _copy_into(src, out / "beats" / src.name)
    rel = dest.relative_to(out)
    return {"path": str(rel), "files": {str(rel): _file_record(dest)}, "source": source}


def read_manifest(out_dir: str | os.PathLike) -> dict[str, Any]:
    """DIR/manifest.json ({"entries": {}} when there is none yet); a damaged one is an error naming it."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return {"entries": {}}
    data = read_json_object(path, "not a valid weights manifest", "the JSON written by download-pretrained")
    if not isinstance(data.get("entries"), dict):
        raise ValueError(f"{path}: expected an object with an 'entries' object")
    return data


def write_manifest(out_dir: str | os.PathLike, entries: dict[str, Any]) -> Path:
    """Merge entries into DIR/manifest.json (atomically)."""
    data = read_manifest(out_dir)
    data["entries"].update(entries)
    path = Path(out_dir) / MANIFEST
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def verify_manifest(out_dir: str | os.PathLike) -> list[str]:
    """Problems found re-hashing every file in the manifest (empty = all good). A folder that
    does not exist, or has no manifest or one that lists nothing, is a problem too."""
    root = Path(out_dir)
    if not root.is_dir():
        return [f"{root}: weights folder does not exist (expected a folder written by download-pretrained)"]
    if not (root / MANIFEST).is_file():
        return [f"{root / MANIFEST}: not found (expected the manifest written by download-pretrained)"]
    if not read_manifest(root)["entries"]:
        return [f"{root / MANIFEST}: lists no weights (expected entries written by download-pretrained)"]
    problems = []
    for name, entry in read_manifest(root)["entries"].items():
        for rel, rec in entry.get("files", {}).items():
            p = root / rel
            if not p.is_file():
                problems.append(f"{name}: missing file {p}")
            elif p.stat().st_size != rec["bytes"] or sha256_file(p) != rec["sha256"]:
                problems.append(f"{name}: checksum mismatch for {p}")
    return problems


def weights_path(out_dir: str | os.PathLike, name: str) -> Path:
    """Absolute path of a manifest entry ("clip", "bert", "beats")."""
    entries = read_manifest(out_dir)["entries"]
    if name not in entries:
        raise KeyError(f"{Path(out_dir) / MANIFEST}: no entry {name!r} (have {sorted(entries)})")
    return Path(out_dir) / entries[name]["path"]


def fetch_weights(
    out_dir: str | os.PathLike,
    clip_arch: str | None = CLIP_ARCH,
    clip_tag: str = CLIP_TAG,
    bert: str | None = BERT_REPO,
    beats: str | None = None,
) -> Path:
    """Fetch what is asked for (None skips) and record it in the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    if clip_arch:
        log.info("fetching CLIP %s/%s", clip_arch, clip_tag)
        entries["clip"] = fetch_clip(out, clip_arch, clip_tag)
    if bert:
        log.info("fetching BERT %s", bert)
        entries["bert"] = fetch_bert(out, bert)
    if beats:
        log.info("fetching BEATs %s", beats)
        entries["beats"] = fetch_beats(out, beats)
    return write_manifest(out, entries)
