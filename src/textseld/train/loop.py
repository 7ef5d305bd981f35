"""The generic epoch loop: train, validate, log, checkpoint, resume exactly.

What is trained is a `Task` (see `textseld.train.tasks`): it owns the model
and knows how to turn a batch into losses and into network outputs. The loop
owns everything else:

- the data order: a fresh permutation per epoch from a generator seeded by
  (seed, epoch), so that resuming mid-epoch only needs the number of batches
  already done (the sampler skips them without loading them); a training set
  with a `set_epoch(epoch)` method is told the epoch before it is iterated;
- the RNG states (python, numpy, torch, and the task's own generator) saved
  in every checkpoint, so that a resumed run draws the same numbers;
- `last.pt` after every epoch (and every `checkpoint_every_steps` steps),
  `best.pt` + `val_metrics.json` when validation F20/1 improves, and the
  per-epoch `log.csv` (rewritten atomically; rows of epochs redone after a
  resume replace the old ones).

`best.pt` and `val_metrics.json` are what a workflow declares as outputs, so
they may vanish between a kill and the rerun (Snakemake deletes the outputs of
an incomplete job), while `last.pt` survives. They are therefore derived
state: the selected weights are kept in `best-epoch<N>.pt` (written before
the `last.pt` that names epoch N as the best; `best.pt` is a hard link to it,
or a copy where links are not supported) and the selected epoch's metrics in
`last.pt` itself. Resuming rebuilds both from there; a run directory whose
best checkpoint cannot be recovered (written by an older version) is
discarded and trained afresh instead of finishing without a result; a `last.pt`
that cannot be read is set aside as `last.pt.unreadable` and the run trained
afresh (a warning says so).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from textseld.atomic import atomic_path, write_text_atomic
from textseld.models.heads import live_distance_units
from textseld.train.checkpoint import CheckpointError, read_checkpoint, restore_checkpoint, save_checkpoint
from textseld.train.config import TrainConfig, lr_factor

log = logging.getLogger(__name__)

LOSS_KEYS = ("loss", "adpit", "mae")
# The kept copy of the selected weights (see the module docstring); runs.py discards these on restart.
KEPT_BEST_GLOB = "best-epoch*.pt"
# Everything `fit` writes into a run directory besides the kept copies.
FIT_FILES = ("last.pt", "best.pt", "log.csv", "val_metrics.json")


class Task(Protocol):
    """What the loop trains. `model` holds every parameter the optimizer sees."""

    model: torch.nn.Module

    def losses(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Training losses of one batch: "loss" (the total to minimise) plus parts (adpit, mae)."""

    def predict(self, batch: dict) -> torch.Tensor:
        """Network output in metres (B, L, K*3*C), all frames, eval mode, fixed templates."""


# ------------------------------------------------------------------- data order
class EpochSampler(Sampler[int]):
    """Permutation of range(n) for one epoch, seeded by (seed, epoch), from batch `start_batch` on.

    The permutation depends only on (seed, epoch), never on the global RNG,
    so the data order of a resumed epoch is the interrupted one.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0, max_batches: int | None = None
    ):
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
        perm = torch.randperm(n, generator=g).tolist()
        n_batches = math.ceil(n / batch_size)
        if max_batches is not None:
            n_batches = min(n_batches, max_batches)
        self.indices = perm[start_batch * batch_size : n_batches * batch_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def batches_per_epoch(n: int, cfg: TrainConfig) -> int:
    n_batches = math.ceil(n / cfg.batch_size)
    return min(n_batches, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else n_batches


def make_loader(dataset: Dataset, batch_size: int, sampler: Sampler | None, num_workers: int, seed: int) -> DataLoader:
    # An explicit generator: otherwise creating the iterator draws a worker
    # seed from the global torch RNG, which a resumed run would draw elsewhere.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(int(seed)),
        persistent_workers=False,
        pin_memory=False,
    )


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


# --------------------------------------------------------------------- settings
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training config asks for device 'cuda' but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool, device: torch.device | str = "cuda") -> None:
    """Seed python, numpy and torch; with `deterministic` on a CUDA `device`, also make
    cuBLAS, cuDNN and torch's CUDA kernels deterministic.

    On the CPU, torch's kernels that these models use give the same result in every run
    with the same number of threads, and `torch.use_deterministic_algorithms` changes
    none of them; it also imports torch's compiler (about 900 modules, 1.7 s of every
    training job on a CPU), so it is not called there.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic and torch.device(device).type == "cuda":
        # cuBLAS needs this before its first use to be deterministic.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch multiplier of every group's base lr (state is plain numbers: weights_only-safe)."""
    schedule, epochs = dict(cfg.schedule), cfg.epochs
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(schedule, e, epochs))


