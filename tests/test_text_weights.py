"""Weights folder: manifest, checksums, BEATs from a path or URL (all local)."""

import hashlib
import http.server
import json
import threading
from functools import partial

import pytest

from textseld.cli import main
from textseld.models.pretrained import (
    fetch_beats,
    read_manifest,
    sha256_file,
    verify_manifest,
    weights_path,
    write_manifest,
)


def test_sha256_file(tmp_path):
    p = tmp_path / "x.bin"
    data = bytes(range(256)) * 5000  # several read chunks
    p.write_bytes(data)
    assert sha256_file(p, chunk=4096) == hashlib.sha256(data).hexdigest()


def test_beats_from_local_path_and_manifest(tmp_path):
    src = tmp_path / "BEATs_iter3.pt"
    src.write_bytes(b"not really a checkpoint")
    out = tmp_path / "weights"
    entry = fetch_beats(out, str(src))
    assert entry["path"] == "beats/BEATs_iter3.pt"
    assert (out / entry["path"]).read_bytes() == src.read_bytes()
    rec = entry["files"]["beats/BEATs_iter3.pt"]
    assert rec == {"sha256": hashlib.sha256(src.read_bytes()).hexdigest(), "bytes": src.stat().st_size}
    write_manifest(out, {"beats": entry})
    write_manifest(out, {"other": {"path": "o", "files": {}}})  # merges, keeps beats
    assert set(read_manifest(out)["entries"]) == {"beats", "other"}
    assert weights_path(out, "beats") == out / "beats/BEATs_iter3.pt"
    with pytest.raises(KeyError, match="clip"):
        weights_path(out, "clip")
    assert verify_manifest(out) == []
    assert main(["verify-weights", "--dir", str(out)]) == 0
    (out / entry["path"]).write_bytes(b"not really a checkpoinT")  # same size, other content
    assert verify_manifest(out) == [f"beats: checksum mismatch for {out / entry['path']}"]
    assert main(["verify-weights", "--dir", str(out)]) == 1
    (out / entry["path"]).unlink()
    assert "missing file" in verify_manifest(out)[0]
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        fetch_beats(out, str(tmp_path / "nope.pt"))


def test_beats_from_url(tmp_path):
    served = tmp_path / "srv"
    served.mkdir()
    payload = b"\x00\x01beats" * 1000
    (served / "model.pt").write_bytes(payload)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/model.pt"
        entry = fetch_beats(tmp_path / "w", url)
    finally:
        server.shutdown()
        server.server_close()
    assert entry["source"] == url and (tmp_path / "w" / "beats" / "model.pt").read_bytes() == payload
    assert entry["files"]["beats/model.pt"]["sha256"] == hashlib.sha256(payload).hexdigest()
    # file:// URLs too; the CLI writes the manifest and skips what is 'none'
    assert (
        main(
            [
                "download-pretrained",
                "--out",
                str(tmp_path / "c"),
                "--clip-arch",
                "none",
                "--bert",
                "none",
                "--beats",
                (served / "model.pt").as_uri(),
            ]
        )
        == 0
    )
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert list(manifest["entries"]) == ["beats"]
    assert verify_manifest(tmp_path / "c") == []


def test_bad_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="manifest.json"):
        read_manifest(tmp_path)


def test_fetch_clip_and_bert_local_logic(tmp_path, monkeypatch):
    """The download calls themselves need the network; replace them by local
    writers and check naming, copying, checksums and clean-up."""
    import huggingface_hub
    import open_clip

    from textseld.models.pretrained import fetch_weights

    def fake_download(cfg, cache_dir=None, **kw):
        assert cfg["hf_hub"].startswith("timm/vit_base_patch16_clip_224.openai")
        p = tmp_path / "hub" / "open_clip_model.safetensors"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"clip-weights")
        assert str(cache_dir).startswith(str(tmp_path / "w"))
        return str(p)

    def fake_snapshot(repo_id, local_dir, allow_patterns):
        assert repo_id == "org/tiny-bert" and "config.json" in allow_patterns
        for name in ("config.json", "vocab.txt", "model.safetensors"):
            (tmp_path / "w" / "bert" / "org--tiny-bert").mkdir(parents=True, exist_ok=True)
            (tmp_path / "w" / "bert" / "org--tiny-bert" / name).write_text(name)
        return local_dir

    monkeypatch.setattr(open_clip, "download_pretrained", fake_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    fetch_weights(tmp_path / "w", clip_arch="ViT-B-16", clip_tag="openai", bert="org/tiny-bert")
    entries = read_manifest(tmp_path / "w")["entries"]
    assert entries["clip"]["path"] == "clip/ViT-B-16-openai.safetensors" and entries["clip"]["quick_gelu"]
    assert (tmp_path / "w" / entries["clip"]["path"]).read_bytes() == b"clip-weights"
    assert sorted(entries["bert"]["files"]) == [
        f"bert/org--tiny-bert/{n}" for n in ("config.json", "model.safetensors", "vocab.txt")
    ]
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["bert", "clip", "manifest.json"]
    assert verify_manifest(tmp_path / "w") == []


def test_sha256_of_a_large_file_is_remembered_only_while_the_file_is_unchanged(tmp_path):
    """A run hashes its inputs several times; a large unchanged file is read once per process,
    and a file replaced (by a rename, as every writer here does) or rewritten is read again."""
    import hashlib
    import os

    from textseld.models import pretrained

    size = pretrained._SHA256_MEMO_BYTES
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * size)
    first = pretrained.sha256_file(path)
    assert first == hashlib.sha256(b"a" * size).hexdigest()
    assert pretrained.sha256_file(path) == first  # remembered
    replacement = tmp_path / "big.tmp"
    replacement.write_bytes(b"b" * size)
    os.replace(replacement, path)  # another inode
    assert pretrained.sha256_file(path) == hashlib.sha256(b"b" * size).hexdigest()
    with open(path, "r+b") as f:  # the same inode rewritten in place, another mtime
        f.write(b"c")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert pretrained.sha256_file(path) == hashlib.sha256(b"c" + b"b" * (size - 1)).hexdigest()
