"""A whole workflow setup, resolved and checked by the library before any job runs.

The workflow's config is its recipe (textseld.recipes.apply_recipe) with
config/config.yaml and the setup files (tiny.yaml, paper.yaml, ...) merged over
it key by key. `resolve_setup` builds every
section that a job will hand to the library with the same config classes the
job uses (ModelConfig, TextEncoderConfig, TrainConfig, SplitConfig), so a bad
value fails at workflow start, naming its config key, instead of in the 40th
job. It also derives the one fact that two sections share: the token width D
is the width of the chosen text encoders (both must have it: one pretrained
tokenizer feeds both), never a second key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRAIN_KINDS = ("pretrain", "finetune", "baseline")


class SetupError(ValueError):
    """A setup that cannot run; the message names the config key."""


def encoder_section(text_encoders: Mapping[str, Any], txt: str) -> dict[str, Any]:
    """The keys of `text_encoders` that concern encoder `txt` ("clip" or "bert"): its preset
    name, its `<txt>_*` keys (e.g. clip_weights) and random_init. A finetuning's params carry only these,
    so changing the CLIP setting leaves the BERT runs alone. The identity control has no text
    encoder and no keys: {}."""
    from textseld.constants import IDENTITY

    if txt == IDENTITY:
        return {}
    return {k: v for k, v in text_encoders.items() if k in (txt, "random_init") or k.startswith(f"{txt}_")}


def resolve_grid(grid: Mapping[str, Any] | None) -> dict[str, Any]:
    """The systems of the table: {"sources", "texts", "heads": lists, "baseline": bool}.

    Omitted lists are every name the library knows (constants.SOURCES, TEXTS,
    HEAD_NAMES, in that order); a given list must name known ones, each once."""
    from textseld.constants import HEAD_NAMES, SOURCES, TEXTS

    grid = dict(grid or {})
    known = {"sources": SOURCES, "texts": TEXTS, "heads": HEAD_NAMES}
    out: dict[str, Any] = {}
    for key, valid in known.items():
        values = list(grid.get(key, valid))
        unknown = [v for v in values if v not in valid]
        if unknown or len(set(values)) != len(values):
            raise SetupError(
                f"config key grid.{key}: expected distinct names out of {', '.join(valid)}, got {values!r}"
            )
        out[key] = values
    out["baseline"] = bool(grid.get("baseline", True))
    return out


def check_no_leak(data: Mapping[str, Any]) -> None:
    """Refuse a `data` section whose training split folders overlap its test split folders
    (the validation split is carved out of the training folders, so it would hold test clips
    too). Folder names are compared normalised ("./a/" is "a"). Raises SetupError naming both keys."""
    import posixpath

    def folders(key: str) -> dict[str, str]:
        return {posixpath.normpath(str(f).replace("\\", "/")): str(f) for f in data.get(key) or []}

    train, test = folders("train_splits"), folders("test_splits")
    shared = sorted(train.keys() & test.keys())
    if shared:
        listed = ", ".join(repr(train[f]) for f in shared)
        raise SetupError(
            f"config keys data.train_splits and data.test_splits both list {listed}: models would be "
            "trained and selected (train.validation_split is carved out of the training folders) on "
            "clips they are tested on; give the test folders only under data.test_splits"
        )


def resolve_setup(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a merged workflow config and return what the rules pass on.

    config: the workflow config (schema defaults filled). Returns
    {"grid": resolve_grid's, "token_width": D, "models": the models section with token_width = D,
    "text_encoders": {txt: encoder section} for the encoders of grid.texts ({} for the identity control),
    "widths": {txt: D_txt}, "fixed_tokenizer": whether finetunings keep the pretrained tokenizer
    fixed (train.finetune.freeze_tokenizer), "encoded_training": whether they also keep each
    training clip's template fixed (train.finetune.train_templates), so that they train their
    heads on the text encoder's outputs computed once}. Raises SetupError naming the key.
    """
    from textseld.constants import IDENTITY
    from textseld.data.splits import SplitConfig
    from textseld.models.config import ModelConfig
    from textseld.models.text_config import TextEncoderConfig, preset_width
    from textseld.train.config import TrainConfig

    check_no_leak(config.get("data") or {})
    grid = resolve_grid(config.get("grid"))
    texts = grid["texts"]
    text_encoders = dict(config.get("text_encoders") or {})
    sections, widths, presets = {}, {}, {}
    for txt in texts:
        section = encoder_section(text_encoders, txt)
        if txt == IDENTITY:  # the control takes the tokens' width, whatever it is
            sections[txt] = section
            continue
        if section.get(txt) is None:
            raise SetupError(
                f"config key text_encoders.{txt}: grid.texts uses the {txt} encoder, so choose it "
                f"by preset name (see textseld.models.text_config.{txt.upper()}_PRESETS)"
            )
        try:
            TextEncoderConfig.from_dict(section)  # every key checked, the weights' presence too
            widths[txt] = preset_width(txt, section[txt])
        except (ValueError, OSError) as exc:
            raise SetupError(f"config key text_encoders.{txt} ({section[txt]!r}): {exc}") from None
        sections[txt], presets[txt] = section, section[txt]
    if len(set(widths.values())) > 1:
        listed = " and ".join(f"text_encoders.{t} = {presets[t]!r} (width {w})" for t, w in widths.items())
        raise SetupError(
            f"config keys {listed}: the text encoders of one setup must have the same width, "
            f"because one pretrained tokenizer feeds both; choose presets of equal width"
        )
    models = dict(config.get("models") or {})
    if "token_width" in models:
        raise SetupError(
            "config key models.token_width: the token width is the text encoders' width "
            "(text_encoders.clip / text_encoders.bert); do not set it"
        )
    try:
        width = next(iter(widths.values())) if widths else ModelConfig.from_dict(models).token_width
        ModelConfig.from_dict({**models, "token_width": width})
    except ValueError as exc:
        raise SetupError(f"config section models: {exc}") from None
    train = dict(config.get("train") or {})
    train_cfgs = {}
    for kind in TRAIN_KINDS:
        try:
            train_cfgs[kind] = TrainConfig.from_dict(train.get(kind) or {})
        except ValueError as exc:
            raise SetupError(f"config section train.{kind}: {exc}") from None
    fin = train_cfgs["finetune"]
    if fin.shuffle_frames and not (fin.freeze_tokenizer and fin.train_templates == "fixed"):
        raise SetupError(
            "config key train.finetune.shuffle_frames: frames are dealt across clips only from the "
            "training clips' cached encodings, i.e. with freeze_tokenizer true and train_templates "
            f"fixed (here {fin.freeze_tokenizer} and {fin.train_templates!r}); set it to false"
        )
    try:
        SplitConfig.from_dict(train.get("validation_split"))
    except ValueError as exc:
        raise SetupError(f"config section train.validation_split: {exc}") from None
    return {
        "grid": grid,
        "token_width": width,
        "models": {**models, "token_width": width},
        "text_encoders": sections,
        "widths": widths,
        "fixed_tokenizer": train_cfgs["finetune"].freeze_tokenizer,
        "encoded_training": train_cfgs["finetune"].freeze_tokenizer
        and train_cfgs["finetune"].train_templates == "fixed",
    }
