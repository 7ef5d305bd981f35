"""Stereo channel-swap augmentation (textseld.train.augment): checked against the truth.

The features of a clip whose two channels were swapped are computed from the audio, and its
targets built from labels with every azimuth negated; the augmentation applied to the
original clip's features and targets must give the same (docs/METHOD.md sections 2-3).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textseld.constants import N_CLASSES, N_LABEL_FRAMES, SAMPLE_RATE
from textseld.data.targets import build_targets
from textseld.features.extract import compute_features
from textseld.train.augment import ChannelSwap, swap_channels

KEYS = ("src", "doa", "dist")


def _stereo_clip() -> np.ndarray:
    """1 s of two sources: noise louder on the left and delayed on the right, a tone louder on
    the right; (2, N)."""
    rng = np.random.default_rng(0)
    n = SAMPLE_RATE
    noise = rng.normal(size=n + 8)
    tone = np.sin(2 * np.pi * 700 * np.arange(n) / SAMPLE_RATE)
    left = 1.0 * noise[8:] + 0.2 * tone
    right = 0.4 * noise[:-8] + 0.6 * tone
    return np.stack([left, right])


def test_swapped_features_equal_those_of_the_swapped_clip():
    clip = _stereo_clip()
    feats = compute_features(np.stack([clip, clip[::-1].copy()]))
    original = {k: feats[k][0] for k in KEYS}
    swapped_audio = {k: feats[k][1] for k in KEYS}
    target = torch.zeros(N_LABEL_FRAMES, 6, 4, N_CLASSES)
    augmented, _ = swap_channels(original, target)
    for key in KEYS:
        torch.testing.assert_close(augmented[key], swapped_audio[key], rtol=1e-5, atol=1e-4)
    # the swap changes something: ILD and IVy are not zero, L and R differ
    assert original["doa"][3].abs().mean() > 1.0 and original["doa"][2].abs().mean() > 0.05
    assert not torch.allclose(original["doa"], augmented["doa"])
    for key in KEYS:  # the inputs are left as they were
        torch.testing.assert_close(original[key], feats[key][0])


def test_swapped_targets_are_those_of_the_negated_azimuths_and_their_side_matches_the_ild():
    # [frame, class, source, azimuth deg, distance cm, onscreen]: a source on the left (+50 deg)
    rows = np.array(
        [[f, 2, 0, 50, 300, 0] for f in range(10)] + [[f, 5, 0, -20, 150, 0] for f in range(5, 20)], dtype=float
    )
    mirrored = rows.copy()
    mirrored[:, 3] = -mirrored[:, 3]
    target = torch.from_numpy(build_targets(rows))
    _, swapped = swap_channels({"doa": torch.zeros(4, 1, 1)}, target)
    torch.testing.assert_close(swapped, torch.from_numpy(build_targets(mirrored)))
    assert swapped[0, 0, 2, 2] < 0 < target[0, 0, 2, 2]  # y = sin(azimuth): left is positive
    assert swapped[0, 0, 3, 2] == target[0, 0, 3, 2]  # distance unchanged
    # the convention the features follow: a source louder on the left has a positive ILD and IVy
    left = _stereo_clip()[:, :4000] * np.array([[1.0], [0.3]])
    doa = compute_features(left[None])["doa"][0]
    assert doa[3].mean() > 0 and doa[2].mean() > 0


class _Packed:
    """The interface ChannelSwap uses of a PackedDataset: standardised items, stats, file indices."""

    def __init__(self, n: int):
        g = torch.Generator().manual_seed(0)
        self.raw = [{k: torch.randn(c, 6, 4, generator=g) * 3 + 1 for k, c in zip(KEYS, (1, 4, 2))} for _ in range(n)]
        self.stats = {
            k: (torch.randn(c, 1, 4, generator=g), torch.rand(c, 1, 4, generator=g) + 0.5)
            for k, c in zip(KEYS, (1, 4, 2))
        }
        self.targets = [torch.randn(N_LABEL_FRAMES, 6, 4, N_CLASSES, generator=g) for _ in range(n)]

    def __len__(self):
        return len(self.raw)

    def file_index(self, i):
        return i + 100

    def item_names(self):
        return [f"clip{i}" for i in range(len(self))]

    def __getitem__(self, i):
        item = {k: (self.raw[i][k] - self.stats[k][0]) / self.stats[k][1] for k in KEYS}
        return {**item, "target": self.targets[i].clone(), "index": i + 100, "name": f"clip{i}"}


def test_channel_swap_dataset_swaps_the_unstandardised_features_with_its_probability():
    data = _Packed(200)
    always = ChannelSwap(data, 1.0, seed=3)
    item = always[7]
    want, want_target = swap_channels(data.raw[7], data.targets[7])
    for key in KEYS:  # standardised again with the statistics of the channel it now sits in
        torch.testing.assert_close(item[key] * data.stats[key][1] + data.stats[key][0], want[key])
    torch.testing.assert_close(item["target"], want_target)
    assert (item["index"], item["name"]) == (107, "clip7")
    never = ChannelSwap(data, 0.0, seed=3)
    for key in (*KEYS, "target"):
        torch.testing.assert_close(never[7][key], data[7][key])
    half = ChannelSwap(data, 0.5, seed=3)
    draws = [half.swapped(i) for i in range(len(data))]
    assert 70 < sum(draws) < 130
    assert draws == [ChannelSwap(data, 0.5, seed=3).swapped(i) for i in range(len(data))]  # reproducible
    half.set_epoch(1)
    assert draws != [half.swapped(i) for i in range(len(data))]  # drawn anew every epoch
    assert torch.equal(half[0]["doa"], data[0]["doa"]) != half.swapped(0)
    with pytest.raises(ValueError, match="channel_swap"):
        ChannelSwap(data, 1.5, seed=0)
