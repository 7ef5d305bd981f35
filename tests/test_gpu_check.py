"""benchmarks/gpu_check.py: its quick path on CPU writes the records `textseld plan` reads, with
the device's name; benchmarks/bench_paper_size.py stops itself at its time budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_paper_size
import gpu_check
from textseld.plan import DEFAULT_RECORD_FINETUNE, DEFAULT_RECORD_SIZE, format_plan, load_config, load_records, plan
from workflow_helpers import REPO


@pytest.mark.slow
@pytest.mark.paper  # paper-size models: run by `make test-paper` (CI), not in the 10-minute `make test`
def test_the_quick_check_on_cpu_fills_the_plan_s_cpu_figures(tmp_path):
    assert gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path / "out")]) == 0
    name = bench_paper_size.device_name("cpu")
    records = tmp_path / "out/records"  # --quick keeps its records out of benchmarks/records
    tag = f"cpu_{gpu_check.slug(name)}"
    assert sorted(p.name for p in records.iterdir()) == [
        f"features_{tag}.json",
        f"features_{tag}.log",
        f"paper_size_{tag}.json",
    ]
    for path in records.iterdir():  # records are committed: no paths of the machine that measured
        assert str(tmp_path) not in path.read_text() and str(REPO) not in path.read_text(), path.name
    training = json.loads((records / f"paper_size_{tag}.json").read_text())
    assert training["device_name"] == name and training["skipped"] == []
    (row,) = training["results"]
    assert row["system"] == "baseline" and row["batch"] == 2 and row["steps_timed"] == 1 and row["s_per_step"] > 0
    config = load_config([REPO / "config/config.yaml", REPO / "config/paper.yaml"], REPO / "config/schema.yaml")
    rec = load_records(records, models_size=DEFAULT_RECORD_SIZE, finetune_mode=DEFAULT_RECORD_FINETUNE)
    p = plan(config, rec, gpus=1, train_clips=100, test_clips=10)
    assert p["hours"]["train_baseline"]["cpu"] == pytest.approx(3 * row["s_per_step"] / 2 * 90 * 200 / 3600)
    assert p["hours"]["extract_features"]["cpu"] > 0 and p["hours"]["finetune"]["cpu"] is None
    assert f"training on cpu: 1 systems on {name}, s per clip at batch 2" in format_plan(p)


def test_the_training_step_stops_at_its_budget(tmp_path, capsys):
    out = tmp_path / "paper_size.json"
    assert bench_paper_size.main(["--budget-s", "0", "--systems", "baseline", "--steps", "1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["results"] == [] and [s["system"] for s in record["skipped"]] == ["baseline"]
    assert "0 s of --budget-s left" in record["skipped"][0]["why"]
