"""Tests of textseld.data.download / extract against a real local HTTP server.

The server (http.server in a thread, 127.0.0.1, ephemeral port) serves a fake
Zenodo records API and small zips, honours Range requests, and can be told to
cut a transfer after N bytes or to serve corrupted bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from textseld.cli import main
from textseld.data.download import DownloadError, download_record
from textseld.data.extract import UnsafeArchiveError, safe_extract

RECORD = "4242"


def _zip(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buf.getvalue()


def _dataset_zips():
    audio = _zip({f"stereo_dev/dev-train-tau/clip{i}.wav": bytes([i]) * 3000 for i in range(4)})
    meta = _zip({f"metadata_dev/dev-train-tau/clip{i}.csv": b"frame,class\n" * 50 for i in range(4)})
    return {"stereo_dev.zip": audio, "metadata_dev.zip": meta}


class FakeZenodo:
    """Serves files; records every request as (path, Range header, bytes sent)."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.md5 = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
        self.drop_after: dict[str, int] = {}  # name -> cut the first transfer after N bytes
        self.corrupt: dict[str, int] = {}  # name -> serve corrupted bytes this many times
        self.requests: list[tuple[str, str | None, int]] = []
        self.ignore_range = False
        self.fail_status: int | None = None  # answer file requests with this HTTP status
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        if h.path == f"/api/records/{RECORD}":
            body = json.dumps(
                {
                    "id": RECORD,
                    "files": [
                        {
                            "key": k,
                            "size": len(v),
                            "checksum": f"md5:{self.md5[k]}",
                            "links": {"self": f"{self.url}/files/{k}/content"},
                        }
                        for k, v in self.files.items()
                    ],
                }
            ).encode()
            self.requests.append((h.path, rng, 0))
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        m = re.fullmatch(r"/files/(.+)/content", h.path)
        if not m or m.group(1) not in self.files:
            self.requests.append((h.path, rng, 0))
            h.send_error(404)
            return
        name = m.group(1)
        data = self.files[name]
        if self.corrupt.get(name, 0) > 0:
            self.corrupt[name] -= 1
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if self.fail_status:
            self.requests.append((h.path, rng, 0))
            h.send_error(self.fail_status)
            return
        start = 0
        if rng and not self.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        payload = data[start:]
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        cut = self.drop_after.pop(name, None)
        if cut is not None:
            payload = payload[:cut]
            h.close_connection = True
        # recorded before the body is sent: a client that has read it may check the log at once
        self.requests.append((h.path, rng, len(payload)))
        h.wfile.write(payload)
        h.wfile.flush()

    def file_requests(self, name=None):
        return [r for r in self.requests if r[0].startswith("/files/") and (name is None or f"/{name}/" in r[0])]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def zenodo():
    with FakeZenodo(_dataset_zips()) as server:
        yield server


def _get(server, out, **kw):
    kw.setdefault("retries", 2)
    return download_record(
        out, record=RECORD, api_url=f"{server.url}/api/records/", progress=False, timeout=10, backoff=0.0, **kw
    )


def test_download_extract_manifest(zenodo, tmp_path):
    doc = _get(zenodo, tmp_path)
    assert (tmp_path / "stereo_dev/dev-train-tau/clip3.wav").read_bytes() == bytes([3]) * 3000
    assert (tmp_path / "metadata_dev/dev-train-tau/clip0.csv").exists()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == doc and manifest["record"] == RECORD
    by_file = {e["file"]: e for e in manifest["files"]}
    for name, data in zenodo.files.items():
        e = by_file[name]
        assert e["size"] == len(data) and e["md5"] == hashlib.md5(data).hexdigest()
        assert e["extracted"] is True and e["url"].endswith(f"/files/{name}/content") and e["downloaded_at"]
    assert by_file["stereo_dev.zip"]["contents"] == ["stereo_dev"]
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".extract-*"))


def test_interrupted_transfer_resumes_with_range(zenodo, tmp_path):
    size = len(zenodo.files["stereo_dev.zip"])
    zenodo.drop_after["stereo_dev.zip"] = 5000
    _get(zenodo, tmp_path, files=["stereo_dev.zip"])
    reqs = zenodo.file_requests("stereo_dev.zip")
    assert len(reqs) == 2
    assert reqs[0][1] is None and reqs[0][2] == 5000
    assert reqs[1][1] == "bytes=5000-"
    assert reqs[1][2] == size - 5000  # nothing re-sent from byte 0
    assert hashlib.md5((tmp_path / "stereo_dev.zip").read_bytes()).hexdigest() == zenodo.md5["stereo_dev.zip"]


def test_resumes_a_part_file_left_by_an_earlier_run(zenodo, tmp_path):
    data = zenodo.files["metadata_dev.zip"]
    (tmp_path / "metadata_dev.zip.part").write_bytes(data[:1234])
    _get(zenodo, tmp_path, files=["metadata_dev.zip"])
    (req,) = zenodo.file_requests()
    assert req[1] == "bytes=1234-" and req[2] == len(data) - 1234
    assert (tmp_path / "metadata_dev/dev-train-tau/clip1.csv").exists()


def test_server_ignoring_range_restarts_cleanly(zenodo, tmp_path):
    data = zenodo.files["metadata_dev.zip"]
    (tmp_path / "metadata_dev.zip.part").write_bytes(data[:1000])
    zenodo.ignore_range = True
    _get(zenodo, tmp_path, files=["metadata_dev.zip"])
    (req,) = zenodo.file_requests()
    assert req[2] == len(data)  # full 200 answer written from byte 0, not appended
    assert (tmp_path / "metadata_dev.zip").read_bytes() == data


