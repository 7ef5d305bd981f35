"""Executed reruns on a copy of the completed tiny run (conftest.tiny_workflow): a SIGKILL of
the whole workflow during a training job, then a plain rerun; a pretraining change."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from workflow_helpers import REPO, SNAKEMAKE, copy_workflow, job_counts, parse_dry_run, snakemake, snakemake_env

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

TINY = ("--configfile", "config/tiny.yaml")

# Imported at interpreter start (PYTHONPATH): once textseld.train.loop is imported, writing
# last.pt into a run directory whose path ends with $TEXTSELD_TEST_KILL_RUN kills the whole
# process group, i.e. the workflow and all its jobs (nothing in the library knows of this).
KILLER = textwrap.dedent("""
    import importlib.abc, importlib.util, os, signal, sys
    from pathlib import Path

    class _Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != "textseld.train.loop":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            exec_module = spec.loader.exec_module

            def patched(module):
                exec_module(module)
                save = module.save_checkpoint

                def save_then_kill(path, **kw):
                    save(path, **kw)
                    if Path(path).name == "last.pt" and str(Path(path).parent).endswith(
                            os.environ["TEXTSELD_TEST_KILL_RUN"]):
                        os.killpg(os.getpgrp(), signal.SIGKILL)

                module.save_checkpoint = save_then_kill

            spec.loader.exec_module = patched
            return spec

    if os.environ.get("TEXTSELD_TEST_KILL_RUN"):
        sys.meta_path.insert(0, _Hook())
""")


def _table(wd: Path) -> list[dict]:
    return list(csv.DictReader((wd / "results/comparison.csv").open()))


def _assert_same_table(a: list[dict], b: list[dict]) -> None:
    assert [r["system"] for r in a] == [r["system"] for r in b]
    for ra, rb in zip(a, b):
        for key, va in ra.items():
            try:
                fa, fb = float(va), float(rb[key])
            except ValueError:
                assert va == rb[key], (ra["system"], key)
                continue
            assert (math.isnan(fa) and math.isnan(fb)) or fa == pytest.approx(fb, rel=1e-9, abs=1e-9), (
                ra["system"],
                key,
                va,
                rb[key],
            )


def _executed(proc: subprocess.CompletedProcess) -> dict[str, int]:
    return job_counts(parse_dry_run(proc.stdout + proc.stderr))


def test_sigkill_of_the_workflow_during_training_then_plain_rerun_gives_the_same_table(tiny_workflow, tmp_path):
    wd = copy_workflow(tiny_workflow, tmp_path / "wd")
    run = wd / "results/runs/baseline/seed0"
    # As if the workflow had got as far as the baseline's training: its chain and the table
    # are missing (Snakemake does not go back for missing intermediates of existing outputs).
    for path in (
        run,
        wd / "results/predictions/baseline",
        wd / "results/metrics/baseline",
        *(wd / "results").glob("comparison.*"),
        wd / "results/runs.csv",
        wd / "results/training_curves.png",
    ):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILLER)
    env = snakemake_env({"PYTHONPATH": str(hook), "TEXTSELD_TEST_KILL_RUN": "runs/baseline/seed0"})
    # its own session: the kill takes the workflow and its jobs, not pytest
    killed = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *TINY],
        cwd=wd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    assert killed.returncode == -signal.SIGKILL, (killed.stdout + killed.stderr)[-3000:]
    # killed after the last epoch's checkpoint, before the job completed: the state that
    # failed forever ("training finished without a validation result")
    assert (run / "last.pt").is_file() and not (run / "val_metrics.json").exists()
    # a kill leaves Snakemake's lock behind (README: `snakemake --unlock`, then rerun)
    locked = snakemake(wd, "--cores", "2", *TINY, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(wd, "--unlock", *TINY)
    rerun = snakemake(wd, "--cores", "2", *TINY, timeout=900)
    assert _executed(rerun) == {
        "train_baseline": 1,
        "predict": 1,
        "evaluate": 2,
        "aggregate": 1,
        "training_curves": 1,
        "timelines": 1,  # the Baseline's clips over time
    }
    _assert_same_table(_table(wd), _table(tiny_workflow))
    assert json.loads((run / "val_metrics.json").read_text()) == json.loads(
        (tiny_workflow / "results/runs/baseline/seed0/val_metrics.json").read_text()
    )
    assert sorted(p.name for p in (wd / "results/predictions/baseline/seed0").iterdir()) == sorted(
        p.name for p in (tiny_workflow / "results/predictions/baseline/seed0").iterdir()
    )
    assert _executed(snakemake(wd, "--dry-run", "--cores", "1", *TINY)) == {}


# What a finetuning trains on changes while its own configuration does not: before runs recorded
# the content of their inputs, the finetuning resumed its finished run and failed.
TEMPLATE_EDIT = (
    "import textseld.text.store as s\n"
    "s.TEMPLATES = (s.TEMPLATES[0].replace('comes from', 'arrives from'),) + tuple(s.TEMPLATES[1:])\n"
)
# change -> (config patch, sitecustomize or None, upstream jobs, run input that changes, its file)
CHANGES = {
    "train.pretrain.lr": (
        {"train": {"pretrain": {"lr": 3.0e-4}}},
        None,
        {"pretrain_tokenizer": 1, "encode_sentences": 3},  # validation, training and test parts
        "pretrained_dir",
        "results/runs/pretrain-rcc/best.pt",
    ),
    "sentence template": (
        {},
        TEMPLATE_EDIT,
        {"make_texts": 1, "encode_sentences": 3},
        "texts",
        "results/texts/train.h5",
    ),
    "features.extract.wpe": (
        {"features": {"extract": {"wpe": {"iterations": 4}}}},
        None,
        {
            "extract_features": 4,
            "pack_features": 2,
            "feature_stats": 1,
            "make_texts": 1,
            "pretrain_tokenizer": 1,
            "encode_sentences": 3,
        },
        "train_h5",
        "results/features/train.h5",
    ),
}


def _merge(base: dict, patch: dict) -> dict:
    for k, v in patch.items():
        base[k] = _merge(base.get(k) or {}, v) if isinstance(v, dict) else v
    return base


@pytest.mark.parametrize("change", CHANGES)
def test_change_executed_reruns_the_finetuning_on_the_new_input(tiny_workflow, tmp_path, change):
    """README's "what reruns" rows whose finetunings keep their configuration, executed on one
    finetuning's chain (the dry-run tests in test_workflow.py check the whole plan)."""
    from textseld.models.pretrained import sha256_file
    from textseld.train.checkpoint import read_checkpoint

    patch, site, upstream, key, produced = CHANGES[change]
    wd = copy_workflow(tiny_workflow, tmp_path / "wd")
    cfg = _merge(yaml.safe_load((REPO / "config/tiny.yaml").read_text()), patch)
    (wd / "changed.yaml").write_text(yaml.safe_dump(cfg))
    env = None
    if site:
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(site)
        env = {"PYTHONPATH": str(tmp_path / "site")}
    target = "results/metrics/rcc-bert-grep/seed0/dcase2025.json"
    # the target first: --configfile takes every following word
    proc = snakemake(wd, target, "--cores", "2", "--configfile", "changed.yaml", timeout=900, env=env)
    assert _executed(proc) == {**upstream, "finetune": 1, "predict": 1, "evaluate": 1}
    run = "results/runs/rcc-bert-grep/seed0"
    assert json.loads((wd / run / "config.json").read_text())["input_sha256"][key] == sha256_file(wd / produced)
    # trained afresh on the new input, not the old run resumed (that would not write last.pt)
    assert os.path.getmtime(wd / run / "last.pt") > os.path.getmtime(tiny_workflow / run / "last.pt")
    if key == "pretrained_dir":  # another tokenizer: other weights (one changed template may go undrawn)
        old, new = (read_checkpoint(d / run / "last.pt")["model"] for d in (tiny_workflow, wd))
        assert not all(torch.equal(old[k], new[k]) for k in old)
    assert os.path.getmtime(wd / target) > os.path.getmtime(tiny_workflow / target)


