"""Tests of textseld.metrics.decode and predictions: merging rules and a round trip
reference CSV -> ADPIT targets -> multi-ACCDOA output -> decoded CSVs -> score."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textseld.data.labels import read_labels, write_labels
from textseld.data.targets import build_targets
from textseld.metrics.decode import decode_batch, decode_output
from textseld.metrics.evaluate import evaluate_dirs
from textseld.metrics.predictions import write_outputs, write_prediction

L, K, C = 50, 3, 13


def output(*tracks):
    """tracks: (frame, class, track, azimuth deg, activity, distance m) -> (L, K, 3, C)."""
    out = np.zeros((L, K, 3, C))
    for f, c, k, az, act, d in tracks:
        a = math.radians(az)
        out[f, k, :, c] = [act * math.cos(a), act * math.sin(a), d]
    return out


def test_single_track_and_threshold():
    out = output((4, 2, 1, 30, 0.9, 2.5), (5, 2, 1, 30, 0.5, 2.5), (6, 2, 1, 30, 0.51, -1.0))
    r = decode_output(out)
    assert r.shape == (2, 6)
    np.testing.assert_allclose(r[0], [4, 2, 0, 30, 250, 0], atol=1e-9)
    np.testing.assert_allclose(r[1], [6, 2, 0, 30, 0, 0], atol=1e-9)  # 0.5 is not active; d clipped at 0


def test_flat_and_shaped_inputs_agree():
    rng = np.random.default_rng(0)
    out = rng.normal(0, 0.6, size=(L, K, 3, C))
    flat = out.reshape(L, K * 3 * C)
    # index k*3*C + j*C + c: x of track 1, class 4 lives at 1*39 + 0*13 + 4
    assert flat[7, 1 * 39 + 4] == out[7, 1, 0, 4] and flat[7, 2 * 39 + 26 + 5] == out[7, 2, 2, 5]
    np.testing.assert_array_equal(decode_output(out), decode_output(flat))
    import torch

    np.testing.assert_allclose(decode_output(torch.from_numpy(flat)), decode_output(flat))
    assert len(decode_output(torch.from_numpy(flat).bfloat16())) > 0
    batch = decode_batch(np.stack([out, out[::-1]]))
    assert len(batch) == 2 and np.array_equal(batch[0], decode_output(out))


def test_two_close_tracks_merge_into_their_mean():
    out = output((0, 1, 0, 10, 1.0, 2.0), (0, 1, 2, 20, 1.0, 4.0))  # 10° apart
    r = decode_output(out)
    assert r.shape == (1, 6)
    np.testing.assert_allclose(r[0, [0, 1, 2, 5]], [0, 1, 0, 0])
    assert r[0, 3] == pytest.approx(15.0) and r[0, 4] == pytest.approx(300.0)


def test_far_tracks_stay_separate_and_pair_plus_lone_track():
    far = decode_output(output((3, 0, 0, -40, 1, 1), (3, 0, 1, 40, 1, 2), (3, 0, 2, 70, 0.2, 5)))
    np.testing.assert_allclose(far[:, [0, 1, 2, 3, 4]], [[3, 0, 0, -40, 100], [3, 0, 1, 40, 200]], atol=1e-9)
    # exactly 15° apart is not "closer than 15°"
    assert len(decode_output(output((0, 0, 0, 0, 1, 1), (0, 0, 1, 15.0001, 1, 1)))) == 2
    # one close pair (tracks 1, 2) and a far track 0: lone track first, then the pair's mean
    r = decode_output(output((9, 5, 0, -60, 1, 1), (9, 5, 1, 50, 1, 2), (9, 5, 2, 60, 1, 4)))
    np.testing.assert_allclose(r[:, 2:5], [[0, -60, 100], [1, 55, 300]], atol=1e-9)


def test_two_close_pairs_merge_all_three():
    # 0-1 and 1-2 are close (10° each), 0-2 are 20° apart: all three become one event
    r = decode_output(output((2, 7, 0, 0, 1, 1), (2, 7, 1, 10, 1, 2), (2, 7, 2, 20, 1, 6)))
    assert r.shape == (1, 6)
    mean_x = np.mean(np.cos(np.radians([0, 10, 20])))
    mean_y = np.mean(np.sin(np.radians([0, 10, 20])))
    assert r[0, 3] == pytest.approx(math.degrees(math.atan2(mean_y, mean_x)))
    assert r[0, 4] == pytest.approx(300.0)


def test_merging_is_per_class_and_frame():
    r = decode_output(output((0, 0, 0, 10, 1, 1), (0, 1, 1, 12, 1, 1), (1, 0, 1, 11, 1, 1)))
    np.testing.assert_array_equal(r[:, :3], [[0, 0, 0], [0, 1, 0], [1, 0, 0]])


def test_bad_shape_and_nan_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        decode_output(np.zeros((50, 100)))
    bad = np.zeros((L, K * 3 * C))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        decode_output(bad)


def test_write_prediction_format(tmp_path):
    rows = np.array([[1, 3, 0, 12.3456, 250.5, 0], [0, 2, 1, -5.0, 100.0, 0]])
    path = write_prediction(tmp_path, "fold4_room1_mix001.wav", rows)
    assert path.name == "fold4_room1_mix001.csv"
    lines = path.read_text().splitlines()
    assert lines == ["frame,class,source,azimuth,distance,onscreen", "0,2,1,-5.00,100.00,0", "1,3,0,12.35,250.50,0"]
    np.testing.assert_allclose(read_labels(path, kind="prediction"), rows[[1, 0]].round(2))
    with pytest.raises(ValueError, match="plain file stem"):
        write_prediction(tmp_path, "../x", rows)


def _targets_to_output(target: np.ndarray) -> np.ndarray:
    """ADPIT targets (L, 6, 4, C) -> multi-ACCDOA output (L, K, 3, C): the events of
    each (frame, class) go to tracks 0.. (A0 | B0 B1 | C0 C1 C2)."""
    act, xyz = target[:, :, 0, :], target[:, :, 1:, :]
    out = np.zeros((L, K, 3, C))
    for group in ((0,), (1, 2), (3, 4, 5)):
        for k, slot in enumerate(group):
            out[:, k] += act[:, slot, None, :] * xyz[:, slot]
    return out


@pytest.mark.parametrize("protocol", ["dcase2025", "strict"])
def test_round_trip_reference_to_output_scores_perfectly(tmp_path, protocol):
    rng = np.random.default_rng(1)
    ref_dir, pred_dir = tmp_path / "metadata_dev" / "dev-test-synth", tmp_path / "pred"
    names, outputs = [], []
    for i in range(6):
        rows = []
        for f in range(int(rng.integers(5, 50))):
            for c in rng.choice(C, size=int(rng.integers(0, 3)), replace=False):
                n_same = int(rng.integers(1, 4))
                # same-class events at least 30° apart, so the decoder keeps them apart
                for s, az in enumerate(rng.choice(np.arange(-80, 81, 40), size=n_same, replace=False)):
                    rows.append((f, c, s, az + rng.integers(-5, 6), rng.integers(50, 900), 0))
        rows = np.array(rows, dtype=np.float64).reshape(-1, 6)
        name = f"fold4_room{i}_mix00{i}"
        write_labels(ref_dir / f"{name}.csv", rows)
        ref = read_labels(ref_dir / f"{name}.csv")
        names.append(name)
        outputs.append(_targets_to_output(build_targets(ref)).reshape(L, K * 3 * C))
    paths = write_outputs(pred_dir, names, np.stack(outputs))
    assert [p.stem for p in paths] == names
    r = evaluate_dirs(tmp_path / "metadata_dev", pred_dir, protocol, "macro")
    f_c = np.array(r["classwise"]["F"])
    present = (
        np.array([c in read_labels(ref_dir / f"{n}.csv")[:, 1] for c in range(C) for n in names]).reshape(C, -1).any(1)
    )
    np.testing.assert_allclose(f_c[present], 1.0, atol=1e-12)
    assert r["DOAE"] == pytest.approx(0.0, abs=1e-9) and r["RDE"] == pytest.approx(0.0, abs=1e-9)
    micro = evaluate_dirs(tmp_path / "metadata_dev", pred_dir, protocol, "micro")
    assert micro["F"] == pytest.approx(1.0, abs=1e-12)
