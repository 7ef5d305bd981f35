"""Tests of textseld.timelines: reference against prediction over time, per clip."""

from __future__ import annotations

import numpy as np
import pytest

from textseld.data.labels import write_labels
from textseld.timelines import choose_clips, plot_clip_timelines


def _rows(events):
    """[(class, azimuth, distance cm, first frame, last frame)] -> label rows."""
    rows = [[f, c, 0, az, d, 0] for c, az, d, a, b in events for f in range(a, b + 1)]
    return np.asarray(sorted(rows), dtype=np.float64).reshape(-1, 6)


@pytest.fixture
def folders(tmp_path):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir()
    pred.mkdir()
    clips = {
        "a_silent": (_rows([]), _rows([])),
        "b_one": (_rows([(2, 40, 300, 0, 9)]), _rows([(2, 35, 250, 1, 9), (7, -120, 100, 3, 4)])),
        "c_two": (_rows([(0, -20, 150, 5, 14), (8, 60, 400, 10, 29)]), _rows([])),
        "d_more": (_rows([(1, 0, 200, 0, 0)]), _rows([(1, 0, 200, 0, 0)])),
    }
    for name, (r, p) in clips.items():
        write_labels(ref / f"{name}.csv", r)
        write_labels(pred / f"{name}.csv", p)
    return ref, pred, clips


def test_clips_with_events_are_chosen_by_name(folders):
    ref, _, _ = folders
    assert choose_clips(ref, 2) == ["b_one", "c_two"]
    assert choose_clips(ref, 10) == ["b_one", "c_two", "d_more"]


def test_each_clip_gets_class_azimuth_and_distance_panels_with_every_row(folders, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    ref, pred, clips = folders
    saved = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (saved.append(self), original(self, *a, **k))[1])
    out = tmp_path / "t.png"
    assert plot_clip_timelines(ref, pred, out, n_clips=2, title="Baseline") == ["b_one", "c_two"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".t.png.*"))
    (fig,) = saved
    axes = np.asarray(fig.axes).reshape(3, 2)
    assert [ax.get_title() for ax in axes[0]] == ["b_one", "c_two"]
    for col, name in enumerate(("b_one", "c_two")):
        r, p = clips[name]
        for row, column, scale in ((0, 1, 1.0), (1, 3, 1.0), (2, 4, 100.0)):
            points = [c.get_offsets() for c in axes[row, col].collections]
            want = [x for x in (r, p) if len(x)]
            assert len(points) == len(want)
            for got, rows in zip(points, want):  # frames on x, the panel's value on y
                np.testing.assert_allclose(got[:, 0], rows[:, 0])
                np.testing.assert_allclose(got[:, 1], rows[:, column] / scale)


def test_a_missing_prediction_file_is_named(folders, tmp_path):
    ref, pred, _ = folders
    (pred / "c_two.csv").unlink()
    with pytest.raises(ValueError, match=r"c_two\.csv: prediction file of clip 'c_two' not found"):
        plot_clip_timelines(ref, pred, tmp_path / "t.png", clips=["b_one", "c_two"])
    assert not (tmp_path / "t.png").exists()


def test_references_in_split_subfolders_are_found(tmp_path):
    """The workflow's test references lie in one subfolder per split folder (collect_references),
    the predictions in one flat folder: the clips are chosen and drawn all the same."""
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for split, name in (("dev-test-b", "a_clip"), ("dev-test-a", "b_clip")):
        (ref / split).mkdir(parents=True)
        write_labels(ref / split / f"{name}.csv", _rows([(3, 10, 200, 0, 4)]))
    pred.mkdir()
    write_labels(pred / "a_clip.csv", _rows([]))
    write_labels(pred / "b_clip.csv", _rows([(3, 12, 210, 1, 4)]))
    assert choose_clips(ref, 5) == ["a_clip", "b_clip"]
    assert plot_clip_timelines(ref, pred, tmp_path / "t.png") == ["a_clip", "b_clip"]
    write_labels(ref / "dev-test-a" / "a_clip.csv", _rows([]))
    with pytest.raises(ValueError, match="'a_clip' has two reference files"):
        choose_clips(ref, 1)
