"""textseld.plan / `textseld plan`: jobs per rule as the workflow plans them, device-hours and
wall time from a hand-made record, missing figures printed as missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from textseld.cli import main
from textseld.plan import (
    PlanError,
    feature_bytes_per_clip,
    format_plan,
    list_schedule,
    load_config,
    load_records,
    plan,
    planned_jobs,
)
from workflow_helpers import REPO, dry_run, job_counts, workflow_copy

SCHEMA = REPO / "config/schema.yaml"
PAPER_FINETUNE = {"freeze_tokenizer": False, "train_templates": "random"}


def write_setup(tmp: Path) -> Path:
    """One source, one text encoder, one head, two seeds, 100 training clips (90 fitted)."""
    setup = {
        "data": {"synthesis": {"train_clips": 100, "test_clips": 20}},
        "grid": {"sources": ["rcc"], "texts": ["bert"], "heads": ["grep"]},
        "seeds": [0, 1],
        "models": {"size": "paper"},
        "train": {
            "validation_split": {"fraction": 0.1},
            "pretrain": {"epochs": 4},
            "baseline": {"epochs": 10},
            "finetune": {
                "epochs": 2,
                "freeze_tokenizer": False,
                "train_templates": "random",
                "shuffle_frames": False,
                "lr_new_by_head": None,
            },
        },
        "resources": {"train": {"gpu": 1}},
    }
    path = tmp / "setup.yaml"
    path.write_text(yaml.safe_dump(setup))
    return path


def write_record(folder: Path, systems: dict[str, float], device: str = "cuda", batch: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "device": device,
        "batch": batch,
        "results": [{"system": s, "s_per_step": t, "params_trainable": 1000} for s, t in systems.items()],
    }
    (folder / f"train_{device}.json").write_text(json.dumps(record))


def test_hours_and_wall_time_follow_from_the_record(tmp_path):
    config = load_config([REPO / "config/config.yaml", write_setup(tmp_path)], SCHEMA)
    # seconds per step of 2 clips: 0.2 s, 0.1 s, 0.4 s per clip
    write_record(tmp_path / "rec", {"pretrain-rcc": 0.4, "baseline": 0.2, "rcc-bert-grep": 0.8})
    records = load_records(tmp_path / "rec", models_size="paper", finetune_mode=PAPER_FINETUNE)
    p = plan(config, records, gpus=2, train_clips=100, test_clips=20)
    assert p["fit_clips"] == 90
    hours = p["hours"]
    assert hours["pretrain_tokenizer"]["cuda"] == pytest.approx(0.2 * 90 * 4 / 3600)
    assert hours["train_baseline"]["cuda"] == pytest.approx(2 * 0.1 * 90 * 10 / 3600)
    assert hours["finetune"]["cuda"] == pytest.approx(2 * 0.4 * 90 * 2 / 3600)
    # on 2 GPUs (pretraining 72 s, each baseline 90 s, each finetuning 72 s after the pretraining):
    # at 0 the pretraining (heading a 144 s chain) and a baseline start; at 72 the second
    # baseline (90 s) takes the free GPU, at 90 a finetuning (90-162), at 162 the last one (-234)
    assert p["wall_hours"]["cuda"] == pytest.approx(234 / 3600)
    # nothing recorded on cpu: missing, not derived from cuda
    assert p["wall_hours"]["cpu"] is None
    assert hours["finetune"]["cpu"] is None
    assert set(p["missing"]["cpu"]) >= {"pretrain_tokenizer", "train_baseline", "finetune", "predict"}
    # checkpoints: 16 bytes per trainable parameter, 5 training runs
    assert p["disk_gb"]["checkpoints"] == pytest.approx(5 * 1000 * 16 / 1e9)
    assert p["disk_gb"]["features"] == pytest.approx(2 * 120 * feature_bytes_per_clip() / 1e9)


def test_a_result_s_own_batch_and_the_device_name(tmp_path):
    """benchmarks/gpu_check.py's records: each kind at its own batch size, the GPU named."""
    config = load_config([REPO / "config/config.yaml", write_setup(tmp_path)], SCHEMA)
    record = {
        "device": "cuda",
        "device_name": "NVIDIA H100 80GB HBM3",
        "batch": "paper",
        "results": [
            {"system": "pretrain-rcc", "batch": 8, "s_per_step": 0.8, "params_trainable": 10},
            {"system": "baseline", "batch": 256, "s_per_step": 2.56, "params_trainable": 10},
            {"system": "rcc-bert-grep", "batch": 8, "s_per_step": 1.6, "params_trainable": 10},
        ],
    }
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec/paper_size_cuda_nvidia-h100.json").write_text(json.dumps(record))
    records = load_records(tmp_path / "rec", models_size="paper", finetune_mode=PAPER_FINETUNE)
    p = plan(config, records, gpus=1, train_clips=100, test_clips=20)
    assert p["hours"]["pretrain_tokenizer"]["cuda"] == pytest.approx(0.1 * 90 * 4 / 3600)
    assert p["hours"]["train_baseline"]["cuda"] == pytest.approx(2 * 0.01 * 90 * 10 / 3600)
    assert p["hours"]["finetune"]["cuda"] == pytest.approx(2 * 0.2 * 90 * 2 / 3600)
    assert "training on cuda: 3 systems on NVIDIA H100 80GB HBM3, s per clip at batch 8/256" in format_plan(p)
    record["results"][1]["batch"] = "many"
    (tmp_path / "rec/paper_size_cuda_nvidia-h100.json").write_text(json.dumps(record))
    with pytest.raises(PlanError, match=r"paper_size_cuda_nvidia-h100\.json: results\[1\] \(baseline\): key batch"):
        load_records(tmp_path / "rec", models_size="paper", finetune_mode=PAPER_FINETUNE)


