"""Recipes have one owner (textseld.recipes), and a setup resolves to its own recipe only.

Configs are resolved as rules/common.smk resolves them: the config files merged as
Snakemake merges --configfile files, the chosen recipe under them
(textseld.recipes.apply_recipe), the schema's defaults filled.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from textseld import recipes
from textseld.recipes import RecipeError, apply_recipe
from textseld.setups import resolve_setup
from textseld.train.config import TrainConfig
from workflow_helpers import merged_config

REPO = Path(__file__).resolve().parents[1]
KINDS = ("pretrain", "finetune", "baseline")


# The paper's training as the method describes it (docs/METHOD.md section 6), written out
# here: pretraining 100 epochs, batch 8, Adam 1e-4, cosine; finetuning 50 epochs, batch 8,
# Adam 1e-6 (tokenizer, trained) / 1e-4 (heads), divided by 10 at epochs 10, 20, 30, 40, 45,
# loss 0.01 MAE + 1 ADPIT, a template drawn per clip and step; the Baseline the official
# DCASE2025 recipe: 200 epochs, batch 256, Adam 1e-3 constant. Distances in metres.
PAPER_TRAINING = {
    "pretrain": {"epochs": 100, "batch_size": 8, "lr": 1e-4, "schedule": {"name": "cosine"}},
    "finetune": {
        "epochs": 50,
        "batch_size": 8,
        "lr_pretrained": 1e-6,
        "lr_new": 1e-4,
        "lr_new_by_head": None,
        "freeze_tokenizer": False,
        "train_templates": "random",
        "shuffle_frames": False,
        "schedule": {"name": "multistep", "milestones": [10, 20, 30, 40, 45], "gamma": 0.1},
        "mae_weight": 0.01,
        "adpit_weight": 1.0,
    },
    "baseline": {"epochs": 200, "batch_size": 256, "lr": 1e-3, "schedule": {"name": "constant"}},
}
# how config/paper.yaml runs it (resources, not the recipe)
PAPER_RUNS_ON = {"device": "cuda", "num_workers": 4, "progress": False}


def _paper_setup_is_the_papers_recipe(config: dict) -> None:
    defaults = TrainConfig().to_dict()
    for kind in KINDS:
        got = TrainConfig.from_dict(config["train"][kind]).to_dict()
        assert got == {**defaults, **PAPER_TRAINING[kind], "distance_scale": 1.0, **PAPER_RUNS_ON}, kind
    assert config["train"]["validation_split"] == {"fraction": 0.1}
    setup = resolve_setup(config)
    assert setup["models"]["size"] == "paper" and setup["token_width"] == 512
    assert set(setup["models"]) == {"size", "distance_activation", "beats_checkpoint", "token_width"}
    assert setup["models"]["distance_activation"] == "relu"  # the paper's layer
    assert setup["text_encoders"]["clip"]["clip"] == "ViT-B-16/openai"
    assert setup["text_encoders"]["bert"]["bert"] == "google/bert_uncased_L-12_H-512_A-8"


def test_the_paper_setup_resolves_to_the_papers_recipe():
    _paper_setup_is_the_papers_recipe(merged_config("config/paper.yaml"))


def test_a_departure_of_the_embedded_default_cannot_reach_the_paper_setup(monkeypatch):
    """Whatever the embedded default's recipe becomes, the paper setup stays the paper's."""
    changed = copy.deepcopy(recipes.RECIPES["default"])
    changed["models"].update(size="tiny", d_model=32, baseline_filters=16)
    changed["train"]["validation_split"] = {"fraction": 0.3, "seed": 7}
    for kind in KINDS:
        changed["train"][kind].update(epochs=2, batch_size=3, weight_decay=0.5, grad_clip=1.0, max_steps_per_epoch=2)
        changed["train"][kind]["text_frames_per_clip"] = 5
    changed["train"]["finetune"].update(mae_weight=0.5, lr_new_by_head={"grep": 0.1, "trep": 0.2})
    monkeypatch.setitem(recipes.RECIPES, "default", changed)
    default = merged_config()
    assert default["train"]["finetune"]["epochs"] == 2 and default["models"]["d_model"] == 32  # it did change
    _paper_setup_is_the_papers_recipe(merged_config("config/paper.yaml"))


def test_the_paper_recipe_uses_the_official_baseline_recipe():
    baseline = recipes.RECIPES["paper"]["train"]["baseline"]
    assert {k: baseline[k] for k in recipes.DCASE2025_BASELINE} == recipes.DCASE2025_BASELINE
    assert recipes.DCASE2025_BASELINE == PAPER_TRAINING["baseline"]


def test_every_recipe_states_the_same_keys():
    """No recipe leaves to the TrainConfig defaults a fact that another recipe sets, and none
    holds how a setup runs (device, workers: the setup file's)."""
    names = list(recipes.RECIPES)
    first = recipes.RECIPES[names[0]]
    for name in names[1:]:
        other = recipes.RECIPES[name]
        assert set(other) == set(first) == set(recipes.RECIPE_SECTIONS), name
        for section in ("models", "text_encoders"):
            assert set(other[section]) == set(first[section]), (name, section)
        for kind in (*KINDS, "validation_split"):
            assert set(other["train"][kind]) == set(first["train"][kind]), (name, kind)
    for name, recipe in recipes.RECIPES.items():
        for kind in KINDS:
            assert not set(recipe["train"][kind]) & set(recipes.EXECUTION_KEYS), (name, kind)
            TrainConfig.from_dict(recipe["train"][kind])  # every value valid


def test_the_config_files_overrides_apply_on_top_of_the_recipe():
    tiny = merged_config("config/tiny.yaml", extra={"train": {"finetune": {"lr_new_by_head": None, "epochs": 3}}})
    fin = tiny["train"]["finetune"]
    recipe = recipes.RECIPES["default"]["train"]["finetune"]
    assert fin["epochs"] == 3 and fin["batch_size"] == 4 and fin["lr_new_by_head"] is None  # files, --config
    assert fin["lr_new"] == recipe["lr_new"] and fin["schedule"] == recipe["schedule"]  # the recipe's
    assert tiny["models"]["size"] == "tiny" and tiny["text_encoders"]["clip"] == "random-64x2"
    assert tiny["train"]["validation_split"] == {"fraction": 0.25}
    # the recipe itself is a copy: resolving never changes it
    assert recipes.RECIPES["default"]["train"]["finetune"]["lr_new_by_head"] == {"trep": 1e-3}


def test_a_config_must_name_a_known_recipe():
    with pytest.raises(RecipeError, match=r"config key recipe: expected one of 'default', 'paper', got 'papr'"):
        apply_recipe({"recipe": "papr"})
    with pytest.raises(RecipeError, match=r"config key recipe: missing"):
        apply_recipe({"data": {"source": "synthetic"}})


def test_setup_files_say_what_they_are():
    """config.yaml and paper.yaml choose a recipe and hold no training fact of one: what
    they set under `train` is how the setup runs (device, workers, progress bars)."""
    for name, recipe in (("config/config.yaml", "default"), ("config/paper.yaml", "paper")):
        data = yaml.safe_load((REPO / name).read_text())
        assert data["recipe"] == recipe
        for kind, section in data.get("train", {}).items():
            assert set(section) <= set(recipes.EXECUTION_KEYS), (name, kind)
        assert "size" not in data.get("models", {}) and not {"clip", "bert"} & set(data.get("text_encoders", {}))


def test_the_baselines_and_paper_cpus_departures_are_stated():
    """Where the Baseline departs from the official DCASE2025 run, peak normalisation of every
    clip is listed with the rest; paper_cpu.yaml's header names its validation share."""
    paper = (REPO / "config/paper.yaml").read_text()
    method = (REPO / "docs/METHOD.md").read_text()
    baseline = method[method.index("### Baseline") : method.index("### Sizes")]
    for text in (paper, baseline):
        assert "peak-normalised" in text and "standardised" in text and "15 000" in text
    cpu = (REPO / "config/paper_cpu.yaml").read_text()
    header = cpu[: cpu.index("\ndata:")]
    share = yaml.safe_load(cpu)["train"]["validation_split"]["fraction"]
    paper_share = recipes.RECIPES["paper"]["train"]["validation_split"]["fraction"]
    assert f"validation share ({share} instead of\n# the recipe's {paper_share})" in header
