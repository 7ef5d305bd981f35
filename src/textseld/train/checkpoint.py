"""Checkpoints that resume exactly and load with `torch.load(weights_only=True)`.

A checkpoint is a dict of tensors and plain containers only (no pickled
objects): model state, optimizer and scheduler states, the RNG states of
python / numpy / torch (CPU and CUDA) and of the training loop's own
generators, the position in training (epoch, step, batch within the epoch)
and the best validation metric so far. Configs are never pickled: they live
as JSON beside the checkpoints (`config.json`).

Frozen parameters loaded from pretrained weight files (frozen text encoder,
frozen BEATs transformer) are left out of the model state: they are rebuilt
from the same files (recorded with their sha256 in `weights.json`), which
keeps checkpoints small. Buffers are always saved.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from textseld.atomic import atomic_path

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not fit the model; the message names the file."""


# --------------------------------------------------------------------------- RNG
def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors / plain containers (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npd = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": npd["bit_generator"],
            "state": {"key": npd["key"].numpy().astype(np.uint32), "pos": npd["pos"]},
            "has_gauss": npd["has_gauss"],
            "gauss": npd["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------ model state
def frozen_keys(model: nn.Module) -> list[str]:
    """Names of parameters that do not train (rebuilt from weight files, not saved)."""
    return [name for name, p in model.named_parameters() if not p.requires_grad]


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict without frozen parameters (buffers included)."""
    skip = set(frozen_keys(model))
    return {k: v.detach().cpu() for k, v in model.state_dict().items() if k not in skip}


def check_state_fits(
    own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], expected: set[str], source: str | os.PathLike
) -> None:
    """Raise CheckpointError unless `state` has exactly the `expected` keys of `own`, with their shapes."""
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in expected & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatch(es) (e.g. {k}: file {tuple(state[k].shape)} "
                f"vs model {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{source}: weights do not fit this model architecture: " + "; ".join(parts))


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Load a `trainable_state` into `model`; every trainable key must match in name and shape."""
    own = model.state_dict()
    check_state_fits(own, state, set(own) - set(frozen_keys(model)), source)
    model.load_state_dict(state, strict=False)


def load_full_state(module: nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Load a complete state_dict (frozen parameters included), names and shapes checked."""
    own = module.state_dict()
    check_state_fits(own, state, set(own), source)
    module.load_state_dict(state, strict=True)


# ------------------------------------------------------------------ save / load
def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizers: list,
    schedulers: list,
    epoch: int,
    step: int,
    batch_in_epoch: int,
    best_metric: float | None,
    best_epoch: int | None,
    extra_rng: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a resumable checkpoint atomically.

    epoch: the epoch in progress (0-based); batch_in_epoch: batches of it
    already done (0 = the epoch has not started; an epoch that has finished is
    stored as epoch + 1, batch 0). extra_rng: the loop's own torch.Generator
    states (template draws, frame subsampling).
    """
    state = {
        "format_version": FORMAT_VERSION,
        "model": trainable_state(model),
        "optimizers": [o.state_dict() for o in optimizers],
        "schedulers": [s.state_dict() for s in schedulers],
        "rng": rng_state(),
        "extra_rng": dict(extra_rng or {}),
        "epoch": int(epoch),
        "step": int(step),
        "batch_in_epoch": int(batch_in_epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "best_epoch": None if best_epoch is None else int(best_epoch),
        "extra": dict(extra or {}),
    }
    # one training process writes a run's checkpoints: what a killed one left is stale
    with atomic_path(path, suffix=".pt", remove_stale=True) as tmp, open(tmp, "wb") as fh:
        # to a file object: torch then names the archive's folder "archive"; given a path it
        # uses the file's (random temporary) name, and equal checkpoints had different bytes
        # (and sha256, which results tables and caches record)
        torch.save(state, fh)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict safely (weights_only=True, on CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or holding pickled objects
        raise CheckpointError(f"{path}: not a readable textseld checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION or "model" not in state:
        raise CheckpointError(f"{path}: not a textseld checkpoint (format_version {FORMAT_VERSION} expected)")
    return state


def restore_checkpoint(
    state: dict[str, Any], path: str | os.PathLike, *, model: nn.Module, optimizers: list, schedulers: list
) -> None:
    """Put model, optimizer, scheduler and global RNG states back (not the extra_rng)."""
    load_trainable_state(model, state["model"], path)
    if len(state["optimizers"]) != len(optimizers) or len(state["schedulers"]) != len(schedulers):
        raise CheckpointError(f"{path}: holds {len(state['optimizers'])} optimizer(s), {len(optimizers)} expected")
    for opt, s in zip(optimizers, state["optimizers"]):
        opt.load_state_dict(s)
    for sch, s in zip(schedulers, state["schedulers"]):
        sch.load_state_dict(s)
    set_rng_state(state["rng"])