def test_list_schedule_waits_for_dependencies():
    # job 1 waits for job 0; on one device: sequential; on two: 0 then 1, job 2 beside them
    assert list_schedule([5.0, 3.0, 4.0], [None, 0, None], 1) == 12.0
    assert list_schedule([5.0, 3.0, 4.0], [None, 0, None], 2) == 8.0
    assert list_schedule([5.0, 3.0, 4.0], [None, 0, None], 3) == 8.0
    # the job heading the longest chain first: 1 (1 + 6) before 0 and 3 (5 each), else 12
    assert list_schedule([5.0, 1.0, 6.0, 5.0], [None, None, 1, None], 2) == 10.0


def test_a_missing_figure_is_printed_as_missing(tmp_path, capsys, monkeypatch):
    setup = write_setup(tmp_path)
    # a record of the same size without the finetuning's figure
    write_record(tmp_path / "rec", {"pretrain-rcc": 0.4, "baseline": 0.2})
    # a record of another model size: does not apply
    other = {"device": "cpu", "batch": 2, "models_size": "tiny", "results": [{"system": "baseline", "s_per_step": 1.0}]}
    (tmp_path / "rec/other.json").write_text(json.dumps(other))
    monkeypatch.chdir(REPO)
    code = main(
        ["plan", "--configfile", "config/config.yaml", str(setup), "--gpus", "4", "--records", str(tmp_path / "rec")]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:1].isalpha() and "  " in line}
    assert rows["finetune"] == ["2", "missing", "missing"]
    assert rows["train_baseline"][0] == "2" and rows["train_baseline"][1] == "missing"
    assert float(rows["train_baseline"][2]) == pytest.approx(round(2 * 0.1 * 90 * 10 / 3600, 2))
    assert "cuda-hours: " in out and "missing: finetune (1 system unrecorded)" in out
    assert "cuda missing" in out  # wall time needs every training job's figure
    assert "training on cpu: missing (no record of models size paper)" in out


