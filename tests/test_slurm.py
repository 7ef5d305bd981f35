"""The Slurm profile against a real single-node Slurm (.ci/slurm_up.sh starts it).

Run with `make test-slurm`. Jobs go through snakemake-executor-plugin-slurm with
the command users type, `snakemake --profile slurm` (the profile found by name:
the checkout's `slurm` link to profiles/slurm), the profile unchanged and only the
tiny config on top; afterwards sacct must show every job as a Slurm job, named
after its rule, whose last attempt completed.

The tiny workflow runs once through the profile with what clusters do to jobs: its
baseline trains for EPOCHS epochs (a few minutes) under a training time limit of
1 minute, so Slurm kills it (TIMEOUT) and the profile's retries resubmit it with
more time (resources grow with the attempt), and while it runs the test requeues
it once with `scontrol requeue`. Each time it resumes from its last.pt; the table
must be the one an uninterrupted training gives.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from workflow_helpers import SNAKEMAKE, copy_workflow, snakemake, workflow_copy

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

CLUSTER_RULES = {  # every rule that is not a localrule and that the tiny workflow runs
    "synthesize_dataset",
    "extract_features",
    "pack_features",
    "feature_stats",
    "make_texts",
    "pretrain_tokenizer",
    "encode_tokens",  # the identity controls' outputs
    "encode_sentences",
    "train_baseline",
    "finetune",
    "collect_references",
    "predict",
    "evaluate",
    "embed_test_sentences",  # the alignment diagnostics: the test sentences, per text encoder
    "alignment",  # one per text run (not the controls)
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
    """Jobs (allocations only, every run of a requeued job too) started since `since`:
    id, name, state, time limit, comment (= rule and wildcards)."""
    out = subprocess.run(
        [
            "sacct",
            "-X",
            "-D",
            "-n",
            "-P",
            "--starttime",
            since,
            "-o",
            "JobID,JobName,State,Timelimit,Comment",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = []
    for line in out.splitlines():
        job_id, name, state, limit, comment = line.split("|", 4)
        jobs.append({"id": job_id, "name": name, "state": state.split()[0], "limit": limit, "comment": comment})
    return jobs


def slurm_env() -> dict:
    """The caller's environment with the venv's bin first on PATH (snakemake as typed)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(SNAKEMAKE[0]).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def slurm_command(*args: str, limit: int, configfiles: tuple[str, ...] = ("config/tiny.yaml",)) -> list[str]:
    """`snakemake --profile slurm ARGS --configfile ...` under `timeout -k 30 limit` (SIGTERM
    alone makes snakemake wait for running jobs); targets and options before --configfile:
    it takes every following word."""
    return ["timeout", "-k", "30", str(limit), "snakemake", "--profile", "slurm", *args, "--configfile", *configfiles]


def run_slurm(wd: Path, *args: str, limit: int) -> tuple[subprocess.CompletedProcess, float]:
    """`snakemake --profile slurm ...` exactly as typed (the venv's snakemake first on PATH)."""
    t0 = time.monotonic()
    proc = subprocess.run(
        slurm_command(*args, limit=limit),
        cwd=wd,
        capture_output=True,
        text=True,
        env=slurm_env(),
        stdin=subprocess.DEVNULL,
    )
    return proc, time.monotonic() - t0


def rule_of(job: dict) -> str:
    return job["comment"][len("rule_") :].split("_wildcards_")[0]