# ---------------------------------------------------------------------- logging
def _write_log(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _metric_key(value: float | None) -> float:
    return -math.inf if value is None or not math.isfinite(value) else float(value)


# ------------------------------------------------------------ best checkpoint
def kept_best_path(run_dir: Path, epoch: int) -> Path:
    """The kept copy of the weights selected at (0-based) `epoch`."""
    return run_dir / f"best-epoch{int(epoch)}.pt"


def _publish(src: Path, dst: Path) -> None:
    """Make `dst` hold `src`'s content atomically: a hard link (no extra disk) or, where the
    file system has none, a copy."""
    import shutil

    if dst.is_file() and os.path.samefile(src, dst):
        return
    with atomic_path(dst, suffix=".pt") as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _drop_kept(run_dir: Path, keep: Path | None) -> None:
    for path in run_dir.glob(KEPT_BEST_GLOB):
        if keep is None or path.name != keep.name:
            path.unlink(missing_ok=True)


def _publish_best(run_dir: Path, best_epoch: int, best_metrics: dict) -> None:
    """best.pt and val_metrics.json from the kept copy and the metrics recorded in last.pt."""
    kept = kept_best_path(run_dir, best_epoch)
    _drop_kept(run_dir, kept)
    _publish(kept, run_dir / "best.pt")
    write_text_atomic(run_dir / "val_metrics.json", json.dumps(best_metrics, indent=2, default=float) + "\n")


def _recover_best(run_dir: Path, state: dict) -> str | None:
    """Bring best.pt / val_metrics.json in line with a resumed last.pt; None when done,
    otherwise why the run cannot be resumed (its selected weights are lost)."""
    best_epoch = state["best_epoch"]
    best_path, metrics_path = run_dir / "best.pt", run_dir / "val_metrics.json"
    if best_epoch is None:  # no epoch finished: anything else is from an epoch that will be redone
        _drop_kept(run_dir, None)
        best_path.unlink(missing_ok=True)
        metrics_path.unlink(missing_ok=True)
        return None
    kept = kept_best_path(run_dir, best_epoch)
    best_metrics = state["extra"].get("best_metrics")
    if not kept.is_file() and best_path.is_file():  # a run directory of an older version
        with_best = _checkpoint_epoch(best_path)
        if with_best == best_epoch + 1:
            _publish(best_path, kept)
    if best_metrics is None and metrics_path.is_file():
        try:
            recorded = json.loads(metrics_path.read_text(encoding="utf-8"))
        except ValueError:
            recorded = {}
        if recorded.get("epoch") == best_epoch:
            best_metrics = recorded
    if not kept.is_file():
        return f"the weights of its best epoch ({best_epoch}) are gone ({kept.name} and best.pt missing)"
    if _checkpoint_epoch(kept) != best_epoch + 1:
        return f"{kept.name} does not hold epoch {best_epoch}"
    if best_metrics is None:
        return f"the validation result of its best epoch ({best_epoch}) is not recorded"
    _publish_best(run_dir, best_epoch, best_metrics)
    return None


def _checkpoint_epoch(path: Path) -> int | None:
    try:
        return int(read_checkpoint(path)["epoch"])
    except CheckpointError:
        return None


def _read_last(run_dir: Path, last_path: Path) -> dict | None:
    """The state in last.pt; None when there is none, or when it cannot be read (a truncated
    copy, a kill during a write on a file system without atomic rename): then it is set aside
    (renamed, never deleted, see set_aside) and the run starts afresh, saying so."""
    if not last_path.is_file():
        return None
    try:
        return read_checkpoint(last_path)
    except CheckpointError as exc:
        aside = set_aside(last_path)
        log.warning("%s; set it aside as %s and training %s afresh", exc, aside.name, run_dir)
        return None


def set_aside(path: Path) -> Path:
    """Rename `path` to `<name>.unreadable` (or `<name>.unreadable-N`, never over an earlier one)."""
    n = 0
    while True:
        aside = path.with_name(f"{path.name}.unreadable" + (f"-{n}" if n else ""))
        if not aside.exists():
            os.replace(path, aside)
            return aside
        n += 1


def _discard_run_state(run_dir: Path) -> None:
    for name in FIT_FILES:
        (run_dir / name).unlink(missing_ok=True)
    _drop_kept(run_dir, None)


# ------------------------------------------------------------------- validation
@torch.no_grad()
def validate(
    task: Task, dataset: Dataset, refs: dict[str, np.ndarray], cfg: TrainConfig, device: torch.device, seed: int
) -> dict[str, Any]:
    """Decode every validation clip and score it against its reference rows (F, DOAE, RDE)."""
    from textseld.metrics.decode import decode_output
    from textseld.metrics.seld import score

    task.model.eval()
    preds: dict[str, np.ndarray] = {}
    live: torch.Tensor | None = None
    loader = make_loader(dataset, cfg.val_batch_size or cfg.batch_size, None, cfg.num_workers, seed)
    for batch in tqdm(loader, desc="validate", leave=False, disable=not cfg.progress):
        out = task.predict(to_device(batch, device)).float().cpu()
        batch_live = live_distance_units(out)
        live = batch_live if live is None else live | batch_live
        for name, clip_out in zip(batch["name"], out):
            preds[name] = decode_output(clip_out)
    metrics = score(refs, preds, protocol=cfg.val_protocol, average="macro")
    # distance units that output 0 on every validation frame: a dead ReLU (docs/METHOD.md section 3)
    metrics["dead_distance"] = 0.0 if live is None else 1.0 - live.float().mean().item()
    return json.loads(json.dumps(metrics, default=float))  # plain JSON-able values


# ------------------------------------------------------------------------- fit
@dataclass
class _Progress:
    """Where a run stands, as its checkpoints record it besides weights and RNG states."""

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    best_metrics: dict[str, Any] | None = None
    partial: dict[str, Any] = field(default_factory=dict)  # sums of an epoch cut off mid-way


@dataclass
class _Checkpointer:
    """Writes the checkpoints of one `fit`: what it trains and where it stands."""

    task: Task
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    task_gen: torch.Generator
    progress: _Progress

    def save(self, path: Path, at_epoch: int, at_batch: int, extra: dict, full: bool = True) -> None:
        if full:  # last.pt: also what best.pt / val_metrics.json are rebuilt from
            extra = {**extra, "best_metrics": self.progress.best_metrics}
        save_checkpoint(
            path,
            model=self.task.model,
            optimizers=[self.optimizer] if full else [],
            schedulers=[self.scheduler] if full else [],
            epoch=at_epoch,
            step=self.progress.step,
            batch_in_epoch=at_batch,
            best_metric=self.progress.best_metric,
            best_epoch=self.progress.best_epoch,
            extra_rng={"task": self.task_gen.get_state()},
            extra=extra,
        )


def _resume(run_dir: Path, ckpt: _Checkpointer) -> None:
    """Restore the run in `run_dir` from its last.pt into `ckpt` (model, optimizer, scheduler,
    task RNG and progress); a fresh run, or one whose best checkpoint is lost, starts anew."""
    last_path = run_dir / "last.pt"
    state = _read_last(run_dir, last_path)
    lost = _recover_best(run_dir, state) if state is not None else None
    if lost:
        log.warning("%s: cannot resume from %s: %s; training afresh", run_dir, last_path, lost)
        _discard_run_state(run_dir)
        state = None
    elif state is None:  # a fresh run: nothing of an earlier one may be taken for its result
        _discard_run_state(run_dir)
    if state is None:
        return
    restore_checkpoint(
        state, last_path, model=ckpt.task.model, optimizers=[ckpt.optimizer], schedulers=[ckpt.scheduler]
    )
    ckpt.task_gen.set_state(state["extra_rng"]["task"])
    progress = ckpt.progress
    progress.epoch, progress.step, progress.batch_in_epoch = state["epoch"], state["step"], state["batch_in_epoch"]
    progress.best_metric, progress.best_epoch = state["best_metric"], state["best_epoch"]
    progress.best_metrics = (
        json.loads((run_dir / "val_metrics.json").read_text(encoding="utf-8"))
        if progress.best_epoch is not None
        else None
    )
    progress.partial = state["extra"].get("partial", {}) if progress.batch_in_epoch else {}
    log.info(
        "resuming %s at epoch %d, batch %d (step %d)", run_dir, progress.epoch, progress.batch_in_epoch, progress.step
    )


def _train_epoch(
    ckpt: _Checkpointer,
    train_set: Dataset,
    cfg: TrainConfig,
    seed: int,
    device: torch.device,
    last_path: Path,
    on_step: Callable[[int, int], None] | None,
) -> tuple[dict[str, float], int, float]:
    """The training steps of the epoch `ckpt.progress.epoch`, from the batch it stands at (a
    resumed epoch continues its sums). Returns (loss sums, batches summed, start time)."""
    task, optimizer, progress = ckpt.task, ckpt.optimizer, ckpt.progress
    partial = progress.partial
    t0 = time.monotonic() - float(partial.get("seconds", 0.0))
    sums = {k: float(v) for k, v in partial.get("sums", {}).items()}
    done = int(partial.get("batches", 0))
    n_train = len(cast(Sized, train_set))  # map-style datasets (PackedDataset) have a length
    n_batches = batches_per_epoch(n_train, cfg)
    sampler = EpochSampler(
        n_train, cfg.batch_size, seed, progress.epoch, progress.batch_in_epoch, cfg.max_steps_per_epoch
    )
    set_epoch = getattr(train_set, "set_epoch", None)
    if set_epoch is not None:  # a dataset whose items depend on the epoch (textseld.train.frames)
        set_epoch(progress.epoch)
    loader = make_loader(train_set, cfg.batch_size, sampler, cfg.num_workers, seed)
    task.model.train()
    bar = tqdm(
        loader,
        desc=f"epoch {progress.epoch + 1}/{cfg.epochs}",
        total=len(loader),
        leave=False,
        disable=not cfg.progress,
    )
    for batch in bar:
        losses = task.losses(to_device(batch, device), ckpt.task_gen)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(task.model.parameters(), cfg.grad_clip)
        optimizer.step()
        progress.step += 1
        progress.batch_in_epoch += 1
        done += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        bar.set_postfix(loss=f"{float(losses['loss'].detach()):.4f}")
        if (
            cfg.checkpoint_every_steps
            and progress.step % cfg.checkpoint_every_steps == 0
            and progress.batch_in_epoch < n_batches
        ):
            ckpt.save(
                last_path,
                progress.epoch,
                progress.batch_in_epoch,
                {"partial": {"sums": sums, "batches": done, "seconds": time.monotonic() - t0}},
            )
        if on_step is not None:
            on_step(progress.epoch, progress.step)
    return sums, done, t0


def fit(
    run_dir: str | os.PathLike,
    task: Task,
    optimizer: torch.optim.Optimizer,
    train_set: Dataset,
    val_set: Dataset,
    val_refs: dict[str, np.ndarray],
    cfg: TrainConfig,
    seed: int,
    device: torch.device,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train `task` for cfg.epochs, resuming from run_dir/last.pt if it exists.

    Returns the validation metrics of the best epoch (also in val_metrics.json).
    on_step(epoch, step) is called after every optimizer step (tests use it
    to kill the process mid-epoch).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    log_path, metrics_path = run_dir / "log.csv", run_dir / "val_metrics.json"
    scheduler = make_scheduler(optimizer, cfg)
    task_gen = torch.Generator().manual_seed(int(seed) + 7919)
    ckpt = _Checkpointer(task, optimizer, scheduler, task_gen, _Progress())
    _resume(run_dir, ckpt)
    progress = ckpt.progress
    rows = [r for r in _read_log(log_path) if int(r["epoch"]) < progress.epoch]
    while progress.epoch < cfg.epochs:
        sums, done, t0 = _train_epoch(ckpt, train_set, cfg, seed, device, last_path, on_step)
        lrs = {f"lr_{g.get('name', i)}": g["lr"] for i, g in enumerate(optimizer.param_groups)}
        scheduler.step()
        metrics = validate(task, val_set, val_refs, cfg, device, seed)
        row: dict[str, Any] = {"epoch": progress.epoch, "step": progress.step}
        row.update({k: sums.get(k, math.nan) / max(done, 1) for k in LOSS_KEYS})
        row.update(
            {
                "val_F": metrics["F"],
                "val_DOAE": metrics["DOAE"],
                "val_RDE": metrics["RDE"],
                "val_dead_distance": metrics.get("dead_distance", math.nan),
            }
        )
        row.update(lrs)
        row["seconds"] = round(time.monotonic() - t0, 3)
        rows.append(row)
        improved = progress.best_metric is None or _metric_key(metrics["F"]) > _metric_key(progress.best_metric)
        if improved:
            progress.best_metric, progress.best_epoch = metrics["F"], progress.epoch
            progress.best_metrics = {"epoch": progress.epoch, "step": progress.step, **metrics}
            # the kept copy first: a last.pt naming epoch N as the best always finds it
            ckpt.save(kept_best_path(run_dir, progress.epoch), progress.epoch + 1, 0, {}, full=False)
        _write_log(log_path, rows)
        progress.epoch, progress.batch_in_epoch, progress.partial = progress.epoch + 1, 0, {}
        ckpt.save(last_path, progress.epoch, 0, {})
        if improved and progress.best_epoch is not None and progress.best_metrics is not None:
            _publish_best(run_dir, progress.best_epoch, progress.best_metrics)
        log.info(
            "epoch %d/%d: loss %.4f, val F %.4f DOAE %.2f RDE %.4f, dead distance units %.3f",
            progress.epoch,
            cfg.epochs,
            row["loss"],
            metrics["F"],
            metrics["DOAE"],
            metrics["RDE"],
            metrics.get("dead_distance", math.nan),
        )
    if progress.best_epoch is None or progress.best_metrics is None or not best_path.is_file():
        raise RuntimeError(f"{run_dir}: training finished without a validation result")
    # Fresh modification times: a workflow compares them with its inputs', and best.pt may be
    # a link to a file written before the inputs of a resumed job were last touched.
    os.utime(best_path)
    write_text_atomic(metrics_path, json.dumps(progress.best_metrics, indent=2, default=float) + "\n")
    return json.loads(metrics_path.read_text(encoding="utf-8"))
