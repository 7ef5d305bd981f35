"""Every row of the results tables says what produced it; rows of other data or recipes are refused.

Unit tests build provenance.json files as textseld.provenance writes them; the last test
reads the tables of the tiny workflow run (the session's one, shared with the rerun tests).
"""

from __future__ import annotations

import copy
import csv
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from textseld import provenance
from textseld.cli import main
from textseld.recipes import apply_recipe
from textseld.results import PROVENANCE_COLUMNS, ResultsError, RunRecord, aggregate, build_tables, system_name

REPO = Path(__file__).resolve().parents[1]


def resolved(*files: str) -> dict:
    """The workflow's resolved config, as rules/common.smk builds it."""
    config: dict = {}
    for name in ("config/config.yaml", *files):
        update_config(config, yaml.safe_load((REPO / name).read_text()))
    config = apply_recipe(config)
    validate(config, str(REPO / "config/schema.yaml"), set_default=True)
    return config


TINY_TRAIN = {"epochs": 1, "batch_size": 4, "progress": False}


def test_a_run_records_its_departures_from_the_recipe():
    tiny = resolved("config/tiny.yaml")
    record = provenance.run_provenance(tiny, "baseline", None, train_clips=9, validation_clips=3)
    assert record["recipe"] == "default" and record["model_size"] == "tiny"
    assert record["data"] == {"source": "synthetic", "train_clips": 9, "validation_clips": 3}
    # tiny.yaml's keys of the baseline's sections; progress and device are how it runs
    assert record["departures"] == {
        "models.size": "tiny",
        "train.baseline.batch_size": 4,
        "train.baseline.epochs": 1,
        "train.validation_split.fraction": 0.25,
    }
    fin = provenance.run_provenance(tiny, "finetune", "clip", 9, 3)["departures"]
    assert fin["text_encoders.clip"] == "random-64x2" and "text_encoders.bert" not in fin
    assert fin["train.pretrain.epochs"] == 1 and fin["train.finetune.batch_size"] == 4
    assert record["config_sha256"] == provenance.config_digest(copy.deepcopy(tiny))
    assert record["config_sha256"] != provenance.config_digest(resolved())
    # the shipped setups depart from nothing; paper_cpu from the paper recipe by its run length
    assert provenance.run_provenance(resolved(), "finetune", "bert", 1, 1)["departures"] == {}
    assert provenance.run_provenance(resolved("config/paper.yaml"), "finetune", "clip", 1, 1)["departures"] == {}
    cpu = provenance.run_provenance(resolved("config/paper.yaml", "config/paper_cpu.yaml"), "baseline", None, 1, 1)
    assert cpu["recipe"] == "paper" and cpu["departures"]["train.baseline.max_steps_per_epoch"] == 1
    assert not any(k.startswith("models.beats_checkpoint") for k in cpu["departures"])  # weights: weights.json


def test_code_version_is_the_checkouts_commit_or_the_package_version(monkeypatch):
    from textseld import __version__

    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    code = provenance.code_version()
    assert code["version"] == __version__
    if head.returncode == 0 and Path(provenance.__file__).resolve().is_relative_to(REPO):
        assert code["commit"] == head.stdout.strip() and isinstance(code["dirty"], bool)

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert provenance.code_version() == {"commit": None, "dirty": None, "version": __version__}


def _run(tmp, model, seed, *, recipe="default", source="synthetic", n_train=9, commit="a" * 40, dirty=False):
    d = tmp / model / f"seed{seed}"
    d.mkdir(parents=True)
    metrics = {}
    for p in ("dcase2025", "strict"):
        metrics[p] = d / f"{p}.json"
        data = {"protocol": p, "average": "macro", "F": 0.3, "DOAE": 20.0, "RDE": 0.4, "n_clips": 4}
        metrics[p].write_text(json.dumps(data))
    (d / "weights.json").write_text("{}")
    record = {
        "recipe": recipe,
        "data": {"source": source, "train_clips": n_train, "validation_clips": 3},
        "model_size": "tiny",
        "departures": {"train.baseline.epochs": 1, "models.size": "tiny"},
        "code": {"commit": commit, "dirty": dirty, "version": "0.1.0"},
        "config_sha256": "f" * 64,
    }
    provenance.write_provenance(d, record)
    return RunRecord(system_name(model), seed, metrics, d / "weights.json", d / "provenance.json")


