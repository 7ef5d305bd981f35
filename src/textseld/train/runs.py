"""Entry points that train one model into one run directory (docs/METHOD.md section 6).

`pretrain` (tokenizer + linear head, ADPIT), `finetune` (pretrained tokenizer
+ frozen text encoder + GREP/TREP head, MAE + ADPIT, two Adam groups) and
`train_baseline`. Each carves the validation split out of the training file
(grouped by recording; the test split is never seen): one split for every run,
set by a SplitConfig and never by the run's seed, and the one the normalisation
statistics were computed without (checked). Each writes `config.json`,
`weights.json` and `split.json`, and runs the generic loop, which resumes from
`last.pt`. A run's model is rebuilt from its `config.json` by `textseld.train.rebuild`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from textseld import __version__
from textseld.atomic import write_text_atomic
from textseld.constants import HEAD_NAMES, IDENTITY, SOURCES, TEXTS
from textseld.models.pretrained import sha256_file
from textseld.train.config import TrainConfig
from textseld.train.encode import cache_record, encoded_cache, token_cache
from textseld.train.loop import fit, resolve_device, seed_everything
from textseld.train.rebuild import (
    TEXT_ENCODER_SEED,
    RunConfigError,
    build_run_model,
    make_task,
    model_config,
    plain_values,
    pretrain_run_config,
    read_run_config,
    text_encoder_config,
    text_encoder_record,
)

if TYPE_CHECKING:
    from textseld.models.systems import SeldTextModel

log = logging.getLogger(__name__)

KINDS = ("pretrain", "finetune", "baseline")
# Training keys that may differ between an interrupted run and its resumption.
RESUME_FREE_KEYS = ("device", "num_workers", "progress", "checkpoint_every_steps", "val_batch_size", "torch_threads")


# ------------------------------------------------------------------ helpers
def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise RunConfigError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def _weights_entry(info: dict | None) -> dict | str:
    return dict(info) if info else "random init"


# --------------------------------------------------------------- weights record
def weights_record(config: dict, model: nn.Module, encoder) -> dict:
    """Which weights the run's pretrained components started from (file + sha256, or random init)."""
    record: dict[str, Any] = {}
    if config["kind"] in ("pretrain", "finetune"):
        tok = getattr(model, "tokenizer", None)
        record["source_encoder"] = _weights_entry(getattr(tok, "weights_info", None))
    if encoder is not None:
        record["text_encoder"] = _weights_entry(encoder.weights_info)
    if config["kind"] == "finetune":
        best = Path(config["inputs"]["pretrained_dir"]) / "best.pt"
        record["pretrained_tokenizer"] = {"file": str(best), "sha256": sha256_file(best)}
    return record


# --------------------------------------------------------------- run directory
# Files of a run that a restart after a configuration change discards (and the loop's
# kept copies of the selected weights, KEPT_BEST_GLOB).
RUN_STATE_FILES = (
    "last.pt",
    "best.pt",
    "log.csv",
    "val_metrics.json",
    "weights.json",
    "split.json",
    "provenance.json",
)
# The input files whose content a run depends on (config["inputs"] keys; a directory
# stands for the best.pt in it). Their sha256 goes into config.json as "input_sha256".
HASHED_INPUTS = {"train_h5": None, "stats_h5": None, "texts": None, "pretrained_dir": "best.pt"}


def input_hashes(inputs: dict) -> dict[str, str]:
    """sha256 of the content of every input a run trains on (features, statistics, texts,
    the pretrained tokenizer): resuming on changed content would mix two trainings."""
    hashes = {}
    for key, member in HASHED_INPUTS.items():
        if inputs.get(key) is None:
            continue
        path = Path(inputs[key]) / member if member else Path(inputs[key])
        if not path.is_file():
            raise RunConfigError(f"{path}: input file not found (run input {key!r})")
        hashes[key] = sha256_file(path)
    return hashes


