"""Rebuild a run's model from its record: the run directory's `config.json` and checkpoints.

`build_run_model` builds the model a `config.json` describes, under the run's seed: frozen
pretrained parts from their files (a frozen text encoder without weights under
TEXT_ENCODER_SEED), a finetuning's tokenizer from its pretrain run; `make_task` wraps it
in the training loop's Task. `load_run` adds the trainable weights of a checkpoint, for
prediction. The training entry points (`textseld.train.runs`) write these records,
prediction (`textseld.train.predict`) and the cached outputs (`textseld.train.encode`)
read them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from textseld.jsonfile import read_json_object
from textseld.train.checkpoint import load_full_state, load_trainable_state, read_checkpoint
from textseld.train.config import TrainConfig
from textseld.train.loop import resolve_device
from textseld.train.tasks import AudioTask, TextTask

if TYPE_CHECKING:
    from textseld.models.systems import SeldTextModel

# A frozen text encoder without weights (a random-init stand-in) is built under this seed, not
# the run's: like pretrained weights, the frozen encoder is the same in every seed's run.
TEXT_ENCODER_SEED = 0


class RunConfigError(ValueError):
    """A run's inputs or its directory do not fit together; the message names them."""


def model_config(value):
    """`value` as a ModelConfig (a mapping of its fields, or one already)."""
    from textseld.models.config import ModelConfig

    return value if isinstance(value, ModelConfig) else ModelConfig.from_dict(value or {})


def text_encoder_config(value):
    """`value` as a TextEncoderConfig (a mapping of its fields, or one already)."""
    from textseld.models.text_config import TextEncoderConfig

    return value if isinstance(value, TextEncoderConfig) else TextEncoderConfig.from_dict(value or {})


def text_encoder_record(text_cfg) -> dict:
    """A run's `text_encoder` entry: the encoder config as plain values, local weight files absolute."""
    record = plain_values(text_encoder_config(text_cfg))
    for key in ("clip_weights", "bert_path"):  # local weight files: absolute, like the inputs
        if record.get(key):
            record[key] = os.path.abspath(record[key])
    return record


def plain_values(cfg) -> dict:
    """A config (one with to_dict, a dataclass or a mapping) as JSON values, as a run records it."""
    if hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()
    elif dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        cfg = dataclasses.asdict(cfg)
    return json.loads(json.dumps(cfg, default=str))


def build_run_model(
    config: dict, device: torch.device | str = "cpu", load_pretrained: bool = True, text_encoder=None
) -> tuple[nn.Module, Any]:
    """Rebuild the model of a run from its config.json content (under the run's seed).

    Returns (model, text_encoder or None). Frozen pretrained parts are loaded
    from their files here, and a finetuning model's tokenizer from its
    pretrain run (unless load_pretrained=False); trainable weights come from
    a checkpoint later. text_encoder: a finetuning's encoder as the record of its cached
    outputs (`ClipArrays.text_encoder()`), used instead of building it, for a model that
    reads every output of its text encoder from such files.
    """
    from textseld.models.factory import build_baseline, build_model

    torch.manual_seed(int(config["seed"]))  # random-init frozen parts are rebuilt identically
    cfg = model_config(config["model"])
    kind = config["kind"]
    encoder = None
    model: nn.Module
    if kind == "baseline":
        model = build_baseline(cfg)
    elif kind == "pretrain":
        model = build_model(source=config["source"], text=None, head="pretrain", cfg=cfg)
    else:
        from textseld.models.factory import build_text_encoder

        if text_encoder is not None:  # its outputs are all read from files: not built
            encoder = text_encoder
        elif "text_encoder_seed" in config:  # the frozen encoder is the same for every seed
            encoder = build_frozen_text_encoder(
                config["text"], config["text_encoder"], config["text_encoder_seed"], cfg.token_width
            )
        else:  # runs written before text_encoder_seed: built under the run's seed
            encoder = build_text_encoder(config["text"], text_encoder_config(config["text_encoder"]), cfg.token_width)
        encoder.lock()
        if encoder.width != cfg.token_width:
            raise RunConfigError(
                f"text encoder {config['text']!r} has width {encoder.width} but the model "
                f"config's token_width is {cfg.token_width}; they must be equal"
            )
        model = build_model(
            source=config["source"], text=config["text"], head=config["head"], cfg=cfg, text_encoder=encoder
        )
        if load_pretrained:
            load_pretrained_tokenizer(model, config["inputs"]["pretrained_dir"], config["source"])
        if config.get("train", {}).get("freeze_tokenizer"):
            cast("SeldTextModel", model).freeze_tokenizer()
    return model.to(device), encoder