def test_every_row_says_what_produced_it(tmp_path):
    runs = [_run(tmp_path, "baseline", 0), _run(tmp_path, "baseline", 1, commit="b" * 40, dirty=True)]
    out = tmp_path / "out"
    aggregate(runs, out / "comparison.csv", out / "comparison.md", out / "comparison.png", out / "runs.csv")
    per_run = list(csv.DictReader((out / "runs.csv").open()))
    assert {k: per_run[0][k] for k in PROVENANCE_COLUMNS} == {
        "data_source": "synthetic",
        "train_clips": "9",
        "validation_clips": "3",
        "test_clips": "4",
        "recipe": "default",
        "model_size": "tiny",
        "departures": 'models.size="tiny", train.baseline.epochs=1',
        "code_version": "aaaaaaaaaaaa",
        "config_sha256": "f" * 16,
    }
    assert per_run[1]["code_version"] == "bbbbbbbbbbbb (dirty)"
    (row,) = csv.DictReader((out / "comparison.csv").open())
    assert row["recipe"] == "default" and row["train_clips"] == "9" and row["test_clips"] == "4"
    assert row["code_version"] == "aaaaaaaaaaaa; bbbbbbbbbbbb (dirty)"  # the seeds' versions, both
    md = (out / "comparison.md").read_text()
    assert '| synthetic (9/3/4) | default | tiny | models.size="tiny", train.baseline.epochs=1 |' in md


def test_runs_of_other_data_or_recipes_are_refused_unless_asked(tmp_path, capsys):
    runs = [
        _run(tmp_path, "baseline", 0),
        _run(tmp_path, "rcc-clip-grep", 0, recipe="paper"),
        _run(tmp_path, "rcc-clip-grep", 1, n_train=400),
    ]
    out = tmp_path / "out"
    with pytest.raises(ResultsError, match=r"different data or recipes.*Baseline seed 0.*RCC-CLIP-GREP seed 0") as err:
        aggregate(runs, out / "c.csv", out / "c.md", out / "c.png", out / "r.csv")
    assert "recipe paper]: RCC-CLIP-GREP seed 0" in str(err.value) and "aggregate.allow_mixed" in str(err.value)
    assert not out.exists()  # nothing written
    _, rows = build_tables(runs, allow_mixed=True)
    assert rows[1]["recipe"] == "default; paper" and rows[1]["train_clips"] == "400; 9"
    argv = ["aggregate", "--out", str(out)]
    for r, model in zip(runs, ["baseline", "rcc-clip-grep", "rcc-clip-grep"]):
        argv += ["--run", model, str(r.seed), str(r.metrics["dcase2025"]), str(r.metrics["strict"]), str(r.weights)]
    assert main(argv) != 0
    assert "different data or recipes" in capsys.readouterr().err
    assert main([*argv, "--allow-mixed"]) == 0
    assert list(csv.DictReader((out / "runs.csv").open()))[1]["recipe"] == "paper"  # read beside weights.json


@pytest.mark.workflow
@pytest.mark.slow
def test_the_workflows_tables_say_what_produced_them(tiny_workflow):
    rows = list(csv.DictReader((tiny_workflow / "results/runs.csv").open()))
    for row in rows:
        assert row["data_source"] == "synthetic" and row["recipe"] == "default" and row["model_size"] == "tiny"
        assert (row["train_clips"], row["validation_clips"], row["test_clips"]) == ("9", "3", "4")
        assert row["code_version"] and len(row["config_sha256"]) == 16
    baseline = next(r for r in rows if r["system"] == "Baseline")
    assert baseline["departures"] == (
        'models.size="tiny", train.baseline.batch_size=4, train.baseline.epochs=1, train.validation_split.fraction=0.25'
    )
    record = json.loads((tiny_workflow / "results/runs/baseline/seed0/provenance.json").read_text())
    assert record["config_sha256"][:16] == baseline["config_sha256"]
    assert record["config_sha256"] == provenance.config_digest(resolved("config/tiny.yaml"))
    comparison = list(csv.DictReader((tiny_workflow / "results/comparison.csv").open()))
    assert all(r["recipe"] == "default" and r["data_source"] == "synthetic" for r in comparison)
    assert "| synthetic (9/3/4) | default | tiny |" in (tiny_workflow / "results/comparison.md").read_text()
