"""The Snakemake workflow: lint, config validation, planned jobs, a real tiny run and
exact stale reruns after config changes (dry-run job lists and reasons)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from workflow_helpers import REPO, dry_run, job_counts, snakemake, workflow_copy

pytestmark = pytest.mark.workflow

TABLE = "results/comparison.csv"


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    """A fresh working directory running the repository's workflow."""
    return workflow_copy(tmp_path_factory.mktemp("wf"))


@pytest.mark.parametrize(
    "extra",
    [[], ["--configfile", "config/tiny.yaml"], ["--configfile", "config/paper.yaml"]],
    ids=["default", "tiny", "paper"],
)
def test_lint_is_clean(wf, extra):
    proc = snakemake(wf, "--lint", *extra)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_unknown_config_key_is_rejected_with_its_name(wf):
    proc = snakemake(wf, "--dry-run", "--config", "trian={}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "'trian' was unexpected" in out
    proc = snakemake(wf, "--dry-run", "--config", "train={'finetune': {'lr_nwe': 1}}", check=False)
    assert proc.returncode != 0
    assert "'lr_nwe' was unexpected" in proc.stdout + proc.stderr


def test_config_overrides_set_nested_keys_with_their_types(wf):
    """`--config KEY=VALUE` values mean what they mean in a config file (README, "Configuration")."""
    jobs = dry_run(
        wf, "--configfile", "config/tiny.yaml", "--config", "seeds=[0, 1]", "train={finetune: {lr_new: 1.0e-3}}"
    )
    assert job_counts(jobs)["finetune"] == 12 * 2 and {j.wildcards["seed"] for j in jobs if j.rule == "finetune"} == {
        "0",
        "1",
    }


@pytest.mark.parametrize(
    "value, message",
    [
        ("train={finetune: {epochs: -1}}", "train.finetune: training config key 'epochs': expected a positive integer"),
        ("features={shards: 0}", "0 is less than the minimum of 1"),
        (
            "train={finetune: {lr_new: 1.0e-3}",
            "--config train={finetune: {lr_new: 1.0e-3}: the value is not valid YAML",
        ),
    ],
    ids=["negative epochs", "zero shards", "yaml syntax"],
)
def test_a_bad_override_fails_for_its_own_reason_naming_the_key(wf, value, message):
    proc = snakemake(wf, "--dry-run", "--configfile", "config/tiny.yaml", "--config", value, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out[-3000:]
    assert "is not of type" not in out
    if "shards" in value:
        assert "['features']['shards']" in out


def test_a_config_file_with_a_key_twice_is_refused_naming_the_file_and_line(wf, tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("seeds: [0]\ntrain:\n  finetune: {epochs: 2}\nseeds: [1]\n")
    proc = snakemake(wf, "--dry-run", "--configfile", "config/tiny.yaml", str(dup), check=False)
    assert proc.returncode != 0
    assert f"{dup}:4: key 'seeds' is given twice in one mapping (first on line 1)" in proc.stdout + proc.stderr


def test_training_on_a_test_split_is_refused_at_workflow_start(wf):
    proc = snakemake(wf, "--dry-run", "--config", "data={train_splits: [dev-train-synth, dev-test-synth]}", check=False)
    assert proc.returncode != 0
    assert "data.train_splits and data.test_splits both list 'dev-test-synth'" in proc.stdout + proc.stderr


def test_slurm_profile_is_found_by_name_before_a_users_own(wf, tmp_path):
    """`snakemake --profile slurm` as typed in the checkout uses profiles/slurm, also when the
    user has a profile of that name in ~/.config/snakemake (left alone)."""
    import subprocess
    import sys

    xdg = tmp_path / "xdg"
    own = xdg / "snakemake" / "slurm"
    own.mkdir(parents=True)
    (own / "config.yaml").write_text("executor: no-such-executor\n")
    env = {"XDG_CONFIG_HOME": str(xdg)}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "from snakemake.cli import get_profile_dir; print(get_profile_dir('slurm')[1].resolve())",
        ],
        cwd=wf,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    assert where.stdout.strip() == str((REPO / "profiles/slurm/config.yaml").resolve())
    proc = snakemake(wf, "--profile", "slurm", "--dry-run", "--configfile", "config/tiny.yaml", env=env)
    assert "Using profiles slurm and workflow specific profile" in proc.stdout + proc.stderr
    assert (own / "config.yaml").read_text() == "executor: no-such-executor\n"


def test_paper_dry_run_plans_the_paper_grid(wf):
    cfg = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    seeds, shards = 3, cfg["features"]["shards"]  # the paper's table: three seeds (the schema's default)
    jobs = dry_run(wf, "--configfile", "config/paper.yaml")
    counts = job_counts(jobs)
    runs = 8 * seeds + seeds  # finetunings and baselines, every seed
    assert counts == {
        "download_dataset": 1,
        "download_pretrained": 3,
        "fingerprint_split": 2,
        "extract_features": 2 * shards,
        "pack_features": 2,
        "feature_stats": 1,
        "make_texts": 2,  # the training split's sentences; the test split's for the alignment
        "pretrain_tokenizer": 2,
        "train_baseline": seeds,
        "finetune": 8 * seeds,
        "collect_references": 1,
        "predict": runs,
        "evaluate": 2 * runs,
        "aggregate": 1,
        "training_curves": 1,
        "embed_test_sentences": 2,
        "alignment": 8 * seeds,  # every text run, its tokenizer trained: recomputed from best.pt
        "timelines": 3,  # the Baseline and the first text system of each head
    }
    finetunes = {
        (j.wildcards["src"], j.wildcards["txt"], j.wildcards["head"], j.wildcards["seed"])
        for j in jobs
        if j.rule == "finetune"
    }
    assert finetunes == {
        (s, t, h, str(seed))
        for s in ("beats", "rcc")
        for t in ("clip", "bert")
        for h in ("grep", "trep")
        for seed in range(seeds)
    }
    assert {j.wildcards["weight"] for j in jobs if j.rule == "download_pretrained"} == {"beats", "clip", "bert"}


def test_feature_extraction_can_ask_slurm_for_a_gpu(wf, tmp_path):
    paper = dry_run(wf, "--configfile", "config/paper.yaml")
    assert all("gpu=" not in j.resources for j in paper if j.rule == "extract_features")
    gpu_cfg = tmp_path / "gpu_features.yaml"
    gpu_cfg.write_text(
        "features: {shards: 2, extract: {device: cuda}}\n"
        "resources:\n  features: {threads: 4, mem_mb: 8000, runtime: 240, gpu: 1}\n"
    )
    jobs = [j for j in dry_run(wf, "--configfile", "config/paper.yaml", str(gpu_cfg)) if j.rule == "extract_features"]
    assert len(jobs) == 2 * 2 and all("gpu=1" in j.resources for j in jobs)


def test_default_dry_run_is_offline_and_synthetic(wf):
    counts = job_counts(dry_run(wf))
    assert counts["synthesize_dataset"] == 1
    assert "download_dataset" not in counts and "download_pretrained" not in counts
    # 2 sources x 3 texts (CLIP, BERT, the identity control) x 2 heads, three seeds as the paper
    assert counts["finetune"] == 12 * 3 and counts["train_baseline"] == 3
    assert counts["pretrain_tokenizer"] == 2
    # fixed tokenizers and fixed training templates: each text encoder's outputs of every
    # clip once per source, one job per part (validation, training, test clips); the tokens
    # alone only for the identity controls (they are their outputs)
    assert counts["encode_sentences"] == 4 * 3 and counts["encode_tokens"] == 2 * 2  # training and test split


def test_random_training_templates_plan_the_tokens_and_no_training_encodings(wf, tmp_path):
    """With templates drawn per step the text encoder runs in every finetuning: the fixed
    tokenizer's tokens are computed once per source, the training clips' encodings are not.
    Frames are dealt across clips only from those encodings: the default's shuffle_frames must
    go too, and a config that leaves it on is refused with the key's name."""
    cfg = tmp_path / "random.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"finetune": {"train_templates": "random"}}}))
    refused = snakemake(wf, "--dry-run", "--cores", "1", "--configfile", str(cfg), check=False)
    assert refused.returncode != 0
    assert "train.finetune.shuffle_frames" in refused.stdout + refused.stderr
    cfg.write_text(yaml.safe_dump({"train": {"finetune": {"train_templates": "random", "shuffle_frames": False}}}))
    proc = snakemake(wf, "--dry-run", "--cores", "1", "--configfile", str(cfg))
    from workflow_helpers import parse_dry_run

    counts = job_counts(parse_dry_run(proc.stdout + proc.stderr))
    assert counts["encode_tokens"] == 2 * 2 and counts["encode_sentences"] == 4 * 2 and counts["finetune"] == 36
    assert "encoded/rcc-bert/validation.h5" in proc.stdout
    assert "encoded/rcc-bert/train.h5" not in proc.stdout
    default = snakemake(wf, "--dry-run", "--cores", "1").stdout  # fixed templates: they are
    assert "encoded/rcc-bert/train.h5" in default


def test_wildcards_only_match_configured_values(wf):
    # a typo'd model id must not match any rule
    proc = snakemake(wf, "--dry-run", "results/runs/rcc-clip-grap/seed0/best.pt", check=False)
    assert proc.returncode != 0
    assert "MissingRuleException" in proc.stdout + proc.stderr or "No rule to produce" in proc.stdout + proc.stderr
    # a seed outside the configured list neither
    proc = snakemake(wf, "--dry-run", "results/runs/rcc-clip-grep/seed7/best.pt", check=False)
    assert proc.returncode != 0


# ----------------------------------------------------------- real tiny run
@pytest.fixture(scope="module")
def tiny_run(tiny_workflow) -> Path:
    """The tiny config run end to end (conftest.py: one per session, shared with the rerun tests)."""
    return tiny_workflow


def _override(wd: Path, name: str, patch: dict) -> str:
    """tiny.yaml with `patch` merged in, written next to the run; returns its path."""
    cfg = yaml.safe_load((REPO / "config/tiny.yaml").read_text())

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
        return a

    path = wd / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merge(cfg, patch)))
    return str(path)