def test_persistent_server_errors_are_bounded(zenodo, tmp_path):
    zenodo.fail_status = 503
    with pytest.raises(DownloadError, match=r"stereo_dev\.zip.*HTTP 503"):
        _get(zenodo, tmp_path, files=["stereo_dev.zip"], retries=3)
    assert len(zenodo.file_requests()) == 4
    zenodo.fail_status = 403  # not worth retrying
    with pytest.raises(DownloadError, match="403"):
        _get(zenodo, tmp_path, files=["stereo_dev.zip"], retries=3)
    assert len(zenodo.file_requests()) == 5


def test_checksum_mismatch_refetched(zenodo, tmp_path, caplog):
    zenodo.corrupt["metadata_dev.zip"] = 1
    _get(zenodo, tmp_path, files=["metadata_dev.zip"])
    assert len(zenodo.file_requests()) == 2
    assert "metadata_dev.zip" in caplog.text and "MD5" in caplog.text
    assert (tmp_path / "metadata_dev.zip").read_bytes() == zenodo.files["metadata_dev.zip"]


def test_persistent_mismatch_is_an_error(zenodo, tmp_path):
    zenodo.corrupt["metadata_dev.zip"] = 100
    with pytest.raises(DownloadError, match=r"metadata_dev\.zip.*MD5"):
        _get(zenodo, tmp_path, files=["metadata_dev.zip"], retries=2)
    assert len(zenodo.file_requests()) == 3  # first try + 2 retries, bounded
    assert not (tmp_path / "metadata_dev.zip").exists()
    assert not (tmp_path / "metadata_dev").exists()


def test_second_run_skips_verified_files(zenodo, tmp_path):
    _get(zenodo, tmp_path)
    n = len(zenodo.file_requests())
    assert n == 2
    _get(zenodo, tmp_path)
    assert len(zenodo.file_requests()) == n  # no download request
    # A deleted extraction is redone from the kept, verified zip, still without downloading.
    import shutil

    shutil.rmtree(tmp_path / "metadata_dev")
    _get(zenodo, tmp_path)
    assert len(zenodo.file_requests()) == n
    assert (tmp_path / "metadata_dev/dev-train-tau/clip2.csv").exists()


def test_unknown_file_and_http_errors(zenodo, tmp_path):
    with pytest.raises(DownloadError, match="nope.zip"):
        _get(zenodo, tmp_path, files=["nope.zip"])
    with pytest.raises(DownloadError, match="404"):
        download_record(
            tmp_path, record="999", api_url=f"{zenodo.url}/api/records/", progress=False, retries=0, backoff=0.0
        )


@pytest.mark.parametrize(
    "members, links, why",
    [
        ({"ok/a.txt": b"a", "../evil": b"x"}, None, "'..'"),
        ({"ok/a.txt": b"a", "ok/../../evil": b"x"}, None, "'..'"),
        ({"ok/a.txt": b"a", "/tmp/evil_abs": b"x"}, None, "absolute"),
        ({"ok/a.txt": b"a"}, {"ok/link": "../../outside"}, "leaves the extraction folder"),
        ({"ok/a.txt": b"a"}, {"ok/link": "/etc"}, "absolute"),
        ({"ok/a.txt": b"a"}, {"ok/d": "..", "x": "ok/d/.."}, "another symlink"),
        ({"ok/a.txt": b"a", "ok/link/f": b"x"}, {"ok/link": "."}, "through a symlink"),
    ],
)
def test_malicious_zip_refused(tmp_path, members, links, why):
    out = tmp_path / "out"
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip(members, links))
    with pytest.raises(UnsafeArchiveError, match=why):
        safe_extract(archive, out, progress=False)
    assert list(out.iterdir()) == []  # nothing extracted, no temp folder left
    assert not (tmp_path / "evil").exists()


def test_malicious_zip_via_download(tmp_path):
    files = {"stereo_dev.zip": _zip({"stereo_dev/a.wav": b"a", "../evil": b"x"})}
    with FakeZenodo(files) as server:
        with pytest.raises(DownloadError, match="stereo_dev.zip.*unsafe"):
            _get(server, tmp_path / "data", files=["stereo_dev.zip"])
    assert not (tmp_path / "evil").exists() and not (tmp_path / "data" / "stereo_dev").exists()
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["files"][0]["extracted"] is False


def test_safe_symlink_inside_is_kept(tmp_path):
    archive = tmp_path / "ok.zip"
    archive.write_bytes(_zip({"top/a/f.txt": b"hi"}, {"top/b/link": "../a/f.txt"}))
    assert safe_extract(archive, tmp_path / "out", progress=False) == ["top"]
    assert (tmp_path / "out/top/b/link").read_bytes() == b"hi"


def test_cli_download(zenodo, tmp_path, capsys):
    rc = main(
        [
            "download-dataset",
            "--out",
            str(tmp_path),
            "--record",
            RECORD,
            "--files",
            "metadata_dev.zip",
            "--api-url",
            f"{zenodo.url}/api/records/",
            "--no-progress",
        ]
    )
    assert rc == 0
    assert "metadata_dev.zip" in capsys.readouterr().out
    assert (tmp_path / "metadata_dev/dev-train-tau/clip0.csv").exists()
