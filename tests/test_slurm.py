"""The Slurm profile against a real single-node Slurm (.ci/slurm_up.sh starts it).

Run with `make test-slurm`. Jobs go through snakemake-executor-plugin-slurm with
the command users type, `snakemake --profile slurm` (the profile found by name:
the checkout's `slurm` link to profiles/slurm), the profile unchanged and only the
tiny config on top; afterwards sacct must show every job as a completed Slurm
job, named after its rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from workflow_helpers import SNAKEMAKE, workflow_copy

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

CLUSTER_RULES = {  # every rule that is not a localrule and that the tiny workflow runs
    "synthesize_dataset",
    "extract_features",
    "pack_features",
    "feature_stats",
    "make_texts",
    "pretrain_tokenizer",  # (encode_tokens: only for finetunings that draw templates at random)
    "encode_sentences",
    "train_baseline",
    "finetune",
    "collect_references",
    "predict",
    "evaluate",
}


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """The cluster must be up: fail in CI (a broken bring-up must not pass), skip elsewhere."""
    ok = shutil.which("sinfo") is not None and subprocess.run(
        ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True
    ).stdout.split()[:1] in (["idle"], ["mixed"])
    if not ok:
        msg = "no idle single-node Slurm cluster: run `bash .ci/slurm_up.sh` first (as root)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def sacct_jobs(since: str) -> list[dict]:
    """Jobs (allocations only) started since `since`: id, name, state, comment (= rule)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--starttime", since, "-o", "JobID,JobName,State,Comment"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        job_id, name, state, comment = line.split("|", 3)
        jobs.append({"id": job_id, "name": name, "state": state, "comment": comment})
    return jobs


def run_slurm(wd: Path, *args: str, limit: int) -> tuple[subprocess.CompletedProcess, float]:
    """`snakemake --profile slurm ...` exactly as typed (the venv's snakemake first on PATH) under
    `timeout -k 30 limit` (SIGTERM alone makes snakemake wait for running jobs)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(SNAKEMAKE[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    t0 = time.monotonic()
    # targets and options before --configfile: it takes every following word
    proc = subprocess.run(
        [
            "timeout",
            "-k",
            "30",
            str(limit),
            "snakemake",
            "--profile",
            "slurm",
            *args,
            "--configfile",
            "config/tiny.yaml",
        ],
        cwd=wd,
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    return proc, time.monotonic() - t0


@pytest.mark.slow
def test_synthesis_runs_as_a_slurm_job(tmp_path):
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    wd = workflow_copy(tmp_path / "wf")
    proc, _ = run_slurm(wd, "resources/datasets/synthetic/synth_summary.json", limit=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "submitted with SLURM jobid" in proc.stdout + proc.stderr
    jobs = [j for j in sacct_jobs(since) if j["comment"].startswith("rule_synthesize_dataset")]
    assert len(jobs) == 1 and jobs[0]["state"] == "COMPLETED", jobs
    assert (wd / "resources/datasets/synthetic/synth_summary.json").is_file()


@pytest.mark.slow
def test_gpu_request_on_a_site_without_gpus_fails_fast_with_slurms_error(tmp_path):
    wd = workflow_copy(tmp_path / "wf")
    proc, seconds = run_slurm(
        wd, "resources/datasets/synthetic/synth_summary.json", "--set-resources", "synthesize_dataset:gpu=1", limit=240
    )
    log = "".join(p.read_text() for p in (wd / ".snakemake/log").glob("*.log"))
    assert proc.returncode not in (0, 124, 137), (proc.returncode, (proc.stdout + proc.stderr)[-3000:])
    assert seconds < 120, f"took {seconds:.0f} s: a GPU request must fail at submission, not hang"
    assert "--gpus=1" in proc.stdout + proc.stderr
    assert "sbatch: error" in log and "gres" in log, log[-3000:]
    assert not (wd / "resources/datasets/synthetic/synth_summary.json").exists()


@pytest.mark.slow
def test_tiny_workflow_through_the_slurm_profile(tmp_path):
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    wd = workflow_copy(tmp_path / "wf")
    proc, seconds = run_slurm(wd, limit=2400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert (wd / "results/comparison.csv").is_file()
    jobs = [j for j in sacct_jobs(since) if j["comment"].startswith("rule_")]
    rules = {j["comment"][len("rule_") :].split("_wildcards_")[0] for j in jobs}
    assert rules == CLUSTER_RULES, rules ^ CLUSTER_RULES
    assert all(j["state"] == "COMPLETED" for j in jobs), [j for j in jobs if j["state"] != "COMPLETED"]
    # one Slurm job per planned cluster job: 8 finetunings, 2 pretrainings, 1 baseline, ...
    per_rule = {r: sum(1 for j in jobs if j["comment"].startswith(f"rule_{r}")) for r in CLUSTER_RULES}
    assert per_rule["finetune"] == 8 and per_rule["pretrain_tokenizer"] == 2 and per_rule["train_baseline"] == 1
    assert per_rule["predict"] == 9 and per_rule["evaluate"] == 18
    print(f"tiny workflow through Slurm: {len(jobs)} jobs in {seconds:.0f} s")