def _planned(wd: Path, configfile: str, env: dict | None = None) -> dict[str, int]:
    proc = snakemake(wd, "--dry-run", "--cores", "1", "--configfile", configfile, env=env)
    from workflow_helpers import parse_dry_run

    return job_counts(parse_dry_run(proc.stdout + proc.stderr))


@pytest.mark.slow
def test_tiny_run_writes_the_results_table(tiny_run):
    import csv

    rows = list(csv.DictReader((tiny_run / TABLE).open()))
    assert [r["system"] for r in rows] == [
        "Baseline",
        "BEATs-CLIP-GREP",
        "BEATs-BERT-GREP",
        "RCC-CLIP-GREP",
        "RCC-BERT-GREP",
        "BEATs-CLIP-TREP",
        "BEATs-BERT-TREP",
        "RCC-CLIP-TREP",
        "RCC-BERT-TREP",
        "BEATs-Identity-GREP",  # the controls, after the paper's rows
        "BEATs-Identity-TREP",
        "RCC-Identity-GREP",
        "RCC-Identity-TREP",
    ]
    for r in rows:  # the text systems' differences to their controls; the controls have none
        control = "Identity" in r["system"] or r["system"] == "Baseline"
        assert (r["dcase2025_F20_1_pct_vs_control"] == "") == control, r["system"]
        assert (r["strict_F20_1_pct_vs_control_ci_low"] == "") == control, r["system"]
        if "Identity" in r["system"]:  # no text encoder, and that is no departure from the recipe
            assert r["text_weights"] == "identity (no text encoder)" and "text_encoders" not in r["departures"]
    for r in rows:
        assert r["n_seeds"] == "1"
        assert 0.0 <= float(r["dcase2025_F20_1_pct_mean"]) <= 100.0
        assert 0.0 <= float(r["strict_F20_1_pct_mean"]) <= 100.0
    assert (tiny_run / "results/comparison.md").read_text().startswith("| System")
    assert (tiny_run / "results/comparison.png").stat().st_size > 1000
    # the alignment diagnostics of every text system (not the Baseline, nor the controls, which
    # embed no sentence), their figure
    for r in rows:
        cells = [r[c] for c in ("alignment_cosine_mean", "alignment_R1_pct_mean", "alignment_R10_pct_chance")]
        text_system = r["system"] != "Baseline" and "Identity" not in r["system"]
        assert all(cells) if text_system else not any(cells), (r["system"], cells)
        if text_system:
            assert -1.0 <= float(r["alignment_cosine_mean"]) <= 1.0 and 0 <= float(r["alignment_R10_pct_mean"]) <= 100
    align = json.loads((tiny_run / "results/alignment/rcc-bert-trep/seed0.json").read_text())
    assert align["audio_A"].startswith("cached") and align["n_frames"] > 0  # the fixed tokenizer's test outputs
    assert align["chance"]["R1"] == pytest.approx(1 / align["n_sentences"])
    assert (tiny_run / "results/alignment.png").stat().st_size > 1000
    for model in ("baseline", "rcc-clip-grep", "rcc-clip-trep"):  # the clips over time
        assert (tiny_run / f"results/timelines/{model}.png").stat().st_size > 1000
    n_test = yaml.safe_load((REPO / "config/tiny.yaml").read_text())["data"]["synthesis"]["test_clips"]
    # only the CSVs: the official DCASE evaluation reads every file of the folder
    for model in ("baseline", "rcc-bert-trep"):
        files = sorted(p.name for p in (tiny_run / f"results/predictions/{model}/seed0").iterdir())
        assert len(files) == n_test and all(f.endswith(".csv") for f in files), files


