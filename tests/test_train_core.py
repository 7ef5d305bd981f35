"""Training config, checkpoints and the generic loop (fake task: no other engineer's models)."""

from __future__ import annotations

import csv
import json
import logging
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from textseld.constants import N_CLASSES, N_LABEL_FRAMES, N_TRACKS
from textseld.recipes import train_section
from textseld.train.checkpoint import (
    CheckpointError,
    load_trainable_state,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from textseld.train.config import TrainConfig, lr_factor
from textseld.train.loop import EpochSampler, fit

OUT = N_TRACKS * 3 * N_CLASSES


# ----------------------------------------------------------------------- config
def test_the_paper_recipe_builds_the_papers_training_configs():
    pre = TrainConfig.from_dict(train_section("paper", "pretrain"))
    assert (pre.epochs, pre.batch_size, pre.lr, pre.schedule["name"]) == (100, 8, 1e-4, "cosine")
    fin = TrainConfig.from_dict(train_section("paper", "finetune"))
    assert (fin.epochs, fin.lr_pretrained, fin.lr_new, fin.mae_weight, fin.adpit_weight) == (50, 1e-6, 1e-4, 0.01, 1.0)
    assert fin.schedule == {"name": "multistep", "milestones": [10, 20, 30, 40, 45], "gamma": 0.1}
    base = TrainConfig.from_dict(train_section("paper", "baseline"))
    assert (base.epochs, base.batch_size, base.lr, base.schedule) == (200, 256, 1e-3, {"name": "constant"})


def test_from_dict_applies_section_on_the_defaults_and_rejects_unknown_keys():
    cfg = TrainConfig.from_dict({"epochs": 3, "text_frames_per_clip": 5})
    assert cfg.epochs == 3 and cfg.text_frames_per_clip == 5 and cfg.lr_new == 1e-4
    with pytest.raises(ValueError, match=r"'epoch'.*valid keys:.*epochs"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig.from_dict({"batch_size": 0})
    with pytest.raises(ValueError, match="milestones"):
        TrainConfig.from_dict({"schedule": {"name": "multistep", "milestones": [5, 2]}})
    with pytest.raises(ValueError, match="'step'"):
        TrainConfig.from_dict({"schedule": {"name": "cosine", "step": 1}})


def test_lr_factors_match_torch_schedulers():
    p = nn.Parameter(torch.zeros(1))
    opt_m = torch.optim.SGD([p], lr=1.0)
    ms = torch.optim.lr_scheduler.MultiStepLR(opt_m, [10, 20, 30, 40, 45], gamma=0.1)
    opt_c = torch.optim.SGD([p], lr=1.0)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt_c, T_max=50)
    sched = train_section("paper", "finetune")["schedule"]
    for epoch in range(50):
        assert lr_factor(sched, epoch, 50) == pytest.approx(opt_m.param_groups[0]["lr"], rel=1e-9)
        assert lr_factor({"name": "cosine"}, epoch, 50) == pytest.approx(opt_c.param_groups[0]["lr"], abs=1e-12)
        opt_m.step(), opt_c.step()
        ms.step(), cos.step()
    assert lr_factor(sched, 45, 50) == pytest.approx(1e-5)
    assert lr_factor({"name": "constant"}, 7, 10) == 1.0


# ------------------------------------------------------------------- checkpoint
def _draws():
    return (random.random(), float(np.random.rand()), float(torch.rand(1)))


def test_rng_state_round_trip_through_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    model = nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    save_checkpoint(
        tmp_path / "c.pt",
        model=model,
        optimizers=[opt],
        schedulers=[],
        epoch=0,
        step=0,
        batch_in_epoch=0,
        best_metric=None,
        best_epoch=None,
    )
    expected = _draws()
    state = torch.load(tmp_path / "c.pt", weights_only=True)  # no pickled objects inside
    set_rng_state(state["rng"])
    assert _draws() == expected
    s = rng_state()
    first = _draws()
    set_rng_state(s)
    assert _draws() == first


def test_equal_checkpoints_have_equal_bytes(tmp_path):
    """Results record a checkpoint's sha256 (the pretrained tokenizer in the table, the caches'
    records): the same state saved under other names, at other times, is the same file."""
    import hashlib
    import time

    model = nn.Linear(2, 2)
    kw = dict(model=model, optimizers=[], schedulers=[], epoch=1, step=3, batch_in_epoch=0, best_metric=0.5)
    digests = set()
    for name in ("a.pt", "best-epoch0.pt"):
        torch.manual_seed(0)  # the saved RNG state too
        save_checkpoint(tmp_path / name, best_epoch=0, **kw)
        digests.add(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
        time.sleep(0.01)
    assert len(digests) == 1


def test_frozen_parameters_are_not_stored_and_shapes_are_checked(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    save_checkpoint(
        tmp_path / "c.pt",
        model=model,
        optimizers=[],
        schedulers=[],
        epoch=1,
        step=5,
        batch_in_epoch=0,
        best_metric=0.5,
        best_epoch=0,
    )
    state = read_checkpoint(tmp_path / "c.pt")
    assert "0.weight" not in state["model"] and "1.running_mean" in state["model"] and "2.weight" in state["model"]
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    other[0].requires_grad_(False)
    load_trainable_state(other, state["model"], "c.pt")
    assert torch.equal(other[2].weight, model[2].weight)
    wrong = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 5))
    wrong[0].requires_grad_(False)
    with pytest.raises(CheckpointError, match=r"c\.pt: weights do not fit.*2\.(weight|bias)"):
        load_trainable_state(wrong, state["model"], "c.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        read_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_epoch_sampler_depends_on_seed_and_epoch_and_skips_done_batches():
    full = list(EpochSampler(10, 3, seed=4, epoch=2))
    assert sorted(full) == list(range(10))
    assert list(EpochSampler(10, 3, seed=4, epoch=2, start_batch=2)) == full[6:]
    assert list(EpochSampler(10, 3, seed=4, epoch=2, max_batches=2)) == full[:6]
    assert full != list(EpochSampler(10, 3, seed=4, epoch=3))


# -------------------------------------------------------------------- the loop
class ToyData(torch.utils.data.Dataset):
    """Clips whose single event's class is encoded in the input."""

    def __init__(self, n: int, offset: int = 0):
        self.items = []
        for i in range(n):
            cls = (i + offset) % 3
            src = torch.zeros(1, 8, 4)
            src[0, :, cls] = 1.0
            target = torch.zeros(N_LABEL_FRAMES, 6, 4, N_CLASSES)
            target[:, 0, 0, cls] = 1.0
            target[:, 0, 1, cls] = 1.0  # x = 1 (azimuth 0)
            target[:, 0, 3, cls] = 2.0
            self.items.append({"src": src, "target": target, "index": i, "name": f"clip{i + offset:03d}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def refs(self):
        return {
            it["name"]: np.array(
                [[f, int(it["src"][0, 0].argmax()), 0, 0, 200, 0] for f in range(N_LABEL_FRAMES)], dtype=np.float64
            )
            for it in self.items
        }


class ToyTask:
    def __init__(self):
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.Dropout(0.3), nn.ReLU(), nn.Linear(16, OUT))

    def predict(self, batch):
        return self.model(batch["src"]).unsqueeze(1).expand(-1, N_LABEL_FRAMES, -1)

    def losses(self, batch, generator):
        out = self.predict(batch).reshape(-1, N_LABEL_FRAMES, N_TRACKS, 3, N_CLASSES)
        t = batch["target"][:, :, 0]  # (B, L, 4, C): A0 slot
        want = torch.cat([t[:, :, 1:3] * t[:, :, :1], t[:, :, 3:4]], dim=2)
        noise = 1 + 0.01 * torch.randn(1, generator=generator)  # exercises the task generator
        loss = ((out[:, :, 0] - want) ** 2).mean() * noise.item()
        return {"loss": loss, "adpit": loss.detach()}


def _run(run_dir, epochs=3, on_step=None):
    torch.manual_seed(0)
    task = ToyTask()
    opt = torch.optim.Adam(task.model.parameters(), lr=1e-2)
    cfg = TrainConfig.from_dict({"epochs": epochs, "batch_size": 4, "checkpoint_every_steps": 1, "progress": False})
    val = ToyData(6, offset=100)
    result = fit(
        run_dir, task, opt, ToyData(10), val, val.refs(), cfg, seed=3, device=torch.device("cpu"), on_step=on_step
    )
    return task, result


def test_fit_writes_run_files_and_learns(tmp_path):
    task, result = _run(tmp_path / "run", epochs=4)
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["step"]) for r in rows] == [3, 6, 9, 12]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert float(rows[0]["lr_0"]) == pytest.approx(1e-2)
    assert float(rows[1]["lr_0"]) == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi / 4)))
    best = json.loads((tmp_path / "run" / "val_metrics.json").read_text())
    assert best == result
    assert best["F"] == max(float(r["val_F"]) for r in rows)
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert (last["epoch"], last["step"], last["batch_in_epoch"]) == (4, 12, 0)
    assert read_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == best["epoch"] + 1


