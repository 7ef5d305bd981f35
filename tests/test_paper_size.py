"""The paper setup at its real size: every model of the grid builds and takes an optimisation step.

config.yaml + paper.yaml are merged as Snakemake merges them and resolved by
the workflow's own check (benchmarks/bench_paper_size.paper_setup); only the
weights (random, in the exact shapes of the CLIP ViT-B-16 text tower, BERT
L-12 H-512 and BEATs base: nothing is downloaded), the run length (one step of
2 clips) and the device (CPU) change. Each of the 11 runs goes through
textseld.train.runs, as the workflow's rules call it. Minutes on 2 cores.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_paper_size import SYSTEMS, paper_setup, run_system, write_data

pytestmark = [pytest.mark.slow, pytest.mark.paper]


def test_every_paper_size_system_takes_one_step(tmp_path):
    import torch

    from textseld.models.beats import beats_arch

    torch.set_num_threads(2)
    setup = paper_setup("cpu", steps=1)
    assert setup["token_width"] == 512
    data = write_data(tmp_path / "data", n_train=2)
    runs = tmp_path / "runs"
    for system in SYSTEMS:  # pretrainings first: the finetunings load them
        run_system(system, setup, data, runs)
        run = runs / system
        rows = list(csv.DictReader((run / "log.csv").open()))
        assert len(rows) == 1 and int(rows[0]["step"]) == 1, (system, rows)
        assert math.isfinite(float(rows[0]["loss"])), (system, rows)
        config = json.loads((run / "config.json").read_text())
        assert config["model"]["token_width"] == 512 and config["model"]["beats_arch"] == "base"
        assert config["model"]["rcc_channels"] == [64, 128, 256, 512] and config["model"]["d_model"] == 512
        assert len(json.loads((run / "split.json").read_text())["validation_clips"]) == 2
        weights = json.loads((run / "weights.json").read_text())
        if system == "pretrain-beats" or system.startswith("beats-"):
            assert weights["source_encoder"] == {"beats": "random init"}
        if "-clip-" in system:
            info = weights["text_encoder"]
            assert (
                info["arch"],
                info["pretrained"],
                info["width"],
                info["layers"],
                info["heads"],
                info["embed_dim"],
                info["quick_gelu"],
            ) == ("ViT-B-16", "openai", 512, 12, 8, 512, True)
            assert info["source"] == "random init"
        if "-bert-" in system:
            info = weights["text_encoder"]
            assert (info["width"], info["layers"], info["pooling"], info["source"]) == (
                512,
                12,
                "pooler",
                "random init",
            )
    arch = beats_arch("base")
    assert (arch["encoder_layers"], arch["encoder_embed_dim"], arch["encoder_attention_heads"]) == (12, 768, 12)