# ------------------------------------------------------------------ data edits
DATASET = "resources/datasets/synthetic"
TEST_CHAIN = {  # the test split's features, references and what reads them; no pretraining, no baseline
    "extract_features": 2,
    "pack_features": 1,
    "collect_references": 1,
    # the text encoders' outputs of the test clips have their own job (one per source-text pair);
    # the finetunings read only the validation and training clips' outputs: none reruns
    "encode_sentences": 4,
    "encode_tokens": 2,  # the test clips' tokens, the identity controls' test outputs
    "predict": 13,
    "evaluate": 26,
    "aggregate": 1,  # (the training curves read only the runs' logs: left alone)
    # the test clips' sentences, their embeddings (one per text encoder), every text run's
    # alignment diagnostics and the clips over time
    "make_texts": 1,
    "embed_test_sentences": 2,
    "alignment": 8,
    "timelines": 3,
}
TRAIN_CHAIN = {  # the training split's features and everything trained on them; not the test split's
    "extract_features": 2,
    "pack_features": 1,
    "feature_stats": 1,
    "make_texts": 1,
    "pretrain_tokenizer": 2,
    "train_baseline": 1,
    "encode_tokens": 4,  # the identity controls' outputs (the test clips' too: new statistics)
    "encode_sentences": 12,  # every part: the test clips' outputs are standardised with the new statistics
    "finetune": 12,
    "predict": 13,
    "evaluate": 26,
    "aggregate": 1,
    "training_curves": 1,
    "alignment": 8,  # new runs (the test sentences' embeddings stay: the test split is the same)
    "timelines": 3,
}


