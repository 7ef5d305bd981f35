"""Helpers for the workflow tests: a private copy of the workflow, snakemake runs,
dry-run parsing, configs resolved as the workflow resolves them. Not a test module
(no test_ prefix)."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# What a run directory needs of the checkout (linked, so the tests see the real files);
# `slurm` is the checkout's link to profiles/slurm that makes `--profile slurm` work.
WORKFLOW_PARTS = ("Snakefile", "rules", "workflow_scripts", "config", "envs", "profiles", "report", "slurm")


def workflow_copy(tmp: Path) -> Path:
    """A working directory that runs the repository's workflow but writes only under `tmp`."""
    tmp.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        link = tmp / part
        if not link.exists():
            link.symlink_to(REPO / part)
    return tmp


def copy_workflow(src: Path, dst: Path) -> Path:
    """A copy of a workflow working directory (results, metadata, modification times), its
    links to the checkout kept as links."""
    import shutil

    shutil.copytree(src, dst, symlinks=True)
    return dst


def snakemake_env(env: dict | None = None) -> dict:
    """The environment of a snakemake call: the venv's bin first, one BLAS thread, `env` on top."""
    full_env = dict(os.environ)
    # the venv's bin first: jobs (also Slurm jobs) find the same python and textseld
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env.setdefault("MKL_NUM_THREADS", "1")
    full_env.update(env or {})
    return full_env


def snakemake(
    workdir: Path, *args: str, timeout: float = 600, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run snakemake in `workdir`; on failure the assertion shows the tail of its output."""
    proc = subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=snakemake_env(env),
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}"
        )
    return proc


@dataclass
class PlannedJob:
    rule: str
    wildcards: dict = field(default_factory=dict)
    reason: str = ""
    resources: str = ""


_RULE = re.compile(r"^(?:local)?rule (\w+):\s*$")


def parse_dry_run(output: str) -> list[PlannedJob]:
    """The jobs a `snakemake -n` output plans, with wildcards and reasons (the `all` rule excluded)."""
    jobs: list[PlannedJob] = []
    current: PlannedJob | None = None
    for line in output.splitlines():
        m = _RULE.match(line)
        if m:
            current = PlannedJob(m.group(1))
            jobs.append(current)
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped.startswith("reason:"):
            current.reason = stripped[len("reason:") :].strip()
        elif stripped.startswith("resources:"):
            current.resources = stripped[len("resources:") :].strip()
        elif stripped.startswith("wildcards:"):
            for item in stripped[len("wildcards:") :].split(","):
                key, _, value = item.strip().partition("=")
                current.wildcards[key] = value
        elif not line.startswith(" ") and stripped:
            current = None
    return [j for j in jobs if j.rule != "all"]


def job_counts(jobs: list[PlannedJob]) -> dict[str, int]:
    return dict(Counter(j.rule for j in jobs))


def dry_run(workdir: Path, *args: str) -> list[PlannedJob]:
    proc = snakemake(workdir, "--dry-run", "--cores", "1", *args)
    return parse_dry_run(proc.stdout + proc.stderr)


def resolved_config(*layers: Mapping) -> dict:
    """`layers` (config files' trees, --config values) merged in order as Snakemake merges
    them (snakemake.utils.update_config), over the recipe they name
    (textseld.recipes.apply_recipe), validated with the schema's defaults filled: the config
    rules/common.smk resolves."""
    from snakemake.utils import update_config, validate

    from textseld.recipes import apply_recipe

    config: dict = {}
    for layer in layers:
        update_config(config, copy.deepcopy(dict(layer)))
    config = apply_recipe(config)
    validate(config, str(REPO / "config/schema.yaml"), set_default=True)
    return config


def merged_config(*setup_files: str, extra: dict | None = None) -> dict:
    """config/config.yaml with `setup_files` (paths in the checkout) and then `extra` layered
    over it, resolved as the workflow resolves it (resolved_config)."""
    layers = [yaml.safe_load((REPO / name).read_text()) for name in ("config/config.yaml", *setup_files)]
    return resolved_config(*layers, *([extra] if extra else []))