@pytest.mark.slow
def test_the_workflow_as_a_slurm_job_submits_the_others(tmp_path):
    """profiles/slurm/workflow_job.sh: Snakemake itself runs as a Slurm job and submits the
    synthesis as another (the tiny setup, up to its dataset)."""
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    wd = workflow_copy(tmp_path / "wf")
    target = "resources/datasets/synthetic/synth_summary.json"
    proc = subprocess.run(
        ["timeout", "-k", "30", "400", "sbatch", "--wait", "--time=6", "profiles/slurm/workflow_job.sh", target]
        + ["--configfile", "config/tiny.yaml"],
        cwd=wd,
        capture_output=True,
        text=True,
        env=slurm_env(),
        stdin=subprocess.DEVNULL,
    )
    driver_id = re.search(r"Submitted batch job (\d+)", proc.stdout)
    assert driver_id, proc.stdout + proc.stderr
    log = wd / f"textseld-workflow-{driver_id.group(1)}.log"
    assert proc.returncode == 0, (proc.stdout + proc.stderr + (log.read_text() if log.exists() else ""))[-4000:]
    assert "submitted with SLURM jobid" in log.read_text()
    jobs = sacct_jobs(since)
    driver = [j for j in jobs if j["id"] == driver_id.group(1)]
    assert driver and driver[0]["name"] == "textseld-workflow" and driver[0]["state"] == "COMPLETED", jobs
    synth = [j for j in jobs if j["comment"].startswith("rule_synthesize_dataset")]
    assert len(synth) == 1 and synth[0]["state"] == "COMPLETED", jobs
    assert (wd / target).is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    "request_, flag",
    [("gpu=1", "--gpus=1"), ("gres=gpu:1", "--gres=gpu:1")],
    ids=["gpu", "gres"],
)
def test_gpu_request_on_a_site_without_gpus_fails_fast_with_slurms_error(tmp_path, request_, flag):
    """Both forms of GPU request reach sbatch as the profile documents them (the portable
    `gpu` as --gpus, a site's `gres` as --gres); this cluster has no GPUs and refuses both."""
    wd = workflow_copy(tmp_path / "wf")
    proc, seconds = run_slurm(
        wd,
        "resources/datasets/synthetic/synth_summary.json",
        "--set-resources",
        f"synthesize_dataset:{request_}",
        limit=240,
    )
    log = "".join(p.read_text() for p in (wd / ".snakemake/log").glob("*.log"))
    assert proc.returncode not in (0, 124, 137), (proc.returncode, (proc.stdout + proc.stderr)[-3000:])
    assert seconds < 120, f"took {seconds:.0f} s: a GPU request must fail at submission, not hang"
    assert flag in proc.stdout + proc.stderr
    assert "sbatch: error" in log and "gres" in log, log[-3000:]
    assert not (wd / "resources/datasets/synthetic/synth_summary.json").exists()


# The baseline of the interrupted run. The tiny baseline took 0.3-0.9 s per epoch here (2 cores,
# shared); EPOCHS epochs must outlast a 1-minute window (startup included) at the fastest, and
# fit in the windows of the three attempts (1 + 2 + 3 minutes, about 5 of them training) at the
# slowest. At 200 epochs a lightly loaded run only just reached its limit after the requeue; with
# the default's validation share of 16 % (fewer training clips) an idle run did 300 epochs in 43 s
# of training (0.14 s each) and finished inside its first minute after the requeue.
EPOCHS = 600
INTERRUPTED = {"train": {"baseline": {"epochs": EPOCHS}}, "resources": {"train": {"runtime": 1}}}
BASELINE_RUN = "results/runs/baseline/seed0"
BASELINE_LOG = "logs/train_baseline/seed0.log"
RESUMED = re.compile(r"resuming \S*baseline/seed0 at epoch (\d+)")


def requeue_once(wd: Path, proc: subprocess.Popen) -> tuple[str | None, str | None]:
    """Once the baseline's training has written its first checkpoint, `scontrol requeue` its
    Slurm job, then wait for the requeued job's resume message in the rule's log (a later
    attempt rewrites that log). (the requeued job's id, the message), None for what did not
    happen before the workflow ended."""
    job_id, log = None, wd / BASELINE_LOG
    while proc.poll() is None:
        if job_id is None and (wd / BASELINE_RUN / "last.pt").exists():
            out = subprocess.run(
                ["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True, check=True
            ).stdout
            ids = [line.split("|")[0] for line in out.splitlines() if "rule_train_baseline" in line]
            if ids:
                subprocess.run(["scontrol", "requeue", ids[0]], check=True, capture_output=True)
                job_id = ids[0]
        elif job_id is not None and log.exists():
            resumed = RESUMED.search(log.read_text())
            if resumed:
                return job_id, resumed.group(0)
        time.sleep(1)
    return job_id, None


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory):
    """The tiny workflow through the profile, its baseline killed at its time limit and requeued."""
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    wd = workflow_copy(tmp_path_factory.mktemp("slurm-wf"))
    (wd / "interrupted.yaml").write_text(yaml.safe_dump(INTERRUPTED))
    t0 = time.monotonic()
    cmd = slurm_command(limit=2400, configfiles=("config/tiny.yaml", "interrupted.yaml"))
    with open(wd / "snakemake.out", "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=wd, stdout=out, stderr=subprocess.STDOUT, env=slurm_env(), stdin=subprocess.DEVNULL
        )
        requeued, resumed_after_requeue = requeue_once(wd, proc)
        proc.wait()
    seconds = time.monotonic() - t0
    return {
        "wd": wd,
        "returncode": proc.returncode,
        "output": (wd / "snakemake.out").read_text(),
        "jobs": [j for j in sacct_jobs(since) if j["comment"].startswith("rule_")],
        "requeued": requeued,
        "resumed_after_requeue": resumed_after_requeue,
        "seconds": seconds,
    }