def _changed_keys(old: dict, new: dict) -> list[str]:
    """The configuration keys in which a run directory's config.json differs from a new run's."""
    changed = sorted(
        k
        for k in set(old) | set(new)
        if k not in ("inputs", "textseld_version", "train", "input_sha256") and old.get(k) != new.get(k)
    )
    # How a run is executed may change on resume (device, workers, ...), what it computes not.
    old_train, new_train = dict(old.get("train") or {}), dict(new.get("train") or {})
    changed += sorted(
        f"train.{k}"
        for k in set(old_train) | set(new_train)
        if k not in RESUME_FREE_KEYS and old_train.get(k) != new_train.get(k)
    )
    # What it trained on: the content of its inputs (a run without the record cannot be trusted).
    old_sha, new_sha = old.get("input_sha256"), new.get("input_sha256")
    if old_sha is None and new_sha is not None:
        changed.append("input_sha256 (not recorded by the old run)")
    elif new_sha is not None and old_sha is not None:
        changed += sorted(
            f"content of {old.get('inputs', {}).get(k, k)} ({k})"
            for k in set(old_sha) | set(new_sha)
            if old_sha.get(k) != new_sha.get(k)
        )
    return changed


def _prepare_run_dir(run_dir: Path, config: dict, on_config_change: str = "error") -> None:
    """Write config.json. A run directory holding a run started with another
    configuration is refused (on_config_change="error", the CLI default) or
    discarded and started afresh ("restart": the workflow, where Snakemake has
    already decided that the run is stale)."""
    if on_config_change not in ("error", "restart"):
        raise ValueError(f"on_config_change must be 'error' or 'restart', got {on_config_change!r}")
    path = run_dir / "config.json"
    if path.is_file() and (run_dir / "last.pt").is_file():
        from textseld.train.loop import KEPT_BEST_GLOB

        try:
            changed = _changed_keys(read_run_config(path), config)
        except RunConfigError as exc:  # what the run started with is not known: never resumed
            if on_config_change == "error":
                raise RunConfigError(f"{exc}; use a fresh run directory") from None
            changed = [str(exc)]
        if changed and on_config_change == "restart":
            log.warning(
                "%s: configuration or inputs changed (%s); discarding the old run and starting afresh",
                run_dir,
                ", ".join(changed),
            )
            for name in RUN_STATE_FILES:
                (run_dir / name).unlink(missing_ok=True)
            for kept in run_dir.glob(KEPT_BEST_GLOB):
                kept.unlink()
        elif changed:
            raise RunConfigError(
                f"{run_dir}: holds a run started with a different configuration "
                f"(differs in: {', '.join(changed)}); use a fresh run directory"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def _splits(run_dir: Path, train_h5, stats_h5, split):
    """Train / validation PackedDatasets carved from the training file by the shared split,
    and the validation refs. The statistics must come from the same training part; the
    validation clips are recorded in run_dir/split.json."""
    from textseld.data.hdf5 import PackedDataset
    from textseld.data.splits import check_stats_split, recording_key

    full = PackedDataset(train_h5, stats_h5)
    names = list(full.names)
    train_idx, val_idx = split.indices(names)
    try:
        check_stats_split(stats_h5, split, names, train_h5)
    except ValueError as exc:
        raise RunConfigError(str(exc)) from None
    val_names = [names[int(i)] for i in val_idx]
    write_text_atomic(
        run_dir / "split.json",
        json.dumps(
            {
                **split.to_dict(),
                "n_train": len(train_idx),
                "validation_recordings": sorted({"room{}_mix{:03d}".format(*recording_key(n)) for n in val_names}),
                "validation_clips": val_names,
            },
            indent=2,
        )
        + "\n",
    )
    refs = {n: np.asarray(full.label_rows(int(i)), dtype=np.float64) for n, i in zip(val_names, val_idx)}
    log.info(
        "%s: %d training clips, %d validation clips (split seed %d)", train_h5, len(train_idx), len(val_idx), split.seed
    )
    return (
        PackedDataset(train_h5, stats_h5, indices=train_idx.tolist()),
        PackedDataset(train_h5, stats_h5, indices=val_idx.tolist()),
        refs,
    )


def _param_groups(model: nn.Module, train_cfg: TrainConfig, kind: str) -> list[dict]:
    """One Adam group per learning rate; every trainable parameter in exactly one group.

    Finetuning: the model's `parameter_groups()` {"pretrained", "new"}; the
    frozen text encoder is in neither. Checked here, because a parameter in
    no group silently stops training and one in two groups trains twice.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if kind != "finetune":
        return [{"params": trainable, "lr": train_cfg.lr, "name": "all"}]
    text_model = cast("SeldTextModel", model)  # kind "finetune"
    groups = text_model.parameter_groups()
    pretrained, new = list(groups["pretrained"]), list(groups["new"])
    ids = [id(p) for p in pretrained + new]
    if len(set(ids)) != len(ids) or set(ids) != {id(p) for p in trainable}:
        raise RuntimeError("model.parameter_groups() must put every trainable parameter in exactly one group")
    text_trainable = [n for n, p in text_model.text_encoder.named_parameters() if p.requires_grad]
    if text_trainable:
        raise RuntimeError(f"text encoder parameters are trainable after lock(): {text_trainable[:3]}")
    return [
        {"params": pretrained, "lr": train_cfg.lr_pretrained, "name": "pretrained"},
        {"params": new, "lr": train_cfg.lr_new, "name": "new"},
    ]


def make_optimizer(model: nn.Module, train_cfg: TrainConfig, kind: str) -> torch.optim.Adam:
    groups = [g for g in _param_groups(model, train_cfg, kind) if g["params"]]
    return torch.optim.Adam(groups, weight_decay=train_cfg.weight_decay)


def _check_store_names(store, train_h5) -> None:
    """The text store must list the packed file's clips in the same order (clip indices are shared)."""
    from textseld.data.hdf5 import PackedDataset

    names = list(PackedDataset(train_h5).names)
    if list(store.names) != names:
        raise RunConfigError(
            f"{store.path}: its clips are not those of {train_h5} in the same order; "
            f"rebuild it from that file with `textseld make-texts`"
        )


# ------------------------------------------------------------------ training
def _train(
    run_dir,
    config: dict,
    train_cfg: TrainConfig,
    make: Callable[[nn.Module, Any], Any],
    on_step=None,
    on_config_change: str = "error",
    setup: Mapping | None = None,
) -> dict:
    run_dir = Path(run_dir)
    config["input_sha256"] = input_hashes(config["inputs"])
    train_h5, stats_h5 = config["inputs"]["train_h5"], config["inputs"]["stats_h5"]
    # cached tokens are checked before the run directory is touched
    tokens, encoded = config["inputs"].get("tokens"), config["inputs"].get("encoded_validation")
    encoded_train = config["inputs"].get("encoded_train")
    cache = token_cache(config, tokens, train_h5, stats_h5) if tokens else None
    if encoded or encoded_train:
        cache_record(config, train_h5, stats_h5)  # fails early for a run that is not fixed
    created, resumable = not run_dir.exists(), (run_dir / "last.pt").is_file()
    try:
        return _train_in(run_dir, config, train_cfg, make, on_step, on_config_change, cache, setup)
    except BaseException:
        if run_dir.is_dir() and not resumable and not (run_dir / "last.pt").is_file():  # nothing to resume
            _clear_run_dir(run_dir, remove=created)
        raise


def _clear_run_dir(run_dir: Path, remove: bool) -> None:
    """Remove what a run that failed before its first checkpoint wrote (and the folder, when
    `remove` and it is empty)."""
    from textseld.train.loop import KEPT_BEST_GLOB

    for name in ("config.json", *RUN_STATE_FILES):
        (run_dir / name).unlink(missing_ok=True)
    for kept in run_dir.glob(KEPT_BEST_GLOB):
        kept.unlink()
    if remove and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _train_in(
    run_dir: Path, config: dict, train_cfg: TrainConfig, make, on_step, on_config_change: str, cache, setup
) -> dict:
    """_train once its inputs are checked: from the run directory on."""
    train_h5, stats_h5 = config["inputs"]["train_h5"], config["inputs"]["stats_h5"]
    encoded, encoded_train = config["inputs"].get("encoded_validation"), config["inputs"].get("encoded_train")
    _prepare_run_dir(run_dir, config, on_config_change)
    seed = int(config["seed"])
    device = resolve_device(train_cfg.device)
    seed_everything(seed, train_cfg.deterministic, device)
    if train_cfg.torch_threads:
        torch.set_num_threads(train_cfg.torch_threads)
    from textseld.data.splits import SplitConfig

    # (the split and the cached files draw nothing from the RNGs seeded above)
    train_set, val_set, refs = _splits(run_dir, train_h5, stats_h5, SplitConfig.from_dict(config["split"]))
    if setup is not None:  # what the run is produced with: recorded now, joined by the results tables
        from textseld.provenance import run_provenance, write_provenance

        write_provenance(run_dir, run_provenance(setup, config["kind"], config["text"], len(train_set), len(val_set)))
    if train_cfg.channel_swap:  # training clips only; validation sees them as recorded
        from textseld.train.augment import ChannelSwap

        train_set = ChannelSwap(train_set, train_cfg.channel_swap, seed)
    val_cache = encoded_cache(config, encoded, train_h5, stats_h5, list(refs)) if encoded else None
    train_cache = (
        encoded_cache(config, encoded_train, train_h5, stats_h5, train_set.item_names()) if encoded_train else None
    )
    if cache is not None and config["text"] == IDENTITY:
        # the identity control's outputs under any template are its tokens: the token cache is
        # its encoded cache, of the validation clips and, with fixed training templates, the
        # training clips (nothing to compute before the head, no encode_sentences)
        from textseld.models.text_identity import IdentityTextEncoder

        val_cache = cache.as_encoded(IdentityTextEncoder.encoded_from_tokens)
        if train_cfg.train_templates == "fixed":
            train_cache, cache = val_cache, None
    # When training and validation read every text-encoder output from files, the encoder is
    # not built: its record in those files stands in for it (see RecordedTextEncoder).
    recorded = train_cache.text_encoder() if train_cache is not None and val_cache is not None else None
    model, encoder = build_run_model(config, device="cpu", text_encoder=recorded)
    task = make(model, encoder)
    write_text_atomic(run_dir / "weights.json", json.dumps(weights_record(config, model, encoder), indent=2) + "\n")
    model.to(device)
    optimizer = make_optimizer(model, train_cfg, config["kind"])
    if cache is not None:
        train_set = cache.wrap(train_set)
        val_set = val_set if val_cache is not None else cache.wrap(val_set)
    if val_cache is not None:  # validation needs nothing before the head
        val_set = val_cache.wrap(val_set)
    if train_cache is not None:  # nor does training, with fixed templates
        train_set = train_cache.wrap(train_set)
        if train_cfg.shuffle_frames:  # batches of frames dealt across clips
            from textseld.train.frames import ShuffledFrames

            train_set = ShuffledFrames(train_set, seed, progress=train_cfg.progress)
    return fit(run_dir, task, optimizer, train_set, val_set, refs, train_cfg, seed, device, on_step=on_step)


def _base_config(kind: str, seed: int, model_cfg, train_cfg: TrainConfig, inputs: dict, split, **names) -> dict:
    from textseld.data.splits import SplitConfig

    return {
        "kind": kind,
        "seed": int(seed),
        **names,
        "model": plain_values(model_cfg),
        "train": plain_values(train_cfg),
        "split": SplitConfig.from_dict(split).to_dict(),
        # absolute: the run directory is used from other working directories (predict)
        "inputs": {k: os.path.abspath(v) for k, v in inputs.items()},
        "textseld_version": __version__,
    }


def pretrain(
    run_dir,
    train_h5,
    stats_h5,
    source: str,
    *,
    model_cfg=None,
    train_cfg=None,
    seed: int = 0,
    on_step=None,
    on_config_change: str = "error",
    split=None,
    setup: Mapping | None = None,
) -> dict:
    """Pretrain the tokenizer of `source` ("rcc"|"beats") with a linear head on ADPIT.

    on_config_change: what to do when run_dir holds a run with another
    configuration: "error" (default) or "restart" (discard it). split: the
    validation split shared by every run (SplitConfig or its dict; None = the
    defaults), the one `stats_h5` was computed without. setup: the resolved workflow config, if
    any: what the run is produced with goes into run_dir/provenance.json (textseld.provenance)."""
    _choice(source, SOURCES, "source encoder")
    mcfg, tcfg = model_config(model_cfg), TrainConfig.coerce(train_cfg)
    config = _base_config(
        "pretrain",
        seed,
        mcfg,
        tcfg,
        {"train_h5": train_h5, "stats_h5": stats_h5},
        split,
        source=source,
        text=None,
        head="pretrain",
    )
    return _train(run_dir, config, tcfg, lambda m, e: make_task(config, m, tcfg), on_step, on_config_change, setup)


def train_baseline(
    run_dir,
    train_h5,
    stats_h5,
    *,
    model_cfg=None,
    train_cfg=None,
    seed: int = 0,
    on_step=None,
    on_config_change: str = "error",
    split=None,
    setup: Mapping | None = None,
) -> dict:
    """Train the DCASE2025 audio-only baseline (ADPIT; train_cfg: its whole training section, e.g.
    a recipe's, textseld.recipes); on_config_change, split and setup as in pretrain."""
    mcfg, tcfg = model_config(model_cfg), TrainConfig.coerce(train_cfg)
    config = _base_config(
        "baseline",
        seed,
        mcfg,
        tcfg,
        {"train_h5": train_h5, "stats_h5": stats_h5},
        split,
        source=None,
        text=None,
        head=None,
    )
    return _train(run_dir, config, tcfg, lambda m, e: make_task(config, m, tcfg), on_step, on_config_change, setup)


def finetune(
    run_dir,
    train_h5,
    stats_h5,
    texts,
    pretrained_dir,
    source: str,
    text: str,
    head: str,
    *,
    model_cfg=None,
    text_cfg=None,
    train_cfg=None,
    seed: int = 0,
    on_step=None,
    cache_gt: bool = True,
    on_config_change: str = "error",
    split=None,
    tokens=None,
    encoded=None,
    encoded_train=None,
    setup: Mapping | None = None,
) -> dict:
    """Finetune `source`-`text`-`head` from the pretrained tokenizer in `pretrained_dir`.

    texts: the TextStore file of the training split (None: only for the identity control, which
    reads no sentence). cache_gt=False embeds
    the ground-truth sentences anew every step (for benchmarks only).
    on_config_change, split and setup as in `pretrain`; the pretraining must have used the same split.
    tokens: the fixed tokenizer's tokens of `train_h5` (`textseld.train.encode.encode_tokens`),
    read instead of running the tokenizer; only with train_cfg's freeze_tokenizer.
    encoded: the fixed-template text-encoder outputs of the validation clips
    (`textseld.train.encode.encode_sentences`), which validation then reads; likewise.
    encoded_train: those of the training clips (`encode_sentences` with `train_out`), which the
    training steps then read: only with freeze_tokenizer and train_templates "fixed"; all
    frames of every clip then train the head (text_frames_per_clip does not apply), in batches of
    whole clips or, with train_cfg's shuffle_frames (which needs encoded_train), of frames
    dealt across clips.
    text "identity": the control (textseld.models.text_identity), whose outputs are its tokens:
    `tokens` stand in for encoded and encoded_train (which it refuses), and its loss has no
    alignment term (config.json: "alignment_loss": false).
    """
    _choice(source, SOURCES, "source encoder")
    _choice(text, TEXTS, "text encoder")
    _choice(head, HEAD_NAMES, "head")
    mcfg, xcfg = model_config(model_cfg), text_encoder_config(text_cfg)
    tcfg = TrainConfig.coerce(train_cfg).for_head(head)
    pcfg = pretrain_run_config(pretrained_dir, source)  # fail before touching the run directory
    _check_cached_outputs(tcfg, tokens, encoded, encoded_train, text)
    if texts is None and text != IDENTITY:
        raise RunConfigError(
            f"finetuning {source}-{text}-{head}: its alignment term needs the training split's sentences: "
            "give texts (a text store from `textseld make-texts`); only the identity control has none"
        )
    config = _base_config(
        "finetune",
        seed,
        mcfg,
        tcfg,
        {
            "train_h5": train_h5,
            "stats_h5": stats_h5,
            **({"texts": texts} if texts is not None else {}),
            "pretrained_dir": pretrained_dir,
            **({"tokens": tokens} if tokens else {}),
            **({"encoded_validation": encoded} if encoded else {}),
            **({"encoded_train": encoded_train} if encoded_train else {}),
        },
        split,
        source=source,
        text=text,
        head=head,
    )
    if pcfg.get("split") != config["split"]:
        raise RunConfigError(
            f"{pretrained_dir}: pretrained with validation split {pcfg.get('split')}, this "
            f"finetuning uses {config['split']}; its validation clips could be clips the "
            f"tokenizer trained on: use one validation split for every run"
        )
    config["text_encoder"] = text_encoder_record(xcfg)
    config["text_encoder_seed"] = TEXT_ENCODER_SEED
    if text == IDENTITY:  # the control: no sentence embedding, so no alignment (MAE) term
        config["alignment_loss"] = False
    make = functools.partial(_make_text_task, config, tcfg, texts, train_h5, cache_gt)
    return _train(run_dir, config, tcfg, make, on_step, on_config_change, setup)


def _check_cached_outputs(tcfg: TrainConfig, tokens, encoded, encoded_train, text: str | None = None) -> None:
    """A finetuning's cached tokenizer / text-encoder outputs fit its training settings (and its
    text encoder: the identity control's outputs are its tokens, read from `tokens` only)."""
    if text == IDENTITY and (encoded or encoded_train):
        raise RunConfigError(
            f"{encoded or encoded_train}: the identity control has no text encoder whose outputs are cached; "
            "its outputs are the fixed tokenizer's tokens: give those (tokens) instead"
        )
    if text == IDENTITY and tokens and tcfg.train_templates == "fixed":
        encoded_train = tokens  # its training clips' outputs under their templates are these tokens
    if (tokens or encoded or encoded_train) and not tcfg.freeze_tokenizer:
        raise RunConfigError(
            f"{tokens or encoded or encoded_train}: cached tokenizer outputs stand in for a fixed tokenizer; "
            f"set freeze_tokenizer to use them"
        )
    if encoded_train and tcfg.train_templates != "fixed":
        raise RunConfigError(
            f"{encoded_train}: the training clips' encodings are under their fixed templates; "
            f"set train_templates to 'fixed' to train on them (it is {tcfg.train_templates!r})"
        )
    if tcfg.shuffle_frames and not encoded_train:
        raise RunConfigError(
            "shuffle_frames deals the training clips' cached encodings (encoded_train) into batches "
            "of frames across clips; this finetuning computes its own: set shuffle_frames to false"
        )
    if tcfg.channel_swap and (tokens or encoded_train):
        raise RunConfigError(
            f"{tokens or encoded_train}: train.channel_swap ({tcfg.channel_swap}) swaps the channels of the "
            "features, and this finetuning trains on cached outputs computed from them: set channel_swap to 0"
        )


def _make_text_task(config: dict, tcfg: TrainConfig, texts, train_h5, cache_gt: bool, model: nn.Module, encoder):
    """A finetuning's Task: the sentences of the text store `texts` (whose clips must be those
    of `train_h5`), embedded by the frozen `encoder` (cached across steps unless not cache_gt)."""
    from textseld.models.text_encoders import GroundTruthCache
    from textseld.text.store import TextStore

    if config.get("alignment_loss") is False:  # the identity control: no sentence is read or embedded
        return make_task(config, model, tcfg)
    store = TextStore(texts)
    _check_store_names(store, train_h5)
    if cache_gt:
        gt_embed = GroundTruthCache(encoder).embed
    else:

        def gt_embed(sentences):
            with torch.no_grad():
                return encoder.embed_sentences(sentences)

    return make_task(config, model, tcfg, store.sentence, gt_embed)
