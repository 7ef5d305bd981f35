"""Model factory: names + configs -> the pretraining model, the text models, the baseline, the text encoders.

    build_model("rcc", None, "pretrain", cfg)                -> PretrainModel
    build_model("beats", "clip", "grep", cfg, text_encoder)  -> SeldTextModel
    build_baseline(cfg)                                      -> BaselineCRNN
    build_text_encoder("bert", text_cfg)                     -> BertTextEncoder (frozen)
    build_text_encoder("identity", width=D)                  -> IdentityTextEncoder (the control)
    encoder_width("clip", text_cfg)                          -> D, without building

The model classes live in `systems.py` and `baseline.py`, the text encoders in
`text_clip.py` / `text_bert.py` (imported on first use: open_clip and
transformers are slow to import).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from torch import nn

from textseld.constants import IDENTITY, SOURCES, TEXTS
from textseld.models.baseline import BaselineCRNN
from textseld.models.config import ModelConfig
from textseld.models.systems import HEADS, PretrainModel, SeldTextModel
from textseld.models.text_config import BERT_PRESETS, TextEncoderConfig
from textseld.models.text_encoders import TextEncoder


def build_model(
    source: str, text: str | None, head: str, cfg: ModelConfig, text_encoder: TextEncoder | None = None
) -> nn.Module:
    """source in ("rcc", "beats"); head "pretrain" (text None) or "grep"/"trep" (text "clip"/"bert").

    Finetuning models need the built text encoder (`build_text_encoder`),
    whose `.width` must equal cfg.token_width.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source encoder {source!r}; valid: {', '.join(SOURCES)}")
    if head == "pretrain":
        if text is not None or text_encoder is not None:
            raise ValueError("the pretraining model has no text encoder: pass text=None and no text_encoder")
        return PretrainModel(source, cfg)
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; valid: pretrain, {', '.join(HEADS)}")
    if text not in TEXTS:
        raise ValueError(f"unknown text encoder {text!r}; valid: {', '.join(TEXTS)}")
    if text_encoder is None:
        raise ValueError(f"head {head!r} needs a built {text!r} text encoder (text_encoder=None given)")
    width = getattr(text_encoder, "width", None)
    if width != cfg.token_width:
        raise ValueError(
            f"text encoder {text!r} has width {width} but models.token_width is "
            f"{cfg.token_width}; set token_width to the text encoder's width"
        )
    return SeldTextModel(source, head, cfg, text_encoder)


def build_baseline(cfg: ModelConfig) -> BaselineCRNN:
    """The DCASE2025 baseline CRNN; forward(batch) -> ((B, L, 117), {}), forward_features(logmel_lr)."""
    return BaselineCRNN(cfg)


def build_text_encoder(kind: str = "clip", cfg: Any = None, width: int | None = None) -> TextEncoder:
    """Build the "clip" or "bert" text encoder from a TextEncoderConfig (or a
    dict of its fields). Locked unless cfg.lock is False. "identity" builds the control
    (textseld.models.text_identity: no text encoder, no weights) for tokens of `width` D,
    which it needs (the others' width is their own)."""
    config = TextEncoderConfig.coerce(cfg)
    if kind == IDENTITY:
        from textseld.models.text_identity import IdentityTextEncoder

        if width is None:
            raise ValueError("the identity control needs the token width: build_text_encoder('identity', width=D)")
        enc = cast(TextEncoder, IdentityTextEncoder(width))
    elif kind == "clip":
        from textseld.models.text_clip import CLIPTextEncoder

        enc = CLIPTextEncoder(config)
    elif kind == "bert":
        from textseld.models.text_bert import BertTextEncoder

        enc = BertTextEncoder(config)
    else:
        raise ValueError(f"text encoder kind must be one of {', '.join(TEXTS)}, got {kind!r}")
    if config.lock:
        enc.lock()
    return enc


def encoder_width(kind: str, cfg: Any) -> int:
    """D of the encoder `kind` that `cfg` builds, without building it (no weights read)."""
    config = TextEncoderConfig.coerce(cfg)
    if kind == "clip":
        from textseld.models.text_clip import clip_text_cfg

        return int(clip_text_cfg(config)[0].width)
    if kind != "bert":
        raise ValueError(f"text encoder kind must be 'clip' or 'bert', got {kind!r}")
    if config.bert is not None:
        return int(BERT_PRESETS[config.bert]["arch"]["hidden_size"])
    bert_config = config.bert_config or {}
    if config.bert_random_init and bert_config.get("hidden_size"):
        return int(bert_config["hidden_size"])
    from textseld.models.text_bert import default_bert_path

    folder = Path(config.bert_path) if config.bert_path else default_bert_path()
    return int(json.loads((folder / "config.json").read_text(encoding="utf-8"))["hidden_size"])
