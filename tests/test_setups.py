"""Shipped setups resolve to exactly what they document when layered over config.yaml.

The files are merged exactly as Snakemake merges --configfile files
(snakemake.utils.update_config, recursively key by key), validated against the
schema with its defaults filled (as rules/common.smk does), and resolved by
textseld.setups.resolve_setup, the function the workflow calls at start.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from textseld.models.config import ModelConfig
from textseld.models.text_clip import clip_text_cfg
from textseld.models.text_config import BERT_PRESETS, TextEncoderConfig
from textseld.setups import SetupError, resolve_setup

REPO = Path(__file__).resolve().parents[1]


def merged(*setup_files: str, extra: dict | None = None) -> dict:
    """config.yaml with the setup files layered over it as Snakemake does, schema defaults filled."""
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for name in setup_files:
        update_config(config, yaml.safe_load((REPO / name).read_text()))
    if extra:
        update_config(config, copy.deepcopy(extra))
    validate(config, str(REPO / "config/schema.yaml"), set_default=True)
    return config


def shapes(config: dict) -> dict:
    """Documented shape facts of a resolved setup (nothing is built)."""
    setup = resolve_setup(config)
    clip = TextEncoderConfig.from_dict(setup["text_encoders"]["clip"])
    text_cfg, embed_dim, quick_gelu = clip_text_cfg(clip)
    bert = TextEncoderConfig.from_dict(setup["text_encoders"]["bert"])
    model = ModelConfig.from_dict(setup["models"])
    return {
        "D": setup["token_width"],
        "model": model,
        "clip": (text_cfg.width, text_cfg.layers, text_cfg.heads, embed_dim, quick_gelu, clip.clip_pretrained),
        "bert": (bert.bert, BERT_PRESETS[bert.bert]["arch"], bert.bert_pooling, bert.bert_random_init),
    }


def test_paper_setup_has_the_paper_shapes():
    s = shapes(merged("config/paper.yaml"))
    assert s["D"] == 512 and s["model"].token_width == 512
    # the split is paper.yaml's own, not the embedded default's
    assert merged("config/paper.yaml")["train"]["validation_split"] == {"fraction": 0.1, "seed": 0}
    # the paper's finetuning, not the embedded default's budget settings
    finetune = merged("config/paper.yaml")["train"]["finetune"]
    assert finetune["freeze_tokenizer"] is False and finetune["max_steps_per_epoch"] is None
    assert finetune["distance_scale"] == 1.0 and finetune["text_frames_per_clip"] is None
    # CLIP ViT-B-16 text tower: width 512, 12 layers, 8 heads, A of 512, QuickGELU (openai weights)
    assert s["clip"] == (512, 12, 8, 512, True, "openai")
    assert s["bert"] == (
        "google/bert_uncased_L-12_H-512_A-8",
        {"hidden_size": 512, "num_hidden_layers": 12, "num_attention_heads": 8, "intermediate_size": 2048},
        "pooler",
        False,
    )
    m = s["model"]
    assert m.beats_arch == "base" and m.beats_checkpoint.endswith("BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt")
    assert m.rcc_channels == (64, 128, 256, 512) and m.d_model == 512 and m.rcc_conformer_blocks == 2


def test_default_and_tiny_setups_have_their_documented_shapes():
    s = shapes(merged())
    assert s["D"] == 384 and s["clip"][:4] == (384, 4, 6, 384) and s["clip"][5] is None
    assert s["bert"][0] == "all-MiniLM-L6-v2" and s["bert"][1]["hidden_size"] == 384 and not s["bert"][3]
    assert s["model"].beats_arch == "small" and s["model"].d_model == 64
    t = shapes(merged("config/tiny.yaml"))
    assert t["D"] == 64 and t["clip"][:4] == (64, 2, 2, 64) and t["bert"][1]["hidden_size"] == 64
    assert t["bert"][3] and t["model"].beats_arch == "tiny"


def test_a_setup_cannot_inherit_another_setups_shapes():
    """Shapes are chosen by name, so nothing shape-like is inherited; what is left of the setup
    underneath (here paper's weights paths under tiny's random encoders) is refused by name."""
    with pytest.raises(
        SetupError,
        match=r"text_encoders.clip \('random-64x2'\): .*'clip_weights': the clip "
        r"preset 'random-64x2' is randomly initialised and takes no weights",
    ):
        resolve_setup(merged("config/paper.yaml", "config/tiny.yaml"))
    extra = {"text_encoders": {"clip_weights": None, "bert_path": None}}
    p = shapes(merged("config/paper.yaml", "config/tiny.yaml", extra=extra))
    assert p["D"] == 64 and p["clip"][:4] == (64, 2, 2, 64) and p["model"].beats_arch == "tiny"


def test_setup_errors_name_the_config_key():
    with pytest.raises(
        SetupError,
        match=r"text_encoders.clip = 'ViT-B-16/openai' \(width 512\) and "
        r"text_encoders.bert = 'all-MiniLM-L6-v2' \(width 384\)",
    ):
        resolve_setup(merged(extra={"text_encoders": {"clip": "ViT-B-16/openai", "clip_weights": "x.pt"}}))
    with pytest.raises(SetupError, match=r"config key text_encoders.clip \('ViT-B-16/openai'\): .*'clip_weights'"):
        resolve_setup(merged(extra={"text_encoders": {"clip": "ViT-B-16/openai"}}))
    with pytest.raises(SetupError, match=r"text_encoders.bert \('bert-huge'\): .*unknown preset 'bert-huge'"):
        resolve_setup(merged(extra={"text_encoders": {"bert": "bert-huge"}}))
    with pytest.raises(SetupError, match=r"config section models: model config key 'beats_arch'"):
        resolve_setup(merged(extra={"models": {"beats_arch": "huge"}}))
    with pytest.raises(SetupError, match=r"config section train.finetune: .*'epochs'"):
        resolve_setup(merged(extra={"train": {"finetune": {"epochs": 0}}}))
    with pytest.raises(SetupError, match=r"train.validation_split: .*'fraction'"):
        resolve_setup(merged(extra={"train": {"validation_split": {"fraction": 2.0}}}))
    # the schema does not restate the dataclasses' constraints: the small preset's BEATs is accepted
    assert resolve_setup(merged(extra={"models": {"beats_arch": "small"}}))["token_width"] == 384
    config = merged()
    config["models"]["token_width"] = 512  # not a key of the schema either; the library names it too
    with pytest.raises(SetupError, match="models.token_width: the token width is the text encoders' width"):
        resolve_setup(config)


def test_a_pretrained_bert_folder_must_be_its_presets_architecture():
    from textseld.models.factory import build_text_encoder
    from textseld.models.text_bert import default_bert_path

    with pytest.raises(
        ValueError,
        match=r"not the BERT of preset 'google/bert_uncased_L-12_H-512_A-8' \(it has "
        r"\{'hidden_size': 384, 'num_hidden_layers': 6",
    ):
        build_text_encoder(
            "bert", {"bert": "google/bert_uncased_L-12_H-512_A-8", "bert_path": str(default_bert_path())}
        )