@pytest.mark.slow
def test_nothing_is_planned_after_a_complete_run(tiny_run):
    assert _planned(tiny_run, "config/tiny.yaml") == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "change",
    [
        {"lr_new": 3.0e-4},  # the GREP heads' rate (the TREP heads have their own: lr_new_by_head)
        {"lr_new_by_head": {"trep": 3.0e-4}},  # the TREP heads' rate only
        {"lr_new_by_head": None, "lr_new": 1.0e-3},  # both heads at lr_new: only GREP's rate changes
    ],
)
def test_finetuning_lr_change_reruns_only_the_changed_heads_finetunings_and_downstream(tiny_run, change):
    cfg = _override(tiny_run, "lr", {"train": {"finetune": change}})
    assert _planned(tiny_run, cfg) == {  # the 6 finetunings (2 sources x CLIP, BERT, identity) of one head
        "finetune": 6,
        "predict": 6,
        "evaluate": 12,
        "aggregate": 1,
        "training_curves": 1,
        "alignment": 4,
        "timelines": 1,  # the grid's first system of that head
    }


@pytest.mark.slow
def test_feature_change_reruns_everything_from_features_on(tiny_run):
    cfg = _override(tiny_run, "feat", {"features": {"extract": {"wpe": {"taps": 30}}}})
    counts = _planned(tiny_run, cfg)
    assert "synthesize_dataset" not in counts and "collect_references" not in counts
    assert counts["extract_features"] == 4  # 2 splits x 2 shards
    for rule, n in {
        "pack_features": 2,
        "feature_stats": 1,
        "make_texts": 2,
        "pretrain_tokenizer": 2,
        "encode_tokens": 4,  # the identity controls' outputs: training and test split, per source
        "encode_sentences": 12,  # 4 source-text pairs x 3 parts
        "train_baseline": 1,
        "finetune": 12,
        "predict": 13,
        "evaluate": 26,
        "aggregate": 1,
        "training_curves": 1,
        "embed_test_sentences": 2,
        "alignment": 8,
        "timelines": 3,
    }.items():
        assert counts.get(rule) == n, (rule, counts)


