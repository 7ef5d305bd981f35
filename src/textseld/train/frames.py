"""Training batches of frames drawn across clips, for heads trained on cached encodings.

A finetuning that reads the text encoder's cached outputs of every training frame
(`train.finetune.train_templates: fixed` with a fixed tokenizer) trains only its head,
and both heads map one frame to one output: GREP reads the frame's A, TREP its
placeholder states, and the ADPIT loss is a mean over frames. A batch of whole clips
then holds batch_size clips' frames, which are alike within a clip (one template, one
room, events that last several frames). With `train.finetune.shuffle_frames`, an
epoch instead deals every training frame, in a random order, into pseudo-clips of
L frames each, so that a batch holds batch_size x L frames from all over the training
set. An epoch still holds every frame once and as many steps; only which frames share
a step changes.

The order of an epoch depends only on (seed, epoch) (`set_epoch`, called by the loop
before each epoch), so that a resumed epoch deals the interrupted one's batches.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

# What a pseudo-clip carries: everything the head and the loss read, per frame.
FRAME_KEYS = ("A", "hidden", "target")


class ShuffledFrames(Dataset):
    """The frames of every item of `clips` (items with "A", "hidden" and "target" of L frames
    each, e.g. a PackedDataset wrapped by the cached encodings), held in memory and dealt per
    epoch into len(clips) pseudo-clips of L frames drawn across all clips.

    Items have no "name" or "index": a pseudo-clip is no clip (its frames' templates were
    applied when the encodings were computed)."""

    def __init__(self, clips: Dataset, seed: int, progress: bool = False):
        n = len(clips)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError("shuffled frames need at least one training clip")
        items = [clips[i] for i in tqdm(range(n), desc="training frames", disable=not progress)]
        missing = [k for k in FRAME_KEYS if k not in items[0]]
        if missing:
            raise ValueError(
                f"shuffled frames are dealt from cached text-encoder outputs; the training items lack {missing}"
            )
        self.arrays = {k: torch.stack([item[k] for item in items]).flatten(0, 1) for k in FRAME_KEYS}
        self.n_clips, self.frames_per_clip = n, int(items[0]["target"].shape[0])
        self.seed = int(seed)
        self.order = torch.arange(n * self.frames_per_clip)

    def set_epoch(self, epoch: int) -> None:
        """Deal the frames of `epoch`: a permutation seeded by (seed, epoch) only."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(epoch) + 104_729)
        self.order = torch.randperm(self.n_clips * self.frames_per_clip, generator=g)

    def __len__(self) -> int:
        return self.n_clips

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n_clips:
            raise IndexError(f"pseudo-clip {i} out of range for {self.n_clips}")
        rows = self.order[i * self.frames_per_clip : (i + 1) * self.frames_per_clip]
        return {k: v[rows] for k, v in self.arrays.items()}
