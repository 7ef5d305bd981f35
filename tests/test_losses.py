"""ADPIT loss and embedding MAE: perfect predictions, permutation invariance, hand-computed cases."""

import itertools

import pytest
import torch

from textseld.losses import CANDIDATES, adpit_loss, embedding_mae

C, K = 13, 3


def empty_target(b=1, frames=1):
    return torch.zeros(b, frames, 6, 4, C)


def put(target, slot, cls, x, y, d, b=0, t=0):
    target[b, t, slot, :, cls] = torch.tensor([1.0, x, y, d])


def pred_from_tracks(tracks, b=1, frames=1):
    """tracks: {(track, cls): (x, y, d)} -> (b, frames, K*3*C) prediction (zeros elsewhere)."""
    out = torch.zeros(b, frames, K, 3, C)
    for (k, c), v in tracks.items():
        out[:, :, k, :, c] = torch.tensor(v)
    return out.reshape(b, frames, K * 3 * C)


def test_thirteen_distinct_candidates():
    assert len(CANDIDATES) == 13 and len(set(CANDIDATES)) == 13
    assert CANDIDATES[0] == (0, 0, 0)
    assert sorted(CANDIDATES[7:]) == sorted(itertools.permutations((3, 4, 5)))
    for cand in CANDIDATES[1:7]:  # B0/B1 over 3 tracks, each used, one duplicated
        assert set(cand) == {1, 2}


def test_zero_for_perfect_single_event():
    tgt = empty_target()
    put(tgt, 0, 4, 0.6, 0.8, 2.5)
    pred = pred_from_tracks({(k, 4): (0.6, 0.8, 2.5) for k in range(K)})
    assert adpit_loss(pred, tgt).item() == pytest.approx(0.0, abs=1e-12)


def test_zero_for_two_same_class_events_in_any_duplicated_arrangement():
    tgt = empty_target()
    put(tgt, 1, 2, 1.0, 0.0, 1.0)
    put(tgt, 2, 2, 0.0, -1.0, 3.0)
    e0, e1 = (1.0, 0.0, 1.0), (0.0, -1.0, 3.0)
    for arrangement in [(e0, e1, e1), (e1, e0, e0), (e1, e1, e0)]:
        pred = pred_from_tracks({(k, 2): arrangement[k] for k in range(K)})
        assert adpit_loss(pred, tgt).item() == pytest.approx(0.0, abs=1e-12)


def test_zero_for_three_events_and_invariant_to_track_permutation():
    tgt = empty_target(b=2, frames=3)
    events = [(0.6, 0.8, 1.0), (-0.6, 0.8, 2.0), (0.0, -1.0, 4.0)]
    for s, e in zip((3, 4, 5), events):
        put(tgt, s, 7, *e, b=1, t=2)
    for perm in itertools.permutations(range(3)):
        pred = torch.zeros(2, 3, K, 3, C)
        for k, i in enumerate(perm):
            pred[1, 2, k, :, 7] = torch.tensor(events[i])
        assert adpit_loss(pred.reshape(2, 3, -1), tgt).item() == pytest.approx(0.0, abs=1e-12)
    # a noisy prediction: the same loss whichever way its tracks are permuted
    noisy = torch.randn(2, 3, K, 3, C, generator=torch.Generator().manual_seed(0))
    ref = adpit_loss(noisy.reshape(2, 3, -1), tgt)
    for perm in itertools.permutations(range(3)):
        assert adpit_loss(noisy[:, :, list(perm)].reshape(2, 3, -1), tgt).item() == pytest.approx(ref.item(), rel=1e-6)


def test_hand_computed_single_event():
    # one frame, one active class-0 event (x, y, d) = (1, 0, 2); track 0 predicts it
    # exactly, tracks 1 and 2 predict zero; all other classes are zero and correct.
    tgt = empty_target()
    put(tgt, 0, 0, 1.0, 0.0, 2.0)
    pred = pred_from_tracks({(0, 0): (1.0, 0.0, 2.0)})
    # class 0: A0A0A0 target for tracks 1, 2 is (1,0,2): squared errors 2*(1+0+4) = 10 over 9 values.
    # The B and C candidates are padded with A0A0A0 too, so they give the same 10/9.
    expected = (10.0 / 9.0) / C
    assert adpit_loss(pred, tgt).item() == pytest.approx(expected, rel=1e-6)