def test_unknown_clip_counts_are_missing_not_guessed(tmp_path):
    config = load_config([REPO / "config/config.yaml", REPO / "config/paper.yaml"], SCHEMA)
    records = load_records(REPO / "benchmarks/records", models_size="paper", finetune_mode=PAPER_FINETUNE)
    p = plan(config, records, gpus=8, train_clips=None, test_clips=None)
    assert p["hours"]["finetune"]["cpu"] is None and p["disk_gb"]["features"] is None
    assert p["jobs"]["finetune"] == 24 and sum(p["jobs"].values()) == 218  # 186 + the two splits' content fingerprints
    # + the alignment diagnostics (the test split's sentences, their embeddings per text encoder,
    # one per text run) and the clips over time (the Baseline and one text system per head)
    assert p["jobs"]["alignment"] == 24 and p["jobs"]["embed_test_sentences"] == 2 and p["jobs"]["timelines"] == 3


@pytest.mark.parametrize("mode", ["encoded", "tokens", "paper"])
def test_identity_controls_add_finetunings_and_the_token_jobs_but_no_sentence_encodings(tmp_path, mode):
    """The identity control reads the fixed tokenizer's tokens (encode_tokens, once per source)
    and has no text-encoder outputs to encode (no encode_sentences job)."""
    fin = {
        "encoded": {"freeze_tokenizer": True, "train_templates": "fixed"},
        "tokens": {"freeze_tokenizer": True, "train_templates": "random", "shuffle_frames": False},
        "paper": {"freeze_tokenizer": False, "train_templates": "random", "shuffle_frames": False},
    }[mode]
    jobs = {}
    for texts in (["clip", "bert"], ["clip", "bert", "identity"], ["identity"]):
        path = tmp_path / f"{mode}-{len(texts)}.yaml"
        path.write_text(yaml.safe_dump({"grid": {"texts": texts}, "seeds": [0, 1, 2], "train": {"finetune": fin}}))
        jobs[len(texts)] = planned_jobs(load_config([REPO / "config/config.yaml", path], SCHEMA))
    without, with_controls, only = jobs[2], jobs[3], jobs[1]
    assert with_controls["finetune"] == without["finetune"] + 2 * 2 * 3  # 2 sources x 2 heads x 3 seeds
    assert with_controls["predict"] == without["predict"] + 12
    assert with_controls["evaluate"] == without["evaluate"] + 24
    assert with_controls.get("encode_sentences") == without.get("encode_sentences")
    assert "encode_sentences" not in only and "make_texts" not in only and only["finetune"] == 12
    assert with_controls["make_texts"] == without["make_texts"] == 2  # the training and the test sentences
    assert "alignment" not in only and with_controls["alignment"] == without["alignment"]  # text systems only
    tokens = {"encoded": 4, "tokens": 4, "paper": None}[mode]  # the training and the test split's, per source
    assert with_controls.get("encode_tokens") == only.get("encode_tokens") == tokens
    assert without.get("encode_tokens") == (2 if mode == "tokens" else None)


def test_bad_input_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(PlanError, match=r"bad\.yaml: expected a mapping"):
        load_config([bad], SCHEMA)
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "broken.json").write_text("{")
    with pytest.raises(PlanError, match=r"broken\.json: not a readable JSON record"):
        load_records(rec, models_size="paper", finetune_mode=PAPER_FINETUNE)


@pytest.mark.workflow
@pytest.mark.parametrize("setup", [[], ["config/paper.yaml"]], ids=["default", "paper"])
def test_jobs_per_rule_are_the_dry_runs(tmp_path, setup):
    wd = workflow_copy(tmp_path / "wf")
    extra = ["--configfile", *setup] if setup else []
    counts = job_counts(dry_run(wd, *extra))
    config = load_config([REPO / "config/config.yaml", *(REPO / s for s in setup)], SCHEMA)
    planned = planned_jobs(config)
    assert planned.pop("all") == 1  # the dry-run parser leaves out the target rule
    assert planned == counts
