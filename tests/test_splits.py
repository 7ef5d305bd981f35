"""Tests of textseld.data.splits.validation_split (grouped by recording)."""

from __future__ import annotations

import numpy as np
import pytest

from textseld.data.splits import validation_split


def _names(n_rooms=4, n_mix=5, n_clips=3):
    return [
        f"fold3_room{r}_mix{m:03d}_deg{(90 * k) % 360:03d}_start{k * 7:04d}"
        for r in range(1, n_rooms + 1)
        for m in range(1, n_mix + 1)
        for k in range(n_clips)
    ]


def _groups(names, idx):
    return {tuple(names[i].split("_")[1:3]) for i in idx}


def test_partition_grouped_and_fraction():
    names = _names()
    train, val = validation_split(names, 0.25, seed=0)
    assert sorted(np.r_[train, val].tolist()) == list(range(len(names)))
    assert not _groups(names, train) & _groups(names, val)
    assert len(_groups(names, val)) == 5  # 25 % of 20 recordings
    assert len(val) == 15
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_room_alone_or_mix_alone_is_not_the_group():
    # Same mix number in different rooms = different recordings.
    names = [f"fold3_room{r}_mix001_deg000_start0000" for r in (1, 2, 3, 4)]
    train, val = validation_split(names, 0.5, seed=3)
    assert len(train) == 2 and len(val) == 2


def test_deterministic_and_seed_dependent():
    names = _names()
    a = validation_split(names, 0.2, seed=1)
    b = validation_split(names, 0.2, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    seen = {tuple(validation_split(names, 0.2, seed=s)[1]) for s in range(8)}
    assert len(seen) > 1


def test_independent_of_input_order():
    names = _names()
    perm = np.random.default_rng(0).permutation(len(names))
    shuffled = [names[i] for i in perm]
    _, val = validation_split(names, 0.3, seed=5)
    _, val2 = validation_split(shuffled, 0.3, seed=5)
    assert {names[i] for i in val} == {shuffled[i] for i in val2}


def test_never_empty_with_two_groups():
    names = _names(n_rooms=1, n_mix=2)
    for fraction in (0.01, 0.5, 0.99):
        train, val = validation_split(names, fraction, seed=0)
        assert len(train) == 3 and len(val) == 3


def test_errors():
    with pytest.raises(ValueError, match="at least 2 recordings"):
        validation_split(_names(1, 1), 0.2, 0)
    with pytest.raises(ValueError, match="fraction"):
        validation_split(_names(), 0.0, 0)
    with pytest.raises(ValueError, match="fold"):
        validation_split(["bad_name"], 0.2, 0)


def test_split_config_is_strict_and_independent_of_any_run_seed():
    from textseld.data.splits import SplitConfig

    names = _names()
    assert SplitConfig.from_dict(None) == SplitConfig(0.1, 0)
    a = SplitConfig.from_dict({"fraction": 0.25, "seed": 3}).indices(names)
    assert all(np.array_equal(x, y) for x, y in zip(a, validation_split(names, 0.25, 3)))
    with pytest.raises(ValueError, match="unknown key.*'fractoin'"):
        SplitConfig.from_dict({"fractoin": 0.2})
    with pytest.raises(ValueError, match="key 'fraction': expected a number in \\(0, 1\\), got 1.5"):
        SplitConfig.from_dict({"fraction": 1.5})
    with pytest.raises(ValueError, match="key 'seed': expected an integer >= 0"):
        SplitConfig.from_dict({"seed": -1})