class Killed(Exception):
    pass


def test_resume_after_interruption_mid_epoch_is_exact(tmp_path):
    ref_task, ref_result = _run(tmp_path / "ref")

    def die(epoch, step):
        if step == 5:  # epoch 1, after its 2nd of 3 batches
            raise Killed

    with pytest.raises(Killed):
        _run(tmp_path / "cut", on_step=die)
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["batch_in_epoch"] == 2
    task, result = _run(tmp_path / "cut")
    for a, b in zip(ref_task.model.parameters(), task.model.parameters()):
        assert torch.equal(a, b)
    assert result == ref_result
    ref_rows = list(csv.DictReader(open(tmp_path / "ref" / "log.csv")))
    rows = list(csv.DictReader(open(tmp_path / "cut" / "log.csv")))
    for a, b in zip(ref_rows, rows):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    # A finished run is not retrained.
    again_task, again = _run(tmp_path / "cut")
    assert again == ref_result


# ------------------------------------- resume when a workflow removed the outputs
def _same_weights(a, b) -> None:
    for (name, x), y in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("kill_step", [4, 5, 9], ids=["epoch-start", "mid-epoch", "after-last-epoch"])
def test_resume_after_outputs_were_deleted_matches_uninterrupted_run(tmp_path, kill_step):
    """Snakemake deletes best.pt and val_metrics.json of an interrupted job before rerunning it;
    last.pt survives. The rerun must rebuild them (never 'finished without a validation result')."""
    ref_task, ref_result = _run(tmp_path / "ref")
    ref_best = read_checkpoint(tmp_path / "ref" / "best.pt")

    def die(epoch, step):
        if step == kill_step:
            raise Killed

    cut = tmp_path / "cut"
    if kill_step < 9:
        with pytest.raises(Killed):
            _run(cut, on_step=die)
    else:  # a complete run whose job the workflow considers incomplete
        _run(cut)
    (cut / "best.pt").unlink()
    (cut / "val_metrics.json").unlink()
    task, result = _run(cut)
    _same_weights(ref_task, task)
    assert result == ref_result
    assert json.loads((cut / "val_metrics.json").read_text()) == ref_result
    best = read_checkpoint(cut / "best.pt")
    assert best["epoch"] == ref_best["epoch"] == ref_result["epoch"] + 1
    for key in ref_best["model"]:
        assert torch.equal(best["model"][key], ref_best["model"][key]), key
    # only the kept copy of the selected epoch remains
    assert sorted(p.name for p in cut.glob("best-epoch*.pt")) == [f"best-epoch{ref_result['epoch']}.pt"]


