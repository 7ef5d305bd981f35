"""The fixed tokenizer's cached outputs: computing them and handing them, checked, to a run.

`encode_tokens` writes the tokens of every clip by a pretrain run's tokenizer;
`encode_sentences` the text encoder's outputs of every frame under each clip's fixed
template (METHOD.md section 6, "A fixed tokenizer"). `token_cache` and `encoded_cache`
open such a file for a finetuning or prediction run, checked against what the run
computes from. The file format is `textseld.train.tokens`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import cast

import torch
from tqdm import tqdm

from textseld.data.hdf5 import PackedDataset, read_names
from textseld.data.splits import SplitConfig
from textseld.models.pretrained import sha256_file
from textseld.text.sentences import fixed_template
from textseld.train.checkpoint import load_trainable_state, read_checkpoint
from textseld.train.loop import make_loader, resolve_device, to_device
from textseld.train.rebuild import (
    TEXT_ENCODER_SEED,
    RunConfigError,
    build_run_model,
    pretrain_run_config,
    run_config,
    text_encoder_record,
)
from textseld.train.tasks import fixed_template_ids
from textseld.train.tokens import ENCODER_SHAPE_ATTR, ClipArrays, TokenCacheError, write_clip_arrays

log = logging.getLogger(__name__)


def cache_record(config: dict, features_h5, stats_h5) -> dict:
    """What a cached file for this finetuning run must have been computed from."""
    if config.get("kind") != "finetune" or not config.get("train", {}).get("freeze_tokenizer"):
        raise RunConfigError(
            f"cached tokenizer outputs stand in for a fixed tokenizer; this run ({config.get('kind')}, "
            f"freeze_tokenizer {config.get('train', {}).get('freeze_tokenizer')}) computes its own"
        )
    return {
        "pretrained_best_sha256": sha256_file(Path(config["inputs"]["pretrained_dir"]) / "best.pt"),
        "features_sha256": sha256_file(features_h5),
        "stats_sha256": sha256_file(stats_h5),
    }


def token_cache(config: dict, tokens_h5, features_h5, stats_h5):
    """The fixed tokenizer's tokens of every clip of `features_h5` for a finetuning run (`config`),
    checked: the run keeps its tokenizer fixed, and the file holds the tokens of these clips by
    the run's pretrained tokenizer on these statistics (else RunConfigError)."""

    expect = cache_record(config, features_h5, stats_h5)
    try:
        return ClipArrays(tokens_h5, "tokens", names=read_names(features_h5), expect=expect)
    except TokenCacheError as exc:
        raise RunConfigError(str(exc)) from None


def encoded_cache(config: dict, encoded_h5, features_h5, stats_h5, names: list[str]):
    """The fixed-template text-encoder outputs of the clips `names` of `features_h5` for a
    finetuning run, checked like `token_cache` and against the run's text encoder."""

    expect = {
        **cache_record(config, features_h5, stats_h5),
        "text": config["text"],
        "text_encoder": config["text_encoder"],
        "text_encoder_seed": config.get("text_encoder_seed", -1),
    }
    try:
        return ClipArrays(encoded_h5, "encoded", names=names, expect=expect)
    except TokenCacheError as exc:
        raise RunConfigError(str(exc)) from None


def _pretrain_run(pretrained_dir: str | os.PathLike) -> tuple[dict, dict]:
    """(config.json of a finished pretrain run, the record of what its outputs are computed from)."""

    pdir = Path(pretrained_dir)
    cfg_path = pdir / "config.json"
    if not cfg_path.is_file():
        raise TokenCacheError(f"{cfg_path}: not found; {pdir} is not a finished pretrain run")
    source = str(run_config(pdir).get("source"))
    pcfg = pretrain_run_config(pdir, source)
    return pcfg, {"source": source, "pretrained_best_sha256": sha256_file(pdir / "best.pt")}


def _inputs_record(features_h5, stats_h5) -> dict:

    return {"features_sha256": sha256_file(features_h5), "stats_sha256": sha256_file(stats_h5)}


