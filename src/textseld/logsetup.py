"""Logging of one pipeline job into one file (the workflow rule's log).

`log_to_file(path)` sends the logging module's records AND the process's
stdout/stderr (tqdm progress bars, warnings, tracebacks of uncaught errors)
to `path`, so that each Snakemake job's log holds everything it printed.
"""

from __future__ import annotations

import logging
import os
import sys

# The one log line format, of the rule logs and of the `textseld` command line (textseld.cli).
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_file(path: str | os.PathLike, level: int = logging.INFO) -> None:
    """Append this process's logging records, stdout and stderr to `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    stream = open(path, "a", buffering=1, encoding="utf-8")  # line-buffered: readable while running
    sys.stdout = sys.stderr = stream
    # Python-level redirection misses output written by C code to file descriptors 1/2
    for fd in (1, 2):
        os.dup2(stream.fileno(), fd)
    logging.basicConfig(stream=stream, level=level, format=FORMAT, force=True)
    logging.captureWarnings(True)
