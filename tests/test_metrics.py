"""Tests of textseld.metrics.seld / bootstrap / predictions and `textseld evaluate`.

The worked examples are those of docs/METHOD.md section 8 (values computed there with the
official evaluation code); rows are (frame, class, source, azimuth, distance
cm, onscreen).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from textseld.cli import main as cli_main
from textseld.data.labels import LabelFileError, write_labels
from textseld.metrics.bootstrap import bootstrap_ci
from textseld.metrics.evaluate import evaluate_dirs
from textseld.metrics.seld import clip_statistics, fold_azimuth, score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_seld_loop import score_loop

N = 13


def rows(*events):
    return np.array(events, dtype=np.float64).reshape(-1, 6)


def track(frames, cls=0, az=30.0, dist=200.0, source=0):
    return rows(*[(f, cls, source, az, dist, 0) for f in frames])


# frames 0..9 labelled: T_ref = 9, frames 0..8 scored
REF1 = track(range(10))


def test_example_1_perfect_single_class():
    r = score({"a": REF1}, {"a": REF1.copy()})
    assert r["F"] == pytest.approx(1 / 13, abs=1e-12)
    assert round(r["F"], 4) == 0.0769
    assert r["classwise"]["F"][0] == pytest.approx(1.0, abs=1e-12)
    assert r["classwise"]["F"][1:] == [0.0] * 12
    assert r["DOAE"] == 0.0 and r["RDE"] == 0.0
    assert all(math.isnan(v) for v in r["classwise"]["DOAE"][1:])
    assert r["n_clips"] == 1 and r["protocol"] == "dcase2025" and r["average"] == "macro"


def test_example_2_duplicates_after_last_scored_frame_are_free():
    pred = np.vstack([REF1, track(range(9, 50), az=-60)])
    r = score({"a": REF1}, {"a": pred})
    assert round(r["F"], 4) == 0.0769 and r["classwise"]["F"][0] == pytest.approx(1.0)
    assert r["DOAE"] == 0.0 and r["RDE"] == 0.0


def test_example_2c_duplicate_inside_scored_frames():
    pred = np.vstack([REF1, track([8], az=-60)])
    r = score({"a": REF1}, {"a": pred})
    assert round(r["F"], 4) == 0.0729
    assert round(r["classwise"]["F"][0], 4) == 0.9474
    assert r["DOAE"] == 0.0 and r["RDE"] == 0.0


def test_example_3_empty_reference_clip_contributes_nothing():
    r = score({"a": REF1, "b": rows()}, {"a": REF1, "b": track(range(50), cls=5)})
    assert round(r["F"], 4) == 0.0769 and r["classwise"]["F"][5] == 0.0
    assert r["n_clips"] == 2


# frames 0..10 labelled: frames 0..9 scored
def test_example_4_azimuth_threshold_is_strict():
    ref = track(range(11), az=0)
    pred = np.vstack([track(range(5), az=20), track(range(5, 10), az=21), track([10], az=-80)])
    r = score({"a": ref}, {"a": pred})
    assert round(r["F"], 4) == 0.0385 and r["classwise"]["F"][0] == pytest.approx(0.5)
    assert r["DOAE"] == pytest.approx(20.5) and r["RDE"] == 0.0


def test_example_5_relative_distance_threshold_is_strict():
    ref = track(range(11), dist=100)
    pred = np.vstack([track(range(5), dist=200), track(range(5, 11), dist=201)])
    r = score({"a": ref}, {"a": pred})
    assert round(r["F"], 4) == 0.0385 and r["classwise"]["F"][0] == pytest.approx(0.5)
    assert r["DOAE"] == 0.0 and r["RDE"] == pytest.approx(1.005)


def test_example_6_folding():
    ref = track(range(11), az=80)
    pred = np.vstack([track(range(5), az=100), track(range(5, 11), az=-100)])
    r = score({"a": ref}, {"a": pred})
    assert round(r["F"], 4) == 0.0385 and r["classwise"]["F"][0] == pytest.approx(0.5)
    assert r["DOAE"] == pytest.approx(80.0) and r["RDE"] == 0.0


def test_example_7_two_references_one_prediction():
    ref = np.vstack([track(range(11), az=30, dist=200, source=0), track(range(11), az=-30, dist=300, source=1)])
    pred = track(range(11), az=28, dist=210)
    r = score({"a": ref}, {"a": pred})
    assert round(r["F"], 4) == 0.0513 and round(r["classwise"]["F"][0], 4) == 0.6667
    assert r["DOAE"] == pytest.approx(2.0) and r["RDE"] == pytest.approx(0.05)
    micro = score({"a": ref}, {"a": pred}, average="micro")
    assert micro["F"] == pytest.approx(2 / 3) and micro["DOAE"] == pytest.approx(2.0)


def test_example_10_missing_versus_empty_prediction_file():
    refs = {"a": REF1, "b": track(range(11), cls=3)}
    missing = score(refs, {"a": REF1}, average="micro")
    assert missing["F"] == pytest.approx(1.0) and missing["n_clips"] == 1
    empty = score(refs, {"a": REF1, "b": rows()}, average="micro")
    assert round(empty["F"], 4) == 0.6429 and empty["n_clips"] == 2


def test_strict_protocol_scores_every_frame_and_missing_files():
    assert score({"a": REF1}, {"a": REF1}, "strict")["classwise"]["F"][0] == pytest.approx(1.0)
    pred2 = np.vstack([REF1, track(range(9, 50), az=-60)])  # example 2: 41 false alarms now count
    assert score({"a": REF1}, {"a": pred2}, "strict")["classwise"]["F"][0] == pytest.approx(10 / 30.5)
    pred2c = np.vstack([REF1, track([8], az=-60)])
    assert score({"a": REF1}, {"a": pred2c}, "strict")["classwise"]["F"][0] == pytest.approx(10 / 10.5)
    refs = {"a": REF1, "b": track(range(11), cls=3)}
    r = score(refs, {"a": REF1}, "strict", "micro")  # missing file = 11 misses
    assert r["F"] == pytest.approx(10 / 15.5) and r["n_clips"] == 2
    r3 = score({"a": REF1, "b": rows()}, {"a": REF1, "b": track(range(50), cls=5)}, "strict")
    assert r3["classwise"]["F"][5] == 0.0
    assert clip_statistics({"b": rows()}, {"b": track(range(50), cls=5)}, "strict")[1][0, 5, 1] == 50


def test_micro_and_macro_differ_as_defined():
    ref = np.vstack([track(range(11), cls=0), track([0], cls=1, az=-40)])
    pred = np.vstack([track(range(11), cls=0), track([0], cls=1, az=0)])  # class 1: one spatially wrong pair
    macro, micro = score({"a": ref}, {"a": pred}), score({"a": ref}, {"a": pred}, average="micro")
    assert macro["F"] == pytest.approx(1 / 13)  # F_0 = 1, F_1 = 0
    assert micro["F"] == pytest.approx(10 / 11)  # TP 10, FPs 1
    assert macro["DOAE"] == pytest.approx(20.0)  # nanmean of 0 and 40
    assert micro["DOAE"] == pytest.approx(40 / 11)  # (0*10 + 40*1) / 11 pairs
    for key in ("F", "DOAE", "RDE"):
        np.testing.assert_equal(macro["classwise"][key], micro["classwise"][key])


def test_fold_azimuth():
    np.testing.assert_allclose(
        fold_azimuth(np.array([100, -100, 180, -180, 270, 90, -90, 450.5])), [80, -80, 0, 0, -90, 90, -90, 89.5]
    )


def _random_clips(rng, n_clips, integer=True, max_events=4):
    refs, preds = {}, {}
    for i in range(n_clips):
        ref, pred = [], []
        n_ref_frames = rng.integers(0, 51)
        for f in range(n_ref_frames):
            for _ in range(rng.integers(0, max_events)):
                c = rng.integers(0, 4)  # few classes: many same-class overlaps
                az, d = rng.integers(-90, 91), rng.integers(50, 500)
                ref.append((f, c, rng.integers(0, 3), az, d, 0))
                if rng.random() < 0.8:
                    paz = az + rng.normal(0, 25)
                    pd = d * rng.uniform(0.3, 2.5)
                    pred.append((f, c, 0, np.round(paz) if integer else paz, np.round(pd) if integer else pd, 0))
            if rng.random() < 0.3:
                pred.append((f, rng.integers(0, 4), 0, rng.integers(-180, 180), rng.integers(10, 600), 0))
        refs[f"c{i}"] = rows(*ref)
        if rng.random() < 0.9:
            preds[f"c{i}"] = rows(*pred)
    return refs, preds


@pytest.mark.parametrize("protocol", ["dcase2025", "strict"])
@pytest.mark.parametrize("average", ["macro", "micro"])
def test_vectorised_equals_reference_loop(protocol, average):
    rng = np.random.default_rng(7)
    refs, preds = _random_clips(rng, 40, integer=True)  # integer azimuths: many assignment ties
    refs2, preds2 = _random_clips(rng, 20, integer=False)
    refs.update({k + "f": v for k, v in refs2.items()})
    preds.update({k + "f": v for k, v in preds2.items()})
    got, want = score(refs, preds, protocol, average), score_loop(refs, preds, protocol, average)
    assert got["n_clips"] == want["n_clips"]
    for key in ("F", "DOAE", "RDE"):
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(got["classwise"][key], want["classwise"][key], rtol=1e-12, atol=1e-12)


def test_ties_and_overfull_cells_follow_official_slots():
    # 12 predictions of one class in one frame: the official slots keep 10 and
    # overwrite slot 0; one reference equidistant from several predictions.
    ref = rows((0, 0, 0, 10, 100, 0), (0, 0, 1, 50, 300, 0), (1, 0, 0, 0, 100, 0), (2, 0, 0, 0, 100, 0))
    pred = rows(
        *[(0, 0, s % 3, 30 + (s % 2) * 0, 100 + 40 * s, 0) for s in range(12)],
        (1, 0, 0, 10, 150, 0),
        (1, 0, 1, -10, 250, 0),
    )
    for protocol in ("dcase2025", "strict"):
        got, want = score({"a": ref}, {"a": pred}, protocol), score_loop({"a": ref}, {"a": pred}, protocol)
        for key in ("F", "DOAE", "RDE"):
            assert got[key] == pytest.approx(want[key], rel=1e-12)
    st = clip_statistics({"a": ref}, {"a": pred}, "dcase2025")[1]
    assert st[0, 0, 1] == 9  # frame 0: 10 kept of 12 predictions vs 2 references; frame 1: 2 vs 1
    st = clip_statistics({"a": ref}, {"a": pred}, "strict")[1]
    assert st[0, 0, 1] == 11  # strict keeps all 12 predictions at frame 0 (10 extra) + 1 at frame 1


def test_prediction_without_reference_is_an_error():
    with pytest.raises(KeyError, match="zzz"):
        score({"a": REF1}, {"zzz": REF1})


@pytest.mark.parametrize(
    "bad",
    [
        (50, 0, 0, 0, 100, 0),
        (-1, 0, 0, 0, 100, 0),
        (3, 13, 0, 0, 100, 0),
        (2.5, 0, 0, 0, 100, 0),
        (1, 0, 0, np.nan, 100, 0),
    ],
)
def test_in_memory_rows_out_of_range_are_rejected(bad):
    with pytest.raises(ValueError, match="prediction of clip 'a'"):
        score({"a": REF1}, {"a": np.vstack([REF1, rows(bad)])}, "strict")


# ---------------------------------------------------------------- files and CLI


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


HEADER = "frame,class,source,azimuth,distance,onscreen\n"


@pytest.fixture()
def dirs(tmp_path):
    ref_dir, pred_dir = tmp_path / "metadata_dev", tmp_path / "pred"
    write_labels(ref_dir / "dev-test-tau" / "fold4_room1_mix001.csv", REF1)
    write_labels(ref_dir / "dev-test-sony" / "fold4_room2_mix002.csv", track(range(11), cls=3))
    write_labels(pred_dir / "fold4_room1_mix001.csv", np.vstack([REF1, track([8], az=-60)]), decimals=2)
    return ref_dir, pred_dir


def test_evaluate_dirs_matches_score(dirs):
    ref_dir, pred_dir = dirs
    r = evaluate_dirs(ref_dir, pred_dir, "dcase2025", "macro")
    assert round(r["F"], 4) == 0.0729 and r["n_clips"] == 1 and r["n_ref_files"] == 2
    _write(pred_dir / "fold4_room2_mix002.csv", HEADER)
    r = evaluate_dirs(ref_dir, pred_dir, "dcase2025", "micro")
    assert r["F"] == pytest.approx(9 / (9 + 0.5 * 1 + 0.5 * 10))


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("frame,class,source,azimuth,distance\n", 1, "header"),
        (HEADER + "0,0,0,10,100\n", 2, "columns"),
        (HEADER + "0,0,0,10,100,0\n1.0,0,0,10,100,0\n", 3, "frame"),
        (HEADER + "0,x,0,10,100,0\n", 2, "class"),
        (HEADER + "0,0,0,10,100,0\n0,0,0,10,100,0\n3,13,0,10,100,0\n", 4, "class"),
        (HEADER + "50,0,0,10,100,0\n", 2, "frame"),
        (HEADER + "-1,0,0,10,100,0\n", 2, "frame"),
    ],
)
def test_malformed_prediction_names_file_and_line(dirs, text, line, what):
    ref_dir, pred_dir = dirs
    bad = _write(pred_dir / "fold4_room2_mix002.csv", text)
    with pytest.raises(LabelFileError, match=what) as info:
        evaluate_dirs(ref_dir, pred_dir)
    assert f"{bad}:{line}:" in str(info.value)


def test_malformed_reference_names_file_and_line(dirs):
    ref_dir, pred_dir = dirs
    bad = _write(ref_dir / "dev-test-tau" / "fold4_room3_mix003.csv", HEADER + "0,0,0,10.5,100,0\n")
    with pytest.raises(LabelFileError) as info:
        evaluate_dirs(ref_dir, pred_dir)
    assert f"{bad}:2:" in str(info.value) and "azimuth" in str(info.value)


def test_prediction_file_without_reference_names_it(dirs):
    ref_dir, pred_dir = dirs
    bad = _write(pred_dir / "fold4_room9_mix999.csv", HEADER)
    with pytest.raises(ValueError, match="fold4_room9_mix999.csv"):
        evaluate_dirs(ref_dir, pred_dir)
    assert bad.exists()


def test_bootstrap_contains_estimate_and_is_deterministic():
    rng = np.random.default_rng(3)
    refs, preds = _random_clips(rng, 60, integer=False)
    preds = {k: preds.get(k, rows()) for k in refs}
    _, stats = clip_statistics(refs, preds, "strict")
    point = score(refs, preds, "strict")
    ci = bootstrap_ci(stats, "macro", n_boot=300, seed=5)
    for key in ("F", "DOAE", "RDE"):
        lo, hi = ci[key]
        assert lo < point[key] < hi, key
    assert bootstrap_ci(stats, "macro", n_boot=300, seed=5) == ci
    assert bootstrap_ci(stats, "macro", n_boot=300, seed=6)["F"] != ci["F"]


def test_cli_evaluate_prints_and_writes_json(dirs, tmp_path, capsys):
    ref_dir, pred_dir = dirs
    out = tmp_path / "res" / "scores.json"
    rc = cli_main(
        ["evaluate", "--ref", str(ref_dir), "--pred", str(pred_dir), "--protocol", "strict", "--ci", "--out", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "F20" in text and "DOAE" in text and "RDE" in text
    data = json.loads(out.read_text())
    assert data["protocol"] == "strict" and data["average"] == "macro" and data["n_clips"] == 2
    assert data["classwise"]["DOAE"][1] is None  # NaN written as null
    assert len(data["ci"]["F"]) == 2
    # strict: clip 2 is missing (11 misses of class 3), clip 1 has 10 TP + 1 FP
    assert data["F"] == pytest.approx((10 / 10.5) / 13)
    rc = cli_main(["evaluate", "--ref", str(ref_dir), "--pred", str(tmp_path / "nope")])
    assert rc == 1