@torch.no_grad()
def encode_tokens(
    *,
    pretrained_dir: str | os.PathLike,
    features_h5: str | os.PathLike,
    stats_h5: str | os.PathLike,
    out: str | os.PathLike,
    batch_size: int = 16,
    threads: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Write the tokens of every clip of `features_h5` (standardised with `stats_h5`) by the
    pretrained tokenizer of `pretrained_dir` (its best.pt) to `out` (see textseld.train.tokens)."""

    if threads:
        torch.set_num_threads(threads)
    pcfg, record = _pretrain_run(pretrained_dir)
    best = Path(pretrained_dir) / "best.pt"
    model, _ = build_run_model(pcfg)
    load_trainable_state(model, read_checkpoint(best)["model"], best)
    dev = resolve_device(device)
    tokenizer = cast(torch.nn.Module, model.tokenizer).to(dev).eval()
    dataset = PackedDataset(features_h5, stats_h5)
    loader = make_loader(dataset, batch_size, None, 0, 0)

    def batches():
        for batch in tqdm(loader, desc=f"tokens of {Path(features_h5).name}", disable=not progress):
            streams = tokenizer(*(batch[k].to(dev) for k in ("src", "doa", "dist")))
            yield {"tokens": torch.stack(streams, dim=2).float().cpu().numpy()}  # (B, L, 3, D)

    attrs = {**record, **_inputs_record(features_h5, stats_h5)}
    path = write_clip_arrays(out, "tokens", dataset.names, batches(), attrs)
    log.info("wrote the %s tokens of %d clips of %s to %s", record["source"], len(dataset), features_h5, path)
    return path


@torch.no_grad()
def encode_sentences(
    *,
    pretrained_dir: str | os.PathLike,
    text: str,
    text_cfg: dict | None,
    stats_h5: str | os.PathLike,
    train_h5: str | os.PathLike | None = None,
    split=None,
    validation_out: str | os.PathLike | None = None,
    test_h5: str | os.PathLike | None = None,
    test_out: str | os.PathLike | None = None,
    train_out: str | os.PathLike | None = None,
    batch_size: int = 8,
    threads: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[Path, ...]:
    """Write what a finetuning with the fixed tokenizer of `pretrained_dir` and the frozen text
    encoder `text` (`text_cfg`) computes before its head for each part asked for: each frame's A
    and placeholder states under the clip's fixed template (see textseld.train.tokens).
    validation_out: those of the validation clips of `train_h5` (`split`: the shared validation
    split); test_out: those of every clip of `test_h5`; train_out: those of the training clips (the
    others of `train_h5`), for finetunings that keep each training clip's template fixed
    (train_templates "fixed"). At least one part; each its own file, the same whichever parts
    one call writes (the workflow writes one part per job: a test-split edit leaves the others).
    Returns the written paths: validation, test, train (those asked for, in this order)."""
    _check_parts(train_h5, validation_out, train_out, test_h5, test_out)
    if threads:
        torch.set_num_threads(threads)
    pcfg, record = _pretrain_run(pretrained_dir)
    encoder_record = text_encoder_record(text_cfg or {})
    dev = resolve_device(device)
    model, encoder = _fixed_tokenizer_model(pretrained_dir, pcfg, text, encoder_record, dev)
    record = {
        **record,
        "text": text,
        "text_encoder": encoder_record,
        "text_encoder_seed": TEXT_ENCODER_SEED,
        # what a run reading these outputs needs of the encoder instead of building it
        ENCODER_SHAPE_ATTR: {"width": encoder.width, "embed_dim": encoder.embed_dim, "weights": encoder.weights_info},
    }
    lengths = encoder.template_lengths()

    def by_template_length(features_h5, names, indices):
        """The clips `indices` of `features_h5` (clip names `names`), ordered by their fixed
        template's length, so that a batch is padded little (the files are read by clip name:
        their row order is free)."""
        order = sorted(indices, key=lambda i: lengths[fixed_template(names[i])])
        return PackedDataset(features_h5, stats_h5, indices=order)

    parts = []
    if train_h5 is not None:
        names = PackedDataset(train_h5).names
        train_idx, val_idx = SplitConfig.from_dict(split).indices(names)
        if validation_out is not None:
            parts.append((by_template_length(train_h5, names, val_idx.tolist()), train_h5, validation_out))
    if test_h5 is not None and test_out is not None:
        test_names = PackedDataset(test_h5).names
        parts.append((by_template_length(test_h5, test_names, range(len(test_names))), test_h5, test_out))
    if train_h5 is not None and train_out is not None:
        parts.append((by_template_length(train_h5, names, train_idx.tolist()), train_h5, train_out))
    written = []
    for dataset, features_h5, out in parts:
        attrs = {**record, **_inputs_record(features_h5, stats_h5)}
        written.append(_write_encoded(model, dataset, features_h5, out, attrs, text, batch_size, dev, progress))
    return tuple(written)


def _check_parts(train_h5, validation_out, train_out, test_h5, test_out) -> None:
    """Each part's output with its input, and at least one part (else ValueError, naming them)."""
    if validation_out is None and train_out is None and test_out is None:
        raise ValueError(
            "encode_sentences: no part to write; give validation_out and/or train_out (with train_h5), "
            "and/or test_out (with test_h5)"
        )
    if (validation_out is not None or train_out is not None) != (train_h5 is not None):
        raise ValueError(
            f"encode_sentences: train_h5 ({train_h5}) is read for, and only for, validation_out "
            f"({validation_out}) and train_out ({train_out}): give it with at least one of them"
        )
    if (test_out is None) != (test_h5 is None):
        raise ValueError(f"encode_sentences: test_h5 ({test_h5}) and test_out ({test_out}) go together")


def _fixed_tokenizer_model(pretrained_dir, pcfg: dict, text: str, encoder_record: dict, dev: torch.device):
    """(model in eval mode, text encoder) of a finetuning with the fixed tokenizer of the pretrain
    run `pretrained_dir` (config `pcfg`) and the frozen text encoder `text`: what comes before
    the head is the same for every head and seed, so one model computes it for all of them."""
    config = {
        "kind": "finetune",
        "seed": 0,
        "text_encoder_seed": TEXT_ENCODER_SEED,
        "source": pcfg["source"],
        "text": text,
        "head": "trep",
        "model": pcfg["model"],
        "text_encoder": encoder_record,
        "inputs": {"pretrained_dir": os.path.abspath(pretrained_dir)},
        "train": {"freeze_tokenizer": True},
    }
    model, encoder = build_run_model(config, device=dev)
    model.eval()
    return model, encoder


def _write_encoded(model, dataset, features_h5, out, attrs: dict, text: str, batch_size: int, dev, progress: bool):
    """Write A and the placeholder states of every frame of the clips of `dataset` (under each
    clip's fixed template) to `out`, an "encoded" file with `attrs`; returns its path."""
    loader = make_loader(dataset, batch_size, None, 0, 0)
    names = dataset.item_names()

    def batches():
        for batch in tqdm(loader, desc=f"{text} outputs of {Path(features_h5).name}", disable=not progress):
            a, hidden = model.encode(to_device(batch, dev), fixed_template_ids(batch["name"], dev))
            yield {"A": a.float().cpu().numpy(), "hidden": hidden.float().cpu().numpy()}

    path = write_clip_arrays(out, "encoded", names, batches(), attrs)
    log.info("wrote the %s outputs of %d clips of %s to %s", text, len(names), features_h5, path)
    return path