@pytest.mark.slow
def test_template_change_reruns_texts_and_what_depends_on_them(tiny_run, tmp_path):
    # Simulate editing one built-in template: a sitecustomize (imported at interpreter
    # start) changes the templates the library fingerprints.
    (tmp_path / "sitecustomize.py").write_text(
        "import textseld.text.store as s\n"
        "s.TEMPLATES = (s.TEMPLATES[0].replace('comes from', 'arrives from'),) + tuple(s.TEMPLATES[1:])\n"
    )
    counts = _planned(tiny_run, "config/tiny.yaml", env={"PYTHONPATH": str(tmp_path)})
    assert counts == {
        "make_texts": 2,  # the training and the test split's sentences
        "encode_sentences": 12,  # the fixed templates' outputs: 4 source-text pairs x 3 parts
        "finetune": 8,  # not the identity controls: they read no sentence and apply no template
        "predict": 8,
        "evaluate": 16,
        "aggregate": 1,
        "training_curves": 1,
        "embed_test_sentences": 2,
        "alignment": 8,
        "timelines": 2,  # the text systems' (not the Baseline's)
    }


@pytest.mark.slow
def test_report_holds_the_table_the_figure_and_the_training_curves(tiny_run):
    snakemake(tiny_run, "--configfile", "config/tiny.yaml", "--report", "report.html")
    html = (tiny_run / "report.html").read_text(errors="replace")
    for name in ("comparison.csv", "comparison.png", "training_curves.png", "alignment.png"):
        assert name in html, name
    for model in ("baseline", "rcc-clip-grep", "rcc-clip-trep"):  # the clips over time
        assert f"{model}.png" in html, model
    # its first section says what produced the results, in words
    assert "What produced these results" in html and "Recipe: <tt" in html.replace("<code", "<tt")
    assert "refuses others, naming them" in html


# -------------------------------------------- the paper's shapes, run for real
@pytest.mark.paper
@pytest.mark.slow
def test_paper_shapes_run_to_the_table_on_cpu(tmp_path):
    """config/paper.yaml with config/paper_cpu.yaml on top (synthetic clips, random weights in
    the paper's shapes, one step per run, CPU) through the whole workflow to the table."""
    import csv
    import json

    wd = workflow_copy(tmp_path / "wf")
    snakemake(wd, "--cores", "2", "--configfile", "config/paper.yaml", "config/paper_cpu.yaml", timeout=5400)
    rows = list(csv.DictReader((wd / TABLE).open()))
    assert len(rows) == 9 and rows[0]["system"] == "Baseline"
    for model, text in (("rcc-bert-trep", "bert"), ("beats-clip-grep", "clip")):
        run = wd / f"results/runs/{model}/seed0"
        config = json.loads((run / "config.json").read_text())
        assert config["model"]["token_width"] == 512 and config["model"]["beats_arch"] == "base"
        info = json.loads((run / "weights.json").read_text())["text_encoder"]
        assert info["width"] == 512 and info["layers"] == 12 and info["source"] == "random init"
        assert config["text_encoder"][text] in ("ViT-B-16/openai", "google/bert_uncased_L-12_H-512_A-8")
