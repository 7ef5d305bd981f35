"""Alignment diagnostics: the cosine and retrieval numbers on hand-made cases, chance levels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textseld.metrics.alignment import chance_levels, retrieval_scores

CANDIDATES = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])


def test_ranks_cosines_and_recall_of_a_hand_made_case():
    # frame 0: its sentence is the most similar (rank 1); frame 1: one sentence (0) is closer than
    # its own (3) -> rank 2; frame 2: its sentence is the least similar of four -> rank 4;
    # frame 3: A of length 2 (cosine ignores the length), its sentence first -> rank 1
    audio = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    res = retrieval_scores(audio, np.array([0, 3, 2, 1]), CANDIDATES)
    half = math.sqrt(0.5)
    assert res["n_frames"] == 4 and res["n_sentences"] == 4
    assert res["cosine_mean"] == pytest.approx((1 + half - 1 + 1) / 4)
    assert res["cosine_to_all_mean"] == pytest.approx((3 * (1 + 0 - 1 + half) + (0 + 1 + 0 + half)) / 16)
    assert res["R1"] == pytest.approx(0.5)  # ranks 1, 2, 4, 1
    assert res["R10"] == pytest.approx(1.0)
    assert res["median_rank"] == pytest.approx(1.5)
    assert res["chance"] == pytest.approx({"R1": 0.25, "R10": 1.0, "median_rank": 2.5})


def test_tied_sentences_share_the_mean_of_their_ranks():
    # two distinct sentences with the same A: neither is retrieved first, each gets rank 1.5
    candidates = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    res = retrieval_scores(np.array([[1.0, 0.1]]), np.array([0]), candidates)
    assert res["R1"] == 0.0 and res["median_rank"] == pytest.approx(1.5)


def test_many_frames_are_scored_in_blocks_like_one():
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(30, 8))
    truth = rng.integers(0, 30, size=2500)  # more frames than one block
    audio = candidates[truth] + rng.normal(scale=0.8, size=(2500, 8))
    res = retrieval_scores(audio, truth, candidates)
    sims = (audio / np.linalg.norm(audio, axis=1, keepdims=True)) @ (
        candidates / np.linalg.norm(candidates, axis=1, keepdims=True)
    ).T
    own = sims[np.arange(2500), truth]
    ranks = 1 + (sims > own[:, None]).sum(axis=1)
    assert res["cosine_mean"] == pytest.approx(own.mean())
    assert res["R1"] == pytest.approx(np.mean(ranks == 1)) and res["R10"] == pytest.approx(np.mean(ranks <= 10))
    assert res["median_rank"] == pytest.approx(np.median(ranks))
    assert 0.0 < res["R1"] < 1.0


def test_chance_levels():
    assert chance_levels(1) == {"R1": 1.0, "R10": 1.0, "median_rank": 1.0}
    assert chance_levels(40) == pytest.approx({"R1": 0.025, "R10": 0.25, "median_rank": 20.5})
    with pytest.raises(ValueError, match="at least one"):
        chance_levels(0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="no frame"):
        retrieval_scores(np.zeros((0, 2)), np.zeros(0), CANDIDATES)
    with pytest.raises(ValueError, match="indices in 0..3"):
        retrieval_scores(np.ones((1, 2)), np.array([4]), CANDIDATES)
    with pytest.raises(ValueError, match=r"\(n, E\), \(N, E\)"):
        retrieval_scores(np.ones((1, 3)), np.array([0]), CANDIDATES)