@pytest.mark.slow
def test_tiny_workflow_through_the_slurm_profile(interrupted_run):
    run = interrupted_run
    assert run["returncode"] == 0, run["output"][-6000:]
    wd, jobs = run["wd"], run["jobs"]
    assert (wd / "results/comparison.csv").is_file()
    rules = {rule_of(j) for j in jobs}
    assert rules == CLUSTER_RULES, rules ^ CLUSTER_RULES
    # the last run of every planned job completed (the baseline's earlier ones did not)
    last = {j["comment"]: j for j in jobs}  # sacct lists runs in order of submission
    assert all(j["state"] == "COMPLETED" for j in last.values()), [
        j for j in last.values() if j["state"] != "COMPLETED"
    ]
    # one planned job per (rule, wildcards): 12 finetunings (8 text systems, 4 controls), 2 pretrainings, ...
    per_rule = {r: sum(1 for c in last if c.startswith(f"rule_{r}")) for r in CLUSTER_RULES}
    assert per_rule["finetune"] == 12 and per_rule["pretrain_tokenizer"] == 2 and per_rule["train_baseline"] == 1
    assert per_rule["encode_tokens"] == 4 and per_rule["predict"] == 13 and per_rule["evaluate"] == 26
    assert per_rule["embed_test_sentences"] == 2 and per_rule["alignment"] == 8
    print(f"tiny workflow through Slurm (baseline interrupted): {len(jobs)} Slurm jobs in {run['seconds']:.0f} s")


def baseline_runs(run: dict) -> list[dict]:
    return [j for j in run["jobs"] if rule_of(j) == "train_baseline"]


@pytest.mark.slow
def test_a_training_job_killed_at_its_time_limit_comes_back_with_more_time_and_resumes(interrupted_run, tmp_path):
    run = interrupted_run
    assert run["returncode"] == 0, run["output"][-6000:]
    runs = baseline_runs(run)
    states = [j["state"] for j in runs]
    assert "TIMEOUT" in states and states[-1] == "COMPLETED", runs
    # each resubmission asks for more time: resources.train.runtime (1 min) x the attempt
    limits = [j["limit"] for j in runs if j["state"] != "REQUEUED"]
    minutes = [int(x.split(":")[0]) * 60 + int(x.split(":")[1]) for x in limits]
    assert minutes == list(range(1, len(minutes) + 1)), runs
    # ... and resumes from its checkpoint: the loop's resume message in the last attempt's log
    # (each attempt rewrites the rule's log), never a fresh start
    log = (run["wd"] / BASELINE_LOG).read_text()
    epochs = [int(e) for e in RESUMED.findall(log)]
    assert epochs and all(e > 0 for e in epochs), log[-3000:]
    assert "training afresh" not in log
    # the table is the one an uninterrupted training gives
    ref = uninterrupted_reference(run["wd"], tmp_path / "ref")
    assert "resuming" not in (ref / BASELINE_LOG).read_text()
    for table in ("results/comparison.csv", "results/runs.csv"):
        with open(run["wd"] / table) as a, open(ref / table) as b:
            assert list(csv.reader(a)) == list(csv.reader(b)), table


def uninterrupted_reference(wd: Path, dst: Path) -> Path:
    """A copy of the finished workflow `wd` whose baseline is trained again from scratch in one
    go (locally, same config and threads), then predicted, scored and aggregated."""
    ref = copy_workflow(wd, dst)
    for path in (BASELINE_RUN, "results/predictions/baseline", "results/metrics/baseline", BASELINE_LOG):
        shutil.rmtree(ref / path) if (ref / path).is_dir() else (ref / path).unlink()
    # forced: Snakemake does not remake missing intermediate files under an up-to-date table
    args = ("--cores", "2", "--forcerun", "train_baseline", "--configfile", "config/tiny.yaml", "interrupted.yaml")
    snakemake(ref, *args, timeout=1200)
    return ref


@pytest.mark.slow
def test_a_requeued_training_job_resumes_and_the_workflow_completes(interrupted_run):
    run = interrupted_run
    assert run["returncode"] == 0, run["output"][-6000:]
    assert run["requeued"], "the baseline ended before it could be requeued"
    runs = baseline_runs(run)
    same_id = [j for j in runs if j["id"] == run["requeued"]]
    # sacct keeps the requeued run (REQUEUED) and the run that followed it under one job id
    assert [j["state"] for j in same_id][0] == "REQUEUED" and len(same_id) >= 2, runs
    # the run after the requeue resumed from the checkpoint that made the test requeue it
    assert run["resumed_after_requeue"], "no resume message after the requeue"
    assert int(RESUMED.search(run["resumed_after_requeue"]).group(1)) > 0
    assert runs[-1]["state"] == "COMPLETED"
