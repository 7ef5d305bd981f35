"""Atomic writes: complete file or nothing, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from textseld.atomic import atomic_path, write_text_atomic


def test_written_file_has_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_failure_leaves_neither_target_nor_temporary(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "keep.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert (tmp_path / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_remove_stale_clears_what_a_killed_writer_left(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from textseld.atomic import atomic_path, temporaries_of

    target = tmp_path / "train.h5"
    code = (
        "import os, signal, sys\n"
        "from textseld.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1], suffix='.h5') as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)])
    assert proc.returncode == -signal.SIGKILL
    left = temporaries_of(target, ".h5")
    assert len(left) == 1 and left[0].name.startswith(".train.h5.") and not target.exists()
    other = tmp_path / ".other.h5.x.h5.tmp"  # another target's temporary stays
    other.write_bytes(b"")
    with atomic_path(target, suffix=".h5", remove_stale=True) as tmp:
        assert temporaries_of(target, ".h5") == [tmp]
        tmp.write_bytes(b"whole")
    assert temporaries_of(target, ".h5") == [] and target.read_bytes() == b"whole"
    assert other.exists() and os.path.exists(other)