def test_hand_computed_two_events_choose_best_arrangement():
    tgt = empty_target()
    put(tgt, 1, 5, 1.0, 0.0, 0.0)  # B0
    put(tgt, 2, 5, 0.0, 1.0, 0.0)  # B1
    # tracks predict (B0, B0, 0): best candidate B0B0B1 -> error only on track 2: |B1|^2 = 1
    pred = pred_from_tracks({(0, 5): (1.0, 0.0, 0.0), (1, 5): (1.0, 0.0, 0.0)})
    assert adpit_loss(pred, tgt).item() == pytest.approx((1.0 / 9.0) / C, rel=1e-6)


def test_inactive_rows_need_zero_and_distance_scale():
    tgt = empty_target()
    # activity 0 but non-zero values: they are ignored (activity-weighted)
    tgt[0, 0, 0, 1:, 3] = torch.tensor([1.0, 1.0, 1.0])
    assert adpit_loss(torch.zeros(1, 1, K * 3 * C), tgt).item() == 0.0
    put(tgt, 0, 3, 0.0, 0.0, 2.0)
    pred = pred_from_tracks({(k, 3): (0.0, 0.0, 1.0) for k in range(K)})
    assert adpit_loss(pred, tgt, distance_scale=0.5).item() == pytest.approx(0.0, abs=1e-12)
    assert adpit_loss(pred, tgt).item() == pytest.approx((3 * 1.0 / 9.0) / C, rel=1e-6)


def test_gradient_flows_and_shape_errors():
    pred = torch.zeros(2, 4, K * 3 * C, requires_grad=True)
    tgt = empty_target(2, 4)
    put(tgt, 0, 1, 0.0, 1.0, 1.0, b=1, t=3)
    adpit_loss(pred, tgt).backward()
    assert pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="target"):
        adpit_loss(pred, torch.zeros(2, 4, 5, 4, C))
    with pytest.raises(ValueError, match="prediction"):
        adpit_loss(torch.zeros(2, 4, 100), tgt)


def test_embedding_mae():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    b = torch.tensor([[0.0, 2.0], [5.0, 4.0]])
    assert embedding_mae(a, b).item() == pytest.approx(0.75)
    with pytest.raises(ValueError):
        embedding_mae(a, b[:1])


def test_relative_distance_loss_hand_computed_and_free_when_inactive():
    # one active class-2 event at 2 m (scaled 0.2 -> 0.4); every track predicts its direction
    # and 0.5 (scaled): relative error (0.5 - 0.4) / 0.4 = 0.25 on each of 3 tracks
    tgt = empty_target()
    put(tgt, 0, 2, 1.0, 0.0, 2.0)
    pred = pred_from_tracks({(k, 2): (1.0, 0.0, 0.5) for k in range(K)})
    expected = (3 * 0.25**2 / 9.0) / C
    assert adpit_loss(pred, tgt, 0.2, "relative").item() == pytest.approx(expected, rel=1e-5)
    # the same relative error at 4 m costs the same (the MSE would cost 4 times as much)
    far = empty_target()
    put(far, 0, 2, 1.0, 0.0, 4.0)
    pred_far = pred_from_tracks({(k, 2): (1.0, 0.0, 1.0) for k in range(K)})
    assert adpit_loss(pred_far, far, 0.2, "relative").item() == pytest.approx(expected, rel=1e-5)
    mse = adpit_loss(pred_far, far, 0.2).item() / adpit_loss(pred, tgt, 0.2).item()
    assert mse == pytest.approx(4.0, rel=1e-5)
    # an inactive class's distance is free under "relative", pulled to 0 under "mse"
    stray = pred_from_tracks({**{(k, 2): (1.0, 0.0, 0.4) for k in range(K)}, (0, 7): (0.0, 0.0, 3.0)})
    assert adpit_loss(stray, tgt, 0.2, "relative").item() == pytest.approx(0.0, abs=1e-12)
    assert adpit_loss(stray, tgt, 0.2).item() == pytest.approx((9.0 / 9.0) / C, rel=1e-6)
    with pytest.raises(ValueError, match="distance_loss"):
        adpit_loss(pred, tgt, 0.2, "l1")
