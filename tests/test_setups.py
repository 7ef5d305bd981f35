"""Shipped setups resolve to exactly what they document when layered over config.yaml.

The files are merged exactly as Snakemake merges --configfile files
(snakemake.utils.update_config, recursively key by key), merged over their
recipe (textseld.recipes.apply_recipe), validated against the schema with its
defaults filled (as rules/common.smk does), and resolved by
textseld.setups.resolve_setup, the function the workflow calls at start.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from textseld.models.config import ModelConfig
from textseld.models.text_clip import clip_text_cfg
from textseld.models.text_config import BERT_PRESETS, TextEncoderConfig
from textseld.setups import SetupError, resolve_setup
from workflow_helpers import merged_config, resolved_config

REPO = Path(__file__).resolve().parents[1]


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
    s = shapes(merged_config("config/paper.yaml"))
    assert s["D"] == 512 and s["model"].token_width == 512
    # the split and the training are the paper's (docs/METHOD.md section 6), not the embedded default's
    train = _effective(merged_config("config/paper.yaml"))["train"]
    assert train["validation_split"] == {"fraction": 0.1, "seed": 0}
    paper = {"distance_scale": 1.0, "max_steps_per_epoch": None, "text_frames_per_clip": None, "device": "cuda"}
    expected = {
        "pretrain": {"epochs": 100, "batch_size": 8, "lr": 1e-4, "schedule": {"name": "cosine"}},
        "finetune": {
            **{"epochs": 50, "batch_size": 8, "lr_pretrained": 1e-6, "lr_new": 1e-4, "freeze_tokenizer": False},
            "train_templates": "random",
            "shuffle_frames": False,
            "lr_new_by_head": None,
            **{"mae_weight": 0.01, "adpit_weight": 1.0},
            "schedule": {"name": "multistep", "milestones": [10, 20, 30, 40, 45], "gamma": 0.1},
        },
        # the official DCASE2025 baseline recipe
        "baseline": {"epochs": 200, "batch_size": 256, "lr": 1e-3, "schedule": {"name": "constant"}},
    }
    for section, values in expected.items():
        got = {k: train[section][k] for k in {**paper, **values}}
        assert got == {**paper, **values}, section  # values read from YAML, no arithmetic: exact
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
    s = shapes(merged_config())
    assert s["D"] == 384 and s["clip"][:4] == (384, 4, 6, 384) and s["clip"][5] is None
    assert s["bert"][0] == "all-MiniLM-L6-v2" and s["bert"][1]["hidden_size"] == 384 and not s["bert"][3]
    assert s["model"].beats_arch == "small" and s["model"].d_model == 64
    t = shapes(merged_config("config/tiny.yaml"))
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
        resolve_setup(merged_config("config/paper.yaml", "config/tiny.yaml"))
    extra = {"text_encoders": {"clip_weights": None, "bert_path": None}}
    p = shapes(merged_config("config/paper.yaml", "config/tiny.yaml", extra=extra))
    assert p["D"] == 64 and p["clip"][:4] == (64, 2, 2, 64) and p["model"].beats_arch == "tiny"


def test_setup_errors_name_the_config_key():
    with pytest.raises(
        SetupError,
        match=r"text_encoders.clip = 'ViT-B-16/openai' \(width 512\) and "
        r"text_encoders.bert = 'all-MiniLM-L6-v2' \(width 384\)",
    ):
        resolve_setup(merged_config(extra={"text_encoders": {"clip": "ViT-B-16/openai", "clip_weights": "x.pt"}}))
    with pytest.raises(SetupError, match=r"config key text_encoders.clip \('ViT-B-16/openai'\): .*'clip_weights'"):
        resolve_setup(merged_config(extra={"text_encoders": {"clip": "ViT-B-16/openai"}}))
    with pytest.raises(SetupError, match=r"text_encoders.bert \('bert-huge'\): .*unknown preset 'bert-huge'"):
        resolve_setup(merged_config(extra={"text_encoders": {"bert": "bert-huge"}}))
    with pytest.raises(SetupError, match=r"config section models: model config key 'beats_arch'"):
        resolve_setup(merged_config(extra={"models": {"beats_arch": "huge"}}))
    with pytest.raises(SetupError, match=r"config section train.finetune: .*'epochs'"):
        resolve_setup(merged_config(extra={"train": {"finetune": {"epochs": 0}}}))
    with pytest.raises(SetupError, match=r"train.finetune.shuffle_frames: .*\(here True and 'random'\)"):
        resolve_setup(
            merged_config(extra={"train": {"finetune": {"shuffle_frames": True, "train_templates": "random"}}})
        )
    with pytest.raises(SetupError, match=r"train.validation_split: .*'fraction'"):
        resolve_setup(merged_config(extra={"train": {"validation_split": {"fraction": 2.0}}}))
    with pytest.raises(SetupError, match=r"config key grid.sources: expected distinct names out of rcc, beats"):
        resolve_setup(merged_config(extra={"grid": {"sources": ["rcc", "bets"]}}))
    with pytest.raises(SetupError, match=r"config key grid.heads: .*\['grep', 'grep'\]"):
        resolve_setup(merged_config(extra={"grid": {"heads": ["grep", "grep"]}}))
    grid = resolve_setup(merged_config(extra={"grid": {"texts": ["bert"], "baseline": False}}))["grid"]
    assert grid == {"sources": ["rcc", "beats"], "texts": ["bert"], "heads": ["grep", "trep"], "baseline": False}
    # the schema does not restate the dataclasses' constraints: the small preset's BEATs is accepted
    assert resolve_setup(merged_config(extra={"models": {"beats_arch": "small"}}))["token_width"] == 384
    config = merged_config()
    config["models"]["token_width"] = 512  # not a key of the schema either; the library names it too
    with pytest.raises(SetupError, match="models.token_width: the token width is the text encoders' width"):
        resolve_setup(config)


@pytest.mark.parametrize(
    "train, test",
    [
        (["dev-test-synth"], ["dev-test-synth"]),  # the test split trained on
        (["dev-train-synth", "dev-test-synth"], ["dev-test-synth"]),  # ... among others
        (["dev-train-synth", "./dev-test-b/"], ["dev-test-a", "dev-test-b"]),  # one of several, spelt otherwise
    ],
)
def test_training_on_a_test_split_is_refused_naming_both_keys(train, test):
    data = {"data": {"train_splits": train, "test_splits": test}}
    with pytest.raises(SetupError, match=r"data.train_splits and data.test_splits both list '.*dev-test.*'") as info:
        resolve_setup(merged_config(extra=data))
    assert "train.validation_split" in str(info.value)  # the validation clips would be test clips too
    separate = {"data": {"train_splits": ["dev-train-synth", "dev-test-synth-2"], "test_splits": ["dev-test-synth"]}}
    assert resolve_setup(merged_config(extra=separate))["grid"]


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


def _effective(config: dict) -> dict:
    """What a merged config means once every default is applied: the schema's (filled by
    `merged`) and the library's (training configs, split, scene, WPE, model and encoder setup)."""
    from dataclasses import asdict

    from textseld.data.splits import SplitConfig
    from textseld.data.synthesis.scene import SceneConfig
    from textseld.features.extract import wpe_settings
    from textseld.train.config import TrainConfig

    out = copy.deepcopy(config)
    train = out["train"]
    for kind in ("pretrain", "finetune", "baseline"):
        train[kind] = TrainConfig.coerce(train[kind]).to_dict()
    train["validation_split"] = asdict(SplitConfig.from_dict(train["validation_split"]))
    out["data"]["synthesis"]["scene"] = asdict(SceneConfig.from_dict(out["data"]["synthesis"]["scene"]))
    out["features"]["extract"]["wpe"] = wpe_settings(out["features"]["extract"].get("wpe"))
    setup = resolve_setup(out)
    out["models"], out["text_encoders"] = setup["models"], setup["text_encoders"]
    return out


