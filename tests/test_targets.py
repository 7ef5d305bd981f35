"""Tests of textseld.data.targets.build_targets (ADPIT layout), checked by hand."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from textseld.data.targets import build_targets

A0, B0, B1, C0, C1, C2 = range(6)


def _row(frame, cls, source, az, dist_cm):
    return [frame, cls, source, az, dist_cm, 0]


def _vec(az_deg, dist_m):
    a = math.radians(az_deg)
    return [1.0, math.cos(a), math.sin(a), dist_m]


def test_empty_clip():
    t = build_targets(np.zeros((0, 6)))
    assert t.shape == (50, 6, 4, 13) and t.dtype == np.float32
    assert not t.any()


def test_single_event_goes_to_a0_only():
    t = build_targets(np.array([_row(7, 4, 0, 90, 250)]))
    np.testing.assert_allclose(t[7, A0, :, 4], [1, 0, 1, 2.5], atol=1e-6)
    t[7, A0, :, 4] = 0
    assert not t.any()


def test_two_same_class_events_distinct_b_slots():
    rows = np.array(
        [
            _row(3, 2, 1, -30, 100),  # source 1 -> second
            _row(3, 2, 0, 60, 300),  # source 0 -> first
        ]
    )
    t = build_targets(rows)
    np.testing.assert_allclose(t[3, B0, :, 2], _vec(60, 3.0), atol=1e-6)
    np.testing.assert_allclose(t[3, B1, :, 2], _vec(-30, 1.0), atol=1e-6)
    assert not t[3, [A0, C0, C1, C2]].any()
    assert np.count_nonzero(t[..., 0, :]) == 2


def test_three_same_class_events_and_other_class_alone():
    rows = np.array(
        [
            _row(0, 5, 2, 10, 200),
            _row(0, 5, 0, 20, 400),
            _row(0, 5, 0, -45, 150),  # same source as previous: ordered by azimuth
            _row(0, 8, 0, 0, 500),
            _row(1, 5, 0, 20, 400),  # next frame, alone
        ]
    )
    t = build_targets(rows, distance_scale=0.1)
    np.testing.assert_allclose(t[0, C0, :, 5], _vec(-45, 0.15), atol=1e-6)
    np.testing.assert_allclose(t[0, C1, :, 5], _vec(20, 0.40), atol=1e-6)
    np.testing.assert_allclose(t[0, C2, :, 5], _vec(10, 0.20), atol=1e-6)
    assert not t[0, [A0, B0, B1], :, 5].any()
    np.testing.assert_allclose(t[0, A0, :, 8], _vec(0, 0.5), atol=1e-6)
    np.testing.assert_allclose(t[1, A0, :, 5], _vec(20, 0.4), atol=1e-6)
    assert not t[1, 1:].any()


def test_input_order_does_not_matter():
    rows = np.array(
        [_row(f, c, s, az, 100 + f) for f in range(0, 50, 7) for c in (1, 3) for s, az in ((0, 10), (1, -80), (2, 33))]
    )
    perm = np.random.default_rng(1).permutation(len(rows))
    np.testing.assert_array_equal(build_targets(rows), build_targets(rows[perm]))


def test_fourth_event_dropped_and_counted(caplog):
    rows = np.array([_row(9, 0, s, 10 * s, 100 * (s + 1)) for s in range(5)])
    with caplog.at_level(logging.INFO, logger="textseld.data.targets"):
        t, dropped = build_targets(rows, return_dropped=True, name="clipX")
    assert dropped == 2
    assert "clipX" in caplog.text and "2" in caplog.text
    for slot, s in zip((C0, C1, C2), range(3)):
        np.testing.assert_allclose(t[9, slot, :, 0], _vec(10 * s, s + 1.0), atol=1e-6)
    assert not t[9, :3].any()
    _, none = build_targets(rows[:3], return_dropped=True)
    assert none == 0


def test_bad_rows():
    with pytest.raises(ValueError, match="0..49"):
        build_targets(np.array([_row(50, 0, 0, 0, 100)]))
    with pytest.raises(ValueError, match="class"):
        build_targets(np.array([_row(0, 13, 0, 0, 100)]))
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        build_targets(np.zeros((2, 5)))