def test_kill_between_kept_copy_and_last_checkpoint_keeps_the_recorded_best(tmp_path):
    """A kept copy newer than last.pt (killed before last.pt was written) is not taken for the best."""
    ref_task, ref_result = _run(tmp_path / "ref")
    cut = tmp_path / "cut"

    def die(epoch, step):
        if step == 7:  # epoch 2 under way: epochs 0 and 1 are in last.pt
            raise Killed

    with pytest.raises(Killed):
        _run(cut, on_step=die)
    recorded = read_checkpoint(cut / "last.pt")["best_epoch"]
    stray = cut / "best-epoch2.pt"
    stray.write_bytes((cut / f"best-epoch{recorded}.pt").read_bytes())  # as if written, then killed
    (cut / "best.pt").unlink()
    task, result = _run(cut)
    _same_weights(ref_task, task)
    assert result == ref_result


def test_run_whose_best_weights_are_lost_trains_afresh(tmp_path):
    """An older run directory (no kept copy) whose best.pt the workflow deleted: trained anew,
    with the uninterrupted result, instead of failing forever."""
    ref_task, ref_result = _run(tmp_path / "ref")
    cut = tmp_path / "cut"
    _run(cut)
    for path in [cut / "best.pt", cut / "val_metrics.json", *cut.glob("best-epoch*.pt")]:
        path.unlink()
    task, result = _run(cut)
    _same_weights(ref_task, task)
    assert result == ref_result
    rows = list(csv.DictReader(open(cut / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]


def test_unreadable_last_checkpoint_is_set_aside_and_the_run_restarts(tmp_path, caplog):
    """A truncated last.pt (a copy cut short): renamed, not deleted, and the run trained afresh
    to the uninterrupted result, with a warning naming both files."""
    ref_task, ref_result = _run(tmp_path / "ref")
    cut = tmp_path / "cut"

    def die(epoch, step):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        _run(cut, on_step=die)
    whole = (cut / "last.pt").read_bytes()
    (cut / "last.pt").write_bytes(whole[: len(whole) // 2])
    (cut / "last.pt.unreadable").write_bytes(b"set aside by an earlier rerun")
    with caplog.at_level(logging.WARNING):
        task, result = _run(cut)
    _same_weights(ref_task, task)
    assert result == ref_result
    assert (cut / "last.pt.unreadable-1").read_bytes() == whole[: len(whole) // 2]
    assert (cut / "last.pt.unreadable").read_bytes() == b"set aside by an earlier rerun"
    assert f"{cut / 'last.pt'}: not a readable textseld checkpoint" in caplog.text
    assert f"set it aside as last.pt.unreadable-1 and training {cut} afresh" in caplog.text


def test_resumed_run_that_never_beats_the_pre_kill_best_keeps_it(tmp_path, monkeypatch):
    """Validation F falls after epoch 0: the best is from before the kill and must survive the
    workflow deleting best.pt / val_metrics.json (the resumed epochs never write them)."""
    import textseld.train.loop as loop

    scores = iter([0.5, 0.3, 0.2, 0.5, 0.3, 0.2, 0.3, 0.2])  # ref: 3 epochs; cut: 1 + 2 after resume

    def fake_validate(task, dataset, refs, cfg, device, seed):
        return {"F": next(scores), "DOAE": 10.0, "RDE": 0.1}

    monkeypatch.setattr(loop, "validate", fake_validate)
    ref_task, ref_result = _run(tmp_path / "ref")
    assert ref_result["epoch"] == 0 and ref_result["F"] == 0.5

    def die(epoch, step):
        if step == 5:  # epoch 1, after its 2nd of 3 batches
            raise Killed

    cut = tmp_path / "cut"
    with pytest.raises(Killed):
        _run(cut, on_step=die)
    (cut / "best.pt").unlink()
    (cut / "val_metrics.json").unlink()
    task, result = _run(cut)
    _same_weights(ref_task, task)
    assert result == ref_result
    ref_best, best = read_checkpoint(tmp_path / "ref" / "best.pt"), read_checkpoint(cut / "best.pt")
    assert best["epoch"] == 1
    for key in ref_best["model"]:
        assert torch.equal(best["model"][key], ref_best["model"][key]), key


def test_checkpoint_write_removes_a_killed_writers_temporary(tmp_path):
    stale = tmp_path / ".last.pt.k1ll3d.pt.tmp"  # what a SIGKILL during torch.save leaves
    stale.write_bytes(b"\x00" * 4096)
    task = ToyTask()
    save_checkpoint(
        tmp_path / "last.pt",
        model=task.model,
        optimizers=[],
        schedulers=[],
        epoch=1,
        step=3,
        batch_in_epoch=0,
        best_metric=None,
        best_epoch=None,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_validation_records_the_fraction_of_dead_distance_units(tmp_path):
    """A distance unit that outputs 0 on every validation frame (a dead ReLU) is counted; one
    that is 0 on some frames only is not."""
    from textseld.train.loop import validate

    class HalfDead(ToyTask):
        def predict(self, batch):
            out = super().predict(batch).reshape(-1, N_LABEL_FRAMES, N_TRACKS, 3, N_CLASSES).clone()
            out[:, :, 2, 2] = 0.0  # the third track's distance: dead on every frame
            out[:, 1:, 1, 2, 0] = 0.0  # the second track's class 0: 0 on all but the first frame
            return out.flatten(2)

    torch.manual_seed(0)
    cfg = TrainConfig.from_dict({"progress": False})
    val = ToyData(6, offset=100)
    metrics = validate(HalfDead(), val, val.refs(), cfg, torch.device("cpu"), 0)
    assert metrics["dead_distance"] == pytest.approx(1 / 3)
    _, result = _run(tmp_path / "run", epochs=1)
    assert result["dead_distance"] == 0.0
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert float(rows[0]["val_dead_distance"]) == 0.0
