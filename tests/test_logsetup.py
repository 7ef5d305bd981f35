"""log_to_file: logging records, prints, progress bars and uncaught errors land in the log."""

from __future__ import annotations

import subprocess
import sys


def test_everything_a_job_prints_lands_in_its_log(tmp_path):
    log = tmp_path / "logs" / "job.log"
    code = (
        "import logging, os, sys, warnings\n"
        "from tqdm import tqdm\n"
        "from textseld.logsetup import log_to_file\n"
        f"log_to_file({str(log)!r})\n"
        "logging.getLogger('textseld.x').info('a record')\n"
        "print('a print')\n"
        "for _ in tqdm(range(3), desc='progress'): pass\n"
        "warnings.warn('a warning')\n"
        "os.write(2, b'raw fd write\\n')\n"
        "raise RuntimeError('boom')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stdout == "" and proc.stderr == ""  # nothing escapes to the terminal
    text = log.read_text()
    for piece in (
        "INFO textseld.x: a record",
        "a print",
        "progress: 100%",
        "a warning",
        "raw fd write",
        "RuntimeError: boom",
    ):
        assert piece in text, piece
