"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory) -> Path:
    """The tiny config run end to end once per session (local executor, 2 cores).

    Tests that only plan (dry runs) use it as it is; tests that execute reruns
    work on a copy (`copy_workflow`), so every test sees the same complete run.
    """
    from workflow_helpers import snakemake, workflow_copy

    wd = workflow_copy(tmp_path_factory.mktemp("tiny"))
    snakemake(wd, "--cores", "2", "--configfile", "config/tiny.yaml", timeout=1500)
    return wd
