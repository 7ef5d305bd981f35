"""Stereo channel-swap augmentation (TrainConfig.channel_swap; docs/METHOD.md section 6).

Swapping the left and right channels of a stereo clip mirrors every source about the
front-back axis: its azimuth changes sign (docs/METHOD.md section 3: x = cos, y = sin of the
azimuth), its distance does not. The features of the swapped clip follow from those of the
clip itself (docs/METHOD.md section 2): `doa` = [logmel L, logmel R, ivy, ild] becomes
[logmel R, logmel L, -ivy, -ild] (ILD and IVy are antisymmetric in L <-> R); `src` (the mean
of the two channels' mel power) and `dist` (of the mid signal (l + r) / 2) are symmetric and
stay. `swap_channels` applies that to unstandardised features and a target; `ChannelSwap`
wraps a training PackedDataset and swaps each clip with a probability, drawn per (seed,
epoch, clip) so that a resumed run draws the same.
"""

from __future__ import annotations

import numpy as np
import torch

from textseld.data.hdf5 import FEATURE_KEYS

# doa channels: [logmel L, logmel R, ivy, ild]; the packed target's value rows: [activity, x, y, d]
_DOA_ORDER = [1, 0, 2, 3]
_DOA_SIGN = torch.tensor([1.0, 1.0, -1.0, -1.0])[:, None, None]
_TARGET_Y = 2


def swap_channels(features: dict[str, torch.Tensor], target: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Unstandardised features {"src", "doa" (4, T, F), "dist"} and target (L, 6, 4, C) of a clip
    -> those of the same clip with its two channels swapped (new tensors; inputs unchanged)."""
    out = dict(features)
    out["doa"] = features["doa"][_DOA_ORDER] * _DOA_SIGN.to(features["doa"].dtype)
    mirrored = target.clone()
    mirrored[..., _TARGET_Y, :] = -mirrored[..., _TARGET_Y, :]
    return out, mirrored


class ChannelSwap(torch.utils.data.Dataset):
    """A training PackedDataset whose clips are channel-swapped with probability `p`.

    The dataset standardises its features per channel and band (its `.stats`); the swap
    acts on the unstandardised values (the L and R channels have their own statistics, and
    negating a standardised ILD would not negate the ILD), which are standardised again.
    """

    def __init__(self, dataset, p: float, seed: int) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"channel_swap: expected a probability in [0, 1], got {p!r}")
        self.dataset, self.p, self.seed, self.epoch = dataset, float(p), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def item_names(self) -> list[str]:
        return self.dataset.item_names()

    def swapped(self, i: int) -> bool:
        """Whether item i is swapped in the current epoch."""
        index = self.dataset.file_index(i % len(self))
        return bool(np.random.default_rng([self.seed, self.epoch, index]).random() < self.p)

    def __getitem__(self, i: int) -> dict:
        item = self.dataset[i]
        if not self.swapped(i):
            return item
        stats = self.dataset.stats
        raw = {k: item[k] if stats is None else item[k] * stats[k][1] + stats[k][0] for k in FEATURE_KEYS}
        swapped, target = swap_channels(raw, item["target"])
        for key, x in swapped.items():
            item[key] = x if stats is None else (x - stats[key][0]) / stats[key][1]
        item["target"] = target
        return item
