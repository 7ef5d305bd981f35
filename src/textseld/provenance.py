"""What a run was produced with, recorded in its run directory when it trains.

`provenance.json` of a run directory holds: the recipe's name (textseld.recipes),
the data (source, training and validation clips), the model size, the training
settings that depart from the recipe (dotted keys of the run's own sections:
models, its text encoder, its training sections, the validation split), the
code version (git commit and whether tracked files differed from it, as `git
describe --dirty` counts; the package version when the code is not a git
checkout) and the SHA-256 of the resolved workflow config; an identity control's also
"alignment_loss": that its loss has no alignment (MAE) term. The results tables
join these files (textseld.results); nothing is recomputed there.

Nothing here is a rule parameter: a new commit does not make a finished run stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from textseld.atomic import write_text_atomic

FILE = "provenance.json"
# Keys of a run's sections that say where weights come from, not how it trains (weights.json
# records those; the tables' weights columns describe them).
WEIGHT_KEYS = (
    "models.beats_checkpoint",
    "text_encoders.clip_weights",
    "text_encoders.bert_path",
    "text_encoders.random_init",
)


def code_version() -> dict[str, Any]:
    """{"commit": HEAD of the git checkout holding this package or None, "dirty": whether its
    tracked files differ from HEAD (None without a checkout), "version": the package version}."""
    from textseld import __version__

    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    # the package must be a tracked file of the checkout (not a copy installed under it)
    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return {"commit": None, "dirty": None, "version": __version__}
    commit = (git("rev-parse", "HEAD") or "").strip() or None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status.strip()), "version": __version__}


def config_digest(config: Mapping) -> str:
    """SHA-256 of a config's canonical JSON (keys sorted): equal configs, equal digests."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_sections(setup: Mapping, kind: str, text: str | None = None) -> dict[str, Any]:
    """The parts of a resolved workflow config that a run of `kind` ("pretrain" | "finetune" |
    "baseline") trains with: the models, its text encoder (finetunings), its training sections
    (a finetuning's include its tokenizer's pretraining) and the validation split."""
    train = setup.get("train") or {}
    kinds = ("pretrain", "finetune") if kind == "finetune" else (kind,)
    sections: dict[str, Any] = {
        "models": dict(setup.get("models") or {}),
        "train": {k: train.get(k) or {} for k in (*kinds, "validation_split")},
    }
    from textseld.constants import IDENTITY

    if text is not None and text != IDENTITY:  # the identity control has no text encoder section
        encoders = setup.get("text_encoders") or {}
        sections["text_encoders"] = {k: v for k, v in encoders.items() if k == text or k.startswith(f"{text}_")}
    return sections


def run_provenance(
    setup: Mapping, kind: str, text: str | None, train_clips: int, validation_clips: int
) -> dict[str, Any]:
    """provenance.json of one run of `kind` under resolved workflow config `setup`."""
    from textseld.recipes import departures

    name = setup.get("recipe")
    data = setup.get("data") or {}
    from textseld.constants import IDENTITY

    if kind == "finetune" and text == IDENTITY:  # the control's loss lacks the recipe's alignment term
        from textseld.models.text_identity import NO_ALIGNMENT

        control = {"alignment_loss": NO_ALIGNMENT}
    else:
        control = {}
    return {
        **control,
        "recipe": name,
        "data": {
            "source": data.get("source"),
            "train_clips": int(train_clips),
            "validation_clips": int(validation_clips),
        },
        "model_size": (setup.get("models") or {}).get("size"),
        "departures": departures(str(name), run_sections(setup, kind, text), skip=WEIGHT_KEYS),
        "code": code_version(),
        "config_sha256": config_digest(setup),
    }


def write_provenance(run_dir: str | os.PathLike, record: Mapping) -> Path:
    path = Path(run_dir) / FILE
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path