def _edit_keeping_times(path: Path, edit) -> None:
    """Change `path`'s content, then put its old access and modification times back (as a copy
    with `cp -p` would): only its content says that it changed."""
    import time

    st = path.stat()
    time.sleep(0.05)  # past the file system's time-stamp granularity
    edit(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns


def test_data_edits_rerun_exactly_the_affected_split_and_downstream(tiny_workflow, tmp_path):
    """README "What reruns": a test clip's events removed, a training label row appended (each
    with its old modification time), executed one after the other on one copy of the tiny run;
    before and after them nothing reruns. Then a test recording replaced by another of the same
    size plans the test split's chain again (planned, not executed: its execution is the label
    edit's, which `make test` need not pay twice)."""
    import shutil

    wd = copy_workflow(tiny_workflow, tmp_path / "wd")
    # a copy has new inodes and ctimes: every file is hashed again, and the content is the same
    assert _executed(snakemake(wd, "--dry-run", "--cores", "1", *TINY)) == {}
    test_csvs = sorted((wd / DATASET / "metadata_dev/dev-test-synth").glob("*.csv"))
    assert len(test_csvs) >= 2
    header = test_csvs[0].read_text().splitlines()[0]

    trained = sorted((wd / "results/runs").glob("**/best.pt"))  # pretrainings, baseline, finetunings
    assert len(trained) == 2 + 1 + 12
    trained_at = [p.stat().st_mtime_ns for p in trained]

    _edit_keeping_times(test_csvs[0], lambda p: p.write_text(header + "\n"))
    executed = _executed(snakemake(wd, "--cores", "2", *TINY, timeout=900))
    assert executed == TEST_CHAIN
    assert not executed.keys() & {"finetune", "pretrain_tokenizer", "train_baseline"}
    assert [p.stat().st_mtime_ns for p in trained] == trained_at  # no model was trained again
    # the evaluation scores against the edited reference
    copied = wd / "results/references/test/dev-test-synth" / test_csvs[0].name
    assert copied.read_text().strip() == header

    train_csv = sorted((wd / DATASET / "metadata_dev/dev-train-synth").glob("*.csv"))[0]
    rows = {tuple(r[:3]) for r in csv.reader(train_csv.open())}
    assert ("10", "3", "7") not in rows
    _edit_keeping_times(train_csv, lambda p: p.write_text(p.read_text() + "10,3,7,30,200,0\n"))
    packed = wd / "results/features/test.h5"
    test_features = packed.stat().st_mtime_ns
    assert _executed(snakemake(wd, "--cores", "2", *TINY, timeout=900)) == TRAIN_CHAIN
    assert packed.stat().st_mtime_ns == test_features  # the test split's features were left alone
    assert _executed(snakemake(wd, "--dry-run", "--cores", "1", *TINY)) == {}

    wavs = sorted((wd / DATASET / "stereo_dev/dev-test-synth").glob("*.wav"))
    assert wavs[0].stat().st_size == wavs[1].stat().st_size and wavs[0].read_bytes() != wavs[1].read_bytes()
    _edit_keeping_times(wavs[0], lambda p: shutil.copyfile(wavs[1], p))
    assert _executed(snakemake(wd, "--dry-run", "--cores", "1", *TINY)) == TEST_CHAIN


def test_lr_new_given_with_config_reruns_only_the_grep_finetunings_and_downstream(tiny_workflow, tmp_path):
    """README "What reruns", the `lr_new` row, executed with the override typed on the command line
    (README, "Configuration"): the TREP heads have their own rate (lr_new_by_head)."""
    wd = copy_workflow(tiny_workflow, tmp_path / "wd")
    override = ("--config", "train={finetune: {lr_new: 1.0e-3}}")
    proc = snakemake(wd, "--cores", "2", *TINY, *override, timeout=900)
    jobs = parse_dry_run(proc.stdout + proc.stderr)
    assert job_counts(jobs) == {
        "finetune": 6,  # 4 text systems and their 2 controls
        "predict": 6,
        "evaluate": 12,
        "aggregate": 1,
        "training_curves": 1,
        "alignment": 4,  # the text systems only
        "timelines": 1,  # the grid's first GREP system
    }
    assert {j.wildcards["head"] for j in jobs if j.rule == "finetune"} == {"grep"}
    for src in ("rcc", "beats"):
        for txt in ("clip", "bert"):
            config = json.loads((wd / f"results/runs/{src}-{txt}-grep/seed0/config.json").read_text())
            assert config["train"]["lr_new"] == 1.0e-3  # a number, not the string "1.0e-3"
    # the same override again: nothing; without it, the 6 finetunings go back to the file's rate
    assert _executed(snakemake(wd, "--dry-run", "--cores", "1", *TINY, *override)) == {}
    assert _executed(snakemake(wd, "--dry-run", "--cores", "1", *TINY))["finetune"] == 6
