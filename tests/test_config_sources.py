"""The workflow config as typed (textseld.config_sources): a key given twice in a config file is
refused naming the file and line; `--config` values are read as YAML, as in a config file."""

from __future__ import annotations

import pytest
import yaml

from textseld.config_sources import ConfigSourceError, apply_overrides, check_config_file, typed_overrides


def _base_parse(entries: list[str]) -> dict:
    """What Snakemake makes of command-line entries (snakemake.cli.parse_config)."""
    from snakemake.cli import parse_config

    return parse_config(entries)


def test_a_key_given_twice_is_refused_naming_the_file_and_both_lines(tmp_path):
    path = tmp_path / "my setup.yaml"
    path.write_text("train:\n  finetune:\n    lr_new: 1.0e-3\n    epochs: 3\n    lr_new: 2.0e-3\nseeds: [0]\n")
    with pytest.raises(ConfigSourceError, match=r"my setup.yaml:5: key 'lr_new' is given twice .*first on line 3"):
        check_config_file(path)
    path.write_text("seeds: [0]\ntrain: {}\nseeds: [1]\n")  # top level too
    with pytest.raises(ConfigSourceError, match=r"my setup.yaml:3: key 'seeds'.*line 1"):
        check_config_file(path)
    # the same key in two different mappings, and a JSON file, are fine
    path.write_text("train:\n  pretrain: {lr: 1.0e-3}\n  finetune: {lr: 1.0e-3}\n")
    check_config_file(path)
    (tmp_path / "c.json").write_text('{"seeds": [0], "train": {"finetune": {"epochs": 2}}}')
    check_config_file(tmp_path / "c.json")
    (tmp_path / "d.json").write_text('{"seeds": [0],\n "seeds": [1]}')
    with pytest.raises(ConfigSourceError, match=r"d.json:2: key 'seeds'"):
        check_config_file(tmp_path / "d.json")
    path.write_text("train:\n  finetune: {lr: 1\n")
    with pytest.raises(ConfigSourceError, match=r"my setup.yaml:\d+: not valid YAML"):
        check_config_file(path)


@pytest.mark.parametrize(
    "entry, expected",
    [
        ("seeds=[0, 1]", {"seeds": [0, 1]}),
        ("train={finetune: {lr_new: 1.0e-3, epochs: 3}}", {"train": {"finetune": {"lr_new": 1.0e-3, "epochs": 3}}}),
        (
            "train={finetune: {lr_new_by_head: null, freeze_tokenizer: false}}",
            {"train": {"finetune": {"lr_new_by_head": None, "freeze_tokenizer": False}}},
        ),
        ("features={shards: 0}", {"features": {"shards": 0}}),
        ("data={train_splits: [a, '1']}", {"data": {"train_splits": ["a", "1"]}}),
        ("grid=", {"grid": None}),
    ],
)
def test_override_values_are_typed_as_in_a_config_file(entry, expected):
    parsed = _base_parse([entry])
    typed = typed_overrides([entry], parsed)
    assert typed == expected
    assert typed == {k: yaml.safe_load(entry.partition("=")[2]) or None for k in typed}


def test_a_yaml_syntax_error_in_an_override_names_the_key():
    entry = "train={finetune: {lr_new: 1.0e-3}"
    parsed = _base_parse([entry])
    assert parsed == {"train": "{finetune: {lr_new: 1.0e-3}"}  # Snakemake keeps it as one string
    with pytest.raises(ConfigSourceError, match=r"--config train=\{finetune.*not valid YAML .*column"):
        typed_overrides([entry], parsed)


def test_values_snakemake_was_given_typed_are_left_alone():
    # the API route: Snakemake hands its typed values on as their repr
    parsed = {"train": {"finetune": {"lr_new_by_head": None}}, "seeds": [0]}
    entries = [f"{k}={v!r}" for k, v in parsed.items()]
    assert typed_overrides(entries, parsed) == {"seeds": [0]}
    # a top-level number Snakemake read as a float stays one
    assert typed_overrides(["x=1e3"], {"x": 1000.0}) == {}


def test_overrides_merge_mapping_by_mapping():
    config = {"train": {"finetune": {"lr_new": "1.0e-3", "epochs": 12}, "baseline": {"epochs": 20}}, "seeds": ["0"]}
    apply_overrides(config, {"train": {"finetune": {"lr_new": 1.0e-3}}, "seeds": [0]})
    assert config == {"train": {"finetune": {"lr_new": 1.0e-3, "epochs": 12}, "baseline": {"epochs": 20}}, "seeds": [0]}
