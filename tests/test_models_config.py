"""ModelConfig presets and strict construction from dicts."""

import pytest

from textseld.models.config import ModelConfig


def test_presets_and_overrides():
    paper = ModelConfig.from_size("paper")
    assert paper.rcc_channels == (64, 128, 256, 512) and paper.d_model == 512
    assert paper.rcc_pools == ((5, 2), (1, 2), (1, 2), (1, 2))
    assert paper.rcc_conformer_blocks == 2 and paper.fusion_conformer_blocks == 2
    small = ModelConfig.from_size("small", token_width=256)
    assert small.rcc_channels == (16, 32, 32, 64) and small.token_width == 256
    assert ModelConfig.from_size("tiny").beats_arch == "tiny"


def test_from_dict_rejects_unknown_key_by_name():
    with pytest.raises(ValueError, match="'rcc_chanels'"):
        ModelConfig.from_dict({"rcc_chanels": [1, 2]})
    with pytest.raises(ValueError, match="unknown model size"):
        ModelConfig.from_size("huge")


def test_from_dict_lists_and_roundtrip():
    cfg = ModelConfig.from_dict({"size": "tiny", "rcc_channels": [2, 4, 4, 8], "d_model": 8})
    assert cfg.rcc_channels == (2, 4, 4, 8)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict({"rcc_pools": [[5, 2], [1, 2], [1, 2], [1, 2]]}).rcc_pools[0] == (5, 2)


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"d_model": 30, "n_heads": 8}, "n_heads"),
        ({"rcc_pools": [[5, 2]]}, "rcc_pools"),
        ({"dropout": 1.5}, "dropout"),
        ({"conv_kernel": 4}, "conv_kernel"),
        ({"beats_arch": "large"}, "beats_arch"),
    ],
)
def test_validation_names_the_key(bad, key):
    with pytest.raises(ValueError, match=key):
        ModelConfig.from_dict(bad)