def _leaves(tree: dict, path: tuple = ()) -> list[tuple]:
    found = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            found += _leaves(value, (*path, key))
        else:
            found.append((*path, key))
    return found


def _without(tree: dict, path: tuple) -> dict:
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return tree


@pytest.mark.parametrize(
    "layers",
    [
        ("config/config.yaml",),
        ("config/config.yaml", "config/tiny.yaml"),
        ("config/config.yaml", "config/paper.yaml"),
        ("config/config.yaml", "config/paper.yaml", "config/paper_cpu.yaml"),
    ],
)
def test_setup_files_hold_only_what_differs_from_the_defaults(layers):
    """nanoGPT-style config files: dropping any one key changes what the setup means,
    so no key restates a default (of the schema or of the library), the recipe or the layer below."""
    *below, top = layers
    base: dict = {}
    for name in below:
        update_config(base, yaml.safe_load((REPO / name).read_text()))
    top_yaml = yaml.safe_load((REPO / top).read_text())

    def resolved(top_tree: dict) -> dict:
        return _effective(resolved_config(base, top_tree))

    full = resolved(top_yaml)
    leaves = _leaves(top_yaml)
    assert len(leaves) > 10

    def restates(path: tuple) -> bool:
        try:
            return resolved(_without(top_yaml, path)) == full
        except Exception:  # a required key: the setup is invalid without it
            return False

    restated = [".".join(p) for p in leaves if restates(p)]
    assert restated == [], f"{top}: keys that restate a default or the file below: {restated}"


@pytest.mark.parametrize("kind", ["clip", "bert"])
def test_preset_width_agrees_with_the_libraries(kind):
    from textseld.models.factory import encoder_width
    from textseld.models.text_config import PRESETS, preset_width

    for name in PRESETS[kind]:
        assert preset_width(kind, name) == encoder_width(kind, {kind: name, "random_init": True}), name
    with pytest.raises(ValueError, match="unknown clip preset 'ViT-Z'"):
        preset_width("clip", "ViT-Z")


def test_resolving_a_setup_imports_no_deep_learning_library():
    """The workflow resolves its setup at every start (and, on a cluster, at every job's start):
    it must not pay for importing torch, open_clip or transformers (several seconds)."""
    import subprocess
    import sys

    code = (
        "import sys, yaml; from snakemake.utils import validate; from textseld.setups import resolve_setup; "
        "from textseld.recipes import apply_recipe; "
        f"c = apply_recipe(yaml.safe_load(open({str(REPO / 'config/config.yaml')!r}))); "
        f"validate(c, {str(REPO / 'config/schema.yaml')!r}); resolve_setup(c); "
        "print(sorted(m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
