"""Tests of textseld.curves: training logs read strictly, one figure for all runs."""

from __future__ import annotations

import math

import pytest

from textseld.curves import plot_training_curves, read_training_log


def _log(run_dir, text):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "log.csv").write_text(text)
    return run_dir


def test_read_training_log_parses_numbers_and_blanks(tmp_path):
    run = _log(tmp_path / "a", "epoch,step,loss,val_F,lr_new\n0,3,0.5,0.1,0.001\n1,6,0.25,,0.001\n")
    log = read_training_log(run / "log.csv")
    assert log["epoch"] == [0.0, 1.0] and log["loss"] == [0.5, 0.25]
    assert log["val_F"][0] == 0.1 and math.isnan(log["val_F"][1])


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "holds no epoch"),
        ("epoch,loss\n0,0.5\n", r"lacks column\(s\) \['val_F'\]"),
        ("epoch,loss,val_F\n0,abc,0.1\n", r"log.csv:2: column 'loss' must be a number"),
    ],
)
def test_bad_logs_name_the_file(tmp_path, text, match):
    run = _log(tmp_path / "a", text)
    with pytest.raises(ValueError, match=match):
        read_training_log(run / "log.csv")


def test_missing_log_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="training log not found"):
        plot_training_curves({"x": tmp_path / "none"}, tmp_path / "c.png")


def test_plot_writes_a_png(tmp_path):
    runs = {
        f"run{i}": _log(tmp_path / f"r{i}", f"epoch,loss,val_F\n0,{1 + i},0.1\n1,{0.5 + i},0.3\n") for i in range(3)
    }
    out = tmp_path / "curves.png"
    plot_training_curves(runs, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list(tmp_path.glob(".curves.png.*"))  # no temporary file left behind
