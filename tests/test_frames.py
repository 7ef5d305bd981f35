"""Batches of frames dealt across clips (textseld.train.frames): every frame once per epoch, each
frame's arrays together, the deal fixed by (seed, epoch), and exact resumption in the loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from textseld.constants import N_CLASSES, N_LABEL_FRAMES, N_TRACKS
from textseld.recipes import train_section
from textseld.train.config import TrainConfig
from textseld.train.frames import ShuffledFrames
from textseld.train.loop import fit

E, D = 4, 2
OUT = N_TRACKS * 3 * N_CLASSES


def _clip(i: int) -> dict:
    """A clip whose every array names its (clip, frame): A[f, 0] = 1000 * i + f, likewise hidden
    and target, so that a dealt frame shows where each of its arrays came from."""
    code = 1000.0 * i + torch.arange(N_LABEL_FRAMES, dtype=torch.float32)
    return {
        "A": code[:, None].expand(-1, E).clone(),
        "hidden": code[:, None, None].expand(-1, 3, D).clone(),
        "target": code[:, None, None, None].expand(-1, 6, 4, N_CLASSES).clone(),
        "name": f"clip{i}",
        "index": i,
    }


def test_an_epoch_deals_every_frame_once_with_its_own_arrays_across_clips():
    frames = ShuffledFrames([_clip(i) for i in range(6)], seed=3)
    frames.set_epoch(0)
    assert len(frames) == 6
    dealt = [frames[i] for i in range(len(frames))]
    assert all(set(item) == {"A", "hidden", "target"} for item in dealt)  # no clip name: no clip
    codes = torch.cat([item["A"][:, 0] for item in dealt])
    assert sorted(codes.tolist()) == sorted(1000.0 * i + f for i in range(6) for f in range(N_LABEL_FRAMES))
    for item in dealt:  # a frame's A, placeholder states and target stay together
        assert torch.equal(item["hidden"][:, 0, 0], item["A"][:, 0])
        assert torch.equal(item["target"][:, 0, 0, 0], item["A"][:, 0])
    clips_in_first = {int(c) // 1000 for c in dealt[0]["A"][:, 0].tolist()}
    assert len(clips_in_first) == 6  # 50 frames drawn from 300 of 6 clips: all of them (p > 0.999)
    with pytest.raises(IndexError):
        frames[6]


def test_the_deal_depends_only_on_seed_and_epoch():
    clips = [_clip(i) for i in range(4)]

    def first(seed, epoch):
        frames = ShuffledFrames(clips, seed=seed)
        frames.set_epoch(epoch)
        return frames[0]["A"][:, 0]

    assert torch.equal(first(1, 2), first(1, 2))
    assert not torch.equal(first(1, 2), first(1, 3))
    assert not torch.equal(first(1, 2), first(2, 2))


def test_items_without_cached_outputs_are_refused():
    with pytest.raises(ValueError, match=r"cached text-encoder outputs.*\['A', 'hidden'\]"):
        ShuffledFrames([{"target": torch.zeros(N_LABEL_FRAMES, 6, 4, N_CLASSES), "name": "x"}], seed=0)


# ----------------------------------------------------------- in the training loop
def _learnable_clip(i: int) -> dict:
    """A clip whose event class (i % 3) is readable from A, the class written into the target."""
    cls = i % 3
    a = torch.zeros(N_LABEL_FRAMES, E)
    a[:, cls] = 1.0
    target = torch.zeros(N_LABEL_FRAMES, 6, 4, N_CLASSES)
    target[:, 0, 0, cls] = 1.0
    target[:, 0, 1, cls] = 1.0
    return {"A": a, "hidden": torch.zeros(N_LABEL_FRAMES, 3, D), "target": target, "name": f"c{i:02d}", "index": i}


class _HeadTask:
    """A per-frame head on A, as GREP (the loss a squared error on the first track's x)."""

    def __init__(self):
        self.model = nn.Linear(E, OUT)

    def predict(self, batch):
        return self.model(batch["A"])

    def losses(self, batch, generator):
        out = self.predict(batch).reshape(*batch["A"].shape[:2], N_TRACKS, 3, N_CLASSES)
        loss = ((out[:, :, 0, 0] - batch["target"][:, :, 0, 1]) ** 2).mean()
        return {"loss": loss, "adpit": loss.detach()}


class _Killed(Exception):
    pass


def _fit(run_dir, on_step=None):
    torch.manual_seed(0)
    task = _HeadTask()
    cfg = TrainConfig.from_dict(
        {
            **train_section("paper", "finetune"),
            "epochs": 3,
            "batch_size": 2,
            "checkpoint_every_steps": 1,
            "progress": False,
        }
    )
    val = [_learnable_clip(i) for i in range(100, 103)]
    refs = {c["name"]: np.array([[f, (c["index"] % 3), 0, 0, 100, 0] for f in range(N_LABEL_FRAMES)]) for c in val}
    train = ShuffledFrames([_learnable_clip(i) for i in range(6)], seed=5)
    result = fit(run_dir, task, torch.optim.Adam(task.model.parameters(), lr=1e-2), train, val, refs, cfg, 5,
                 torch.device("cpu"), on_step=on_step)  # fmt: skip
    return task, result


def test_a_run_on_dealt_frames_resumes_exactly_mid_epoch(tmp_path):
    """The loop tells the dataset its epoch before iterating it, so a resumed epoch deals the
    interrupted one's batches and the run ends with the uninterrupted run's weights."""
    ref_task, ref_result = _fit(tmp_path / "ref")

    def die(epoch, step):
        if step == 5:  # epoch 1, after its 2nd of 3 batches
            raise _Killed

    with pytest.raises(_Killed):
        _fit(tmp_path / "cut", on_step=die)
    task, result = _fit(tmp_path / "cut")
    for a, b in zip(ref_task.model.parameters(), task.model.parameters()):
        assert torch.equal(a, b)
    assert result == ref_result
