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


def _capture_figure(monkeypatch):
    """The figure plot_training_curves saves (inspected instead of the pixels)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    saved = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def test_one_panel_per_system_seeds_in_one_colour_and_the_selected_epoch_marked(tmp_path, monkeypatch):
    import json

    runs = {"pretrain rcc": _log(tmp_path / "p", "epoch,loss,val_F\n0,1,0.1\n1,0.5,0.2\n")}
    for system in ("Baseline", "RCC-CLIP-GREP"):
        for seed in (0, 1, 2):
            f = [0.1, 0.4 + 0.01 * seed, 0.3] if system == "Baseline" else [0.1, 0.2, 0.3 + 0.01 * seed]
            rows = "".join(f"{e},{1 / (e + 1)},{v}\n" for e, v in enumerate(f))
            runs[f"{system} seed {seed}"] = _log(tmp_path / f"{system}{seed}", "epoch,loss,val_F\n" + rows)
    # a run's recorded selection wins over the log's best (the workflow's runs all have one)
    (tmp_path / "RCC-CLIP-GREP2" / "val_metrics.json").write_text(json.dumps({"epoch": 0, "F": 0.1}))
    saved = _capture_figure(monkeypatch)
    plot_training_curves(runs, tmp_path / "c.png")
    (fig,) = saved
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["pretrain rcc (1 run)", "Baseline (3 runs)", "RCC-CLIP-GREP (3 runs)"]
    for ax, selected in zip(panels, ([2], [2, 2, 2], [3, 3, 1])):  # 1-based epochs on the x axis
        curves = [line for line in ax.get_lines() if line.get_marker() in ("None", None, "")]
        stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
        assert len({line.get_color() for line in ax.get_lines()}) == 1  # one colour per system
        assert len(curves) == len(stars) == len(selected)
        assert [int(s.get_xdata()[0]) for s in stars] == selected
    colours = [panels[i].get_lines()[0].get_color() for i in range(3)]
    assert len(set(colours)) == 3


def test_selected_epoch_reads_the_run_record_and_refuses_a_bad_one(tmp_path):
    from textseld.curves import selected_epoch

    run = _log(tmp_path / "a", "epoch,loss,val_F\n0,1,0.2\n1,0.5,0.4\n2,0.4,0.4\n3,0.3,\n")
    log = read_training_log(run / "log.csv")
    assert selected_epoch(run, log) == 1  # the first epoch of the best F, as the loop selects
    (run / "val_metrics.json").write_text('{"epoch": 2}')
    assert selected_epoch(run, log) == 2
    (run / "val_metrics.json").write_text("[]")
    with pytest.raises(ValueError, match=r"val_metrics.json: expected a JSON object with the selected 'epoch'"):
        selected_epoch(run, log)