def build_frozen_text_encoder(text: str, text_cfg, seed: int = TEXT_ENCODER_SEED, width: int | None = None):
    """The frozen text encoder `text` (`text_cfg`: a run's `text_encoder` record or config) as every
    run with `text_encoder_seed` `seed` builds it (random-init parts under that seed, the caller's
    RNG stream untouched), locked. `width`: the token width, which the identity control needs."""
    from textseld.models.factory import build_text_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        encoder = build_text_encoder(text, text_encoder_config(text_cfg), width)
    return encoder.lock()


def make_task(config: dict, model: nn.Module, train_cfg: TrainConfig, sentence=None, gt_embed=None):
    """The loop's Task for a run's kind (predict-only when sentence/gt_embed are None)."""
    if config["kind"] != "finetune":
        return AudioTask(model, train_cfg.distance_scale, train_cfg.adpit_weight, train_cfg.distance_loss)
    from textseld.text.templates import TEMPLATES

    return TextTask(
        model,
        sentence,
        gt_embed,
        len(TEMPLATES),
        train_cfg.mae_weight,
        train_cfg.adpit_weight,
        train_cfg.distance_scale,
        train_cfg.text_frames_per_clip,
        train_cfg.train_templates,
        train_cfg.distance_loss,
        alignment=alignment_loss(config),
    )


def alignment_loss(config: dict) -> bool:
    """Whether a finetuning's loss has the alignment (MAE) term: every text system's does; an
    identity control's does not (config key "alignment_loss": false, written by
    textseld.train.runs.finetune): it has no sentence embedding."""
    value = config.get("alignment_loss", True)
    if not isinstance(value, bool):
        raise RunConfigError(f"run config key alignment_loss: expected true or false, got {value!r}")
    return value


def read_run_config(path: Path) -> dict:
    """A run's config.json; a damaged one is a RunConfigError naming it."""
    return read_json_object(path, "damaged run configuration", "the JSON object a run writes", RunConfigError)


def pretrain_run_config(pretrained_dir: str | os.PathLike, source: str) -> dict:
    """config.json of a finished pretrain run of `source`; clear errors otherwise."""
    pdir = Path(pretrained_dir)
    best, cfg_path = pdir / "best.pt", pdir / "config.json"
    if not best.is_file() or not cfg_path.is_file():
        missing = best if not best.is_file() else cfg_path
        raise RunConfigError(
            f"pretrained tokenizer not found: expected {missing} (run `textseld pretrain-tokenizer "
            f"--source {source} --out {pdir}` first)"
        )
    pcfg = read_run_config(cfg_path)
    if pcfg.get("kind") != "pretrain" or pcfg.get("source") != source:
        raise RunConfigError(
            f"{pdir}: is a {pcfg.get('kind')} run with source {pcfg.get('source')!r}; "
            f"finetuning needs a pretrain run with source {source!r}"
        )
    return pcfg


def load_pretrained_tokenizer(model: nn.Module, pretrained_dir: str | os.PathLike, source: str) -> None:
    """Put the tokenizer of a pretrain run (its best.pt) into `model.tokenizer`, frozen parts included.

    The pretrain model is rebuilt from its own config.json (so frozen parts
    that were randomly initialised, e.g. a BEATs transformer without a
    checkpoint file, are exactly the ones it was trained with), its best.pt
    loaded, and its whole tokenizer state copied.
    """
    pcfg = pretrain_run_config(pretrained_dir, source)
    best = Path(pretrained_dir) / "best.pt"
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
        pre_model, _ = build_run_model(pcfg)
    load_trainable_state(pre_model, read_checkpoint(best)["model"], best)
    load_full_state(cast(nn.Module, model.tokenizer), cast(nn.Module, pre_model.tokenizer).state_dict(), best)


def run_config(run_dir: str | os.PathLike) -> dict:
    """The config.json of a run directory (FileNotFoundError naming it when there is none)."""
    cfg_path = Path(run_dir) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: run configuration not found (is {run_dir} a run directory?)")
    return read_run_config(cfg_path)


def load_run(run_dir: str | os.PathLike, checkpoint: str = "best", device: str | None = None, text_encoder=None):
    """(config dict, predict-only Task on `device`, TrainConfig) of a finished or running run.
    text_encoder: as in `build_run_model`, for a prediction that reads every text-encoder output
    from cached files."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    train_cfg = TrainConfig.from_dict(config["train"])
    ckpt = Path(checkpoint) if checkpoint not in ("best", "last") else run_dir / f"{checkpoint}.pt"
    state = read_checkpoint(ckpt)
    dev = resolve_device(device or train_cfg.device)
    model, _ = build_run_model(config, device="cpu", text_encoder=text_encoder)
    load_trainable_state(model, state["model"], ckpt)
    model.to(dev).eval()
    return config, make_task(config, model, train_cfg), train_cfg, dev
