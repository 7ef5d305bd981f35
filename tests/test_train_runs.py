"""Training entry points on a tiny packed file: groups, caching, end-to-end, resume, errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from textseld.constants import N_CLASSES, N_FEAT_FRAMES, N_LABEL_FRAMES, N_MELS
from textseld.data.targets import build_targets
from textseld.recipes import train_section

TEXT_CFG = {
    "clip_pretrained": None,
    "clip_text_cfg": dict(width=32, layers=1, heads=2, context_length=77, vocab_size=49408),
    "clip_embed_dim": 32,
    "bert_random_init": True,
    "bert_config": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
}
MODEL_CFG = {"size": "tiny", "token_width": 32}
TRAIN_CFG = {"epochs": 2, "batch_size": 4, "progress": False, "device": "cpu"}


def _clip_rows(rng: np.random.Generator) -> np.ndarray:
    rows = []
    for _ in range(rng.integers(0, 3)):
        cls, az, dist = int(rng.integers(N_CLASSES)), int(rng.integers(-90, 91)), int(rng.integers(50, 500))
        start = int(rng.integers(0, 40))
        rows += [[f, cls, 0, az, dist, 0] for f in range(start, min(start + 10, N_LABEL_FRAMES))]
    rows.sort()
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6)


def write_packed(path: Path, n_clips: int = 9, seed: int = 0) -> tuple[Path, Path]:
    """A tiny packed features file (random features, real targets) and its stats file."""
    from textseld.data.hdf5 import PackedWriter
    from textseld.data.splits import compute_training_stats

    rng = np.random.default_rng(seed)
    # 3 recordings (room, mix) -> the validation split takes one whole recording
    names = sorted(f"fold3_room1_mix{1 + i % 3:03d}_deg000_start{i:04d}" for i in range(n_clips))
    rows = [_clip_rows(rng) for _ in names]
    feats = {
        key: rng.normal(size=(n_clips, ch, N_FEAT_FRAMES, N_MELS)).astype(np.float32)
        for key, ch in (("src", 1), ("doa", 4), ("dist", 2))
    }
    with PackedWriter(path, "dev-train-synth", "{}") as w:
        w.append(names, feats["src"], feats["doa"], feats["dist"], np.stack([build_targets(r) for r in rows]), rows)
    stats = path.with_name("stats.h5")
    compute_training_stats(path, stats, None)  # the default split (0.1 of 3 recordings -> 1, seed 0)
    return path, stats


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from textseld.text.store import build_text_store

    root = tmp_path_factory.mktemp("data")
    train_h5, stats = write_packed(root / "train.h5")
    texts = build_text_store(train_h5, root / "texts.h5")
    return {"train_h5": train_h5, "stats": stats, "texts": texts, "root": root}


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    from textseld.train.runs import pretrain

    run = tmp_path_factory.mktemp("runs") / "pre_rcc"
    result = pretrain(run, data["train_h5"], data["stats"], "rcc", model_cfg=MODEL_CFG, train_cfg=TRAIN_CFG, seed=1)
    return run, result


def _finetune(data, pretrained_dir, run_dir, text="bert", head="grep", **kw):
    from textseld.train.runs import finetune

    return finetune(
        run_dir,
        data["train_h5"],
        data["stats"],
        kw.pop("texts", data["texts"]),
        pretrained_dir,
        "rcc",
        text,
        head,
        model_cfg=kw.pop("model_cfg", MODEL_CFG),
        text_cfg=TEXT_CFG,
        train_cfg=kw.pop("train_cfg", {**TRAIN_CFG, "epochs": 1}),
        seed=2,
        **kw,
    )


# ------------------------------------------------------------------ groups
def _finetune_model(text="clip", head="grep"):
    from textseld.train.rebuild import build_run_model

    config = {
        "kind": "finetune",
        "seed": 0,
        "source": "rcc",
        "text": text,
        "head": head,
        "model": MODEL_CFG,
        "text_encoder": TEXT_CFG,
    }
    return build_run_model(config, load_pretrained=False)


@pytest.mark.parametrize("head", ["grep", "trep"])
def test_each_parameter_in_exactly_one_group_and_frozen_unchanged(head):
    from textseld.train.config import TrainConfig
    from textseld.train.runs import make_optimizer

    model, encoder = _finetune_model("clip", head)
    opt = make_optimizer(model, TrainConfig.from_dict(train_section("paper", "finetune")), "finetune")
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["pretrained"]["lr"] == 1e-6 and groups["new"]["lr"] == 1e-4
    in_groups = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(in_groups) == len(set(in_groups))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(in_groups) == trainable
    assert {id(p) for p in model.tokenizer.parameters()} == {id(p) for p in groups["pretrained"]["params"]}
    assert not ({id(p) for p in encoder.parameters()} & set(in_groups))
    assert any(True for _ in encoder.parameters())
    frozen = {n: p.detach().clone() for n, p in model.text_encoder.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    assert not model.text_encoder.training  # locked encoders stay in eval mode
    batch = {k: torch.randn(2, c, N_FEAT_FRAMES, N_MELS) for k, c in (("src", 1), ("doa", 4), ("dist", 2))}
    out, aux = model(batch, torch.tensor([0, 7]), torch.tensor([[0, 9], [3, 4]]))
    (out.square().mean() + aux["A"].abs().mean()).backward()
    opt.step()
    for n, p in model.text_encoder.named_parameters():
        assert torch.equal(p, frozen[n]), n
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert any(n.startswith("head.") for n in changed) and any(n.startswith("tokenizer.") for n in changed)


# ------------------------------------------------------------------ caching
def test_cached_and_uncached_ground_truth_give_the_same_loss(data):
    from textseld.data.hdf5 import PackedDataset
    from textseld.models.text_encoders import GroundTruthCache
    from textseld.text.store import TextStore
    from textseld.train.config import TrainConfig
    from textseld.train.rebuild import make_task

    model, encoder = _finetune_model("bert", "grep")
    model.eval()  # no dropout: both passes see the same network
    cfg = TrainConfig.from_dict({**train_section("paper", "finetune"), "text_frames_per_clip": 6})
    store = TextStore(data["texts"])
    config = {"kind": "finetune"}
    cache = GroundTruthCache(encoder)

    def uncached(sentences):
        with torch.no_grad():
            return encoder.embed_sentences(sentences)

    batch = next(iter(torch.utils.data.DataLoader(PackedDataset(data["train_h5"], data["stats"]), batch_size=3)))
    losses = []
    for embed in (cache.embed, uncached, cache.embed):  # the 2nd cached call is served from the cache
        task = make_task(config, model, cfg, store.sentence, embed)
        losses.append(task.losses(batch, torch.Generator().manual_seed(5)))
    assert cache.hits > 0
    for other in losses[1:]:
        for key in ("loss", "mae", "adpit"):
            torch.testing.assert_close(other[key], losses[0][key], rtol=1e-5, atol=1e-7)
    assert float(losses[0]["mae"]) > 0


# --------------------------------------------------------------- end to end
def test_pretrain_finetune_predict_end_to_end(data, pretrained, tmp_path):
    from textseld.data.hdf5 import PackedDataset
    from textseld.data.labels import read_labels
    from textseld.metrics.seld import score
    from textseld.train.predict import predict_split

    pre_dir, pre_result = pretrained
    for name in ("config.json", "weights.json", "log.csv", "last.pt", "best.pt", "val_metrics.json"):
        assert (pre_dir / name).is_file(), name
    assert json.loads((pre_dir / "weights.json").read_text())["source_encoder"] == "random init"
    run = tmp_path / "ft"
    result = _finetune(
        data, pre_dir, run, "clip", "trep", train_cfg={**TRAIN_CFG, "epochs": 2, "text_frames_per_clip": 5}
    )
    weights = json.loads((run / "weights.json").read_text())
    assert weights["text_encoder"]["source"] == "random init"
    assert weights["pretrained_tokenizer"]["file"] == str(pre_dir / "best.pt")
    log_lines = (run / "log.csv").read_text().splitlines()
    assert len(log_lines) == 3 and "lr_pretrained" in log_lines[0] and "lr_new" in log_lines[0]
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["lr_pretrained"] == 1e-6 and config["text"] == "clip"

    out = tmp_path / "pred"
    paths = predict_split(run, data["train_h5"], data["stats"], out)
    names = PackedDataset(data["train_h5"]).names
    assert sorted(p.stem for p in paths) == sorted(names)
    # The validation metric of best.pt is reproduced from the written CSVs.
    from textseld.data.splits import validation_split

    _, val_idx = validation_split(names, 0.1, 0)  # the shared split, not the run seed
    full = PackedDataset(data["train_h5"])
    refs = {names[i]: full.label_rows(int(i)) for i in val_idx}
    preds = {names[i]: read_labels(out / f"{names[i]}.csv", kind="prediction") for i in val_idx}
    again = score(refs, preds, protocol="dcase2025")
    assert again["F"] == pytest.approx(result["F"], abs=1e-6, nan_ok=True)


# ------------------------------------------------------------------- errors
def test_bad_configurations_give_clear_errors(data, pretrained, tmp_path):
    from textseld.train.checkpoint import CheckpointError
    from textseld.train.rebuild import RunConfigError
    from textseld.train.runs import finetune, pretrain

    pre_dir, _ = pretrained
    with pytest.raises(RunConfigError, match="unknown source encoder 'cnn'"):
        pretrain(tmp_path / "x", data["train_h5"], data["stats"], "cnn", model_cfg=MODEL_CFG, train_cfg=TRAIN_CFG)
    with pytest.raises(RunConfigError, match="unknown text encoder 'gpt'"):
        _finetune(data, pre_dir, tmp_path / "y", "gpt", "grep")
    with pytest.raises(RunConfigError, match="unknown head 'mlp'"):
        _finetune(data, pre_dir, tmp_path / "y", "bert", "mlp")
    missing = tmp_path / "no_pretrain"
    with pytest.raises(RunConfigError, match=f"expected {missing / 'best.pt'}"):
        _finetune(data, missing, tmp_path / "y")
    with pytest.raises(CheckpointError, match="do not fit this model architecture"):
        _finetune(data, pre_dir, tmp_path / "z", model_cfg={**MODEL_CFG, "rcc_channels": [4, 8, 8, 8]})
    with pytest.raises(RunConfigError, match="source 'beats'"):
        finetune(
            tmp_path / "w",
            data["train_h5"],
            data["stats"],
            data["texts"],
            pre_dir,
            "beats",
            "bert",
            "grep",
            model_cfg=MODEL_CFG,
            text_cfg=TEXT_CFG,
            train_cfg=TRAIN_CFG,
        )
    with pytest.raises(ValueError, match="'epoch'"):
        pretrain(tmp_path / "v", data["train_h5"], data["stats"], "rcc", model_cfg=MODEL_CFG, train_cfg={"epoch": 1})


# ------------------------------------------------------------------- resume
RESUME_SCRIPT = textwrap.dedent("""
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from textseld.train.runs import pretrain
    run, train_h5, stats, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    def on_step(epoch, step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    cfg = {"epochs": 3, "batch_size": 2, "progress": False, "device": "cpu",
           "checkpoint_every_steps": 1}
    pretrain(run, train_h5, stats, "rcc", model_cfg={"size": "tiny", "token_width": 32}, train_cfg=cfg, seed=3,
             on_step=on_step if kill_at > 0 else None)
""")


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(data, tmp_path):
    from textseld.train.checkpoint import read_checkpoint

    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(run_dir, kill_at):
        return subprocess.run(
            [sys.executable, str(script), str(run_dir), str(data["train_h5"]), str(data["stats"]), str(kill_at)],
            env=env,
            capture_output=True,
            text=True,
        )

    ref = run(tmp_path / "ref", 0)
    assert ref.returncode == 0, ref.stderr
    # 6 training clips, batch 2 -> 3 steps per epoch; step 5 is mid-epoch 1
    cut = run(tmp_path / "cut", 5)
    assert cut.returncode == -signal.SIGKILL
    state = read_checkpoint(tmp_path / "cut" / "last.pt")
    assert (state["epoch"], state["batch_in_epoch"]) == (1, 2)
    resumed = run(tmp_path / "cut", 0)
    assert resumed.returncode == 0, resumed.stderr
    a, b = read_checkpoint(tmp_path / "ref" / "last.pt"), read_checkpoint(tmp_path / "cut" / "last.pt")
    assert a["step"] == b["step"] == 9
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert json.loads((tmp_path / "ref" / "val_metrics.json").read_text()) == json.loads(
        (tmp_path / "cut" / "val_metrics.json").read_text()
    )


# ---------------------------------------------------------------- raw audio
def test_predict_audio_windows_resampling_and_bad_files(data, pretrained, tmp_path):
    import shutil

    import soundfile as sf

    from textseld.constants import N_TRACKS
    from textseld.data.labels import read_labels
    from textseld.train.predict import AudioInputError, predict_audio

    # A copy of the pretrain run whose head fires: x biased up, y per track apart.
    pre_dir = tmp_path / "run"
    pre_dir.mkdir()
    for name in ("config.json", "best.pt"):
        shutil.copy(pretrained[0] / name, pre_dir / name)
    state = torch.load(pre_dir / "best.pt", weights_only=True)
    bias = state["model"]["head.net.bias"].view(N_TRACKS, 3, N_CLASSES)
    bias[:, 0] += 1.0
    bias[:, 1] += torch.tensor([-1.0, 0.0, 1.0])[:, None]
    torch.save(state, pre_dir / "best.pt")
    rng = np.random.default_rng(0)
    a, b = (rng.normal(scale=0.1, size=(120_000, 2)).astype(np.float32) for _ in range(2))
    sf.write(tmp_path / "a.wav", a, 24_000)
    sf.write(tmp_path / "b.wav", b * 0.5, 24_000)  # each window is peak-normalised on its own
    sf.write(tmp_path / "ab.wav", np.concatenate([a, b]), 24_000)
    sf.write(tmp_path / "short48k.wav", rng.normal(scale=0.1, size=(96_000, 2)).astype(np.float32), 48_000)
    out = tmp_path / "pred"
    paths = predict_audio(pre_dir, [tmp_path / n for n in ("a.wav", "b.wav", "ab.wav", "short48k.wav")], out)
    assert [p.name for p in paths] == ["a.csv", "b.csv", "ab.csv", "short48k.csv"]
    ra, rb, rab = (read_labels(out / n, kind="prediction", max_frame=None) for n in ("a.csv", "b.csv", "ab.csv"))
    assert len(ra) + len(rb) > 0  # a random network still fires: the comparison below is not vacuous
    shifted = rb.copy()
    shifted[:, 0] += N_LABEL_FRAMES
    np.testing.assert_allclose(rab, np.concatenate([ra, shifted]), atol=0.02)
    short = read_labels(out / "short48k.csv", kind="prediction", max_frame=None)
    assert short.size == 0 or short[:, 0].max() < N_LABEL_FRAMES
    # Shorter than a window, one sample, a window and a bit: no event after the end of the audio
    # (the head fires in every frame, so the frames that hold audio all have events).
    for n, frames in ((24_000, 10), (1, 1), (175_200, 73)):
        sf.write(tmp_path / f"len{n}.wav", rng.normal(scale=0.1, size=(n, 2)).astype(np.float32), 24_000)
        (path,) = predict_audio(pre_dir, [tmp_path / f"len{n}.wav"], out)
        rows = read_labels(path, kind="prediction", max_frame=None)
        assert sorted(set(rows[:, 0].astype(int))) == list(range(frames)), n
    sf.write(tmp_path / "mono.wav", a[:, 0], 24_000)
    with pytest.raises(AudioInputError, match=r"mono\.wav.*stereo"):
        predict_audio(pre_dir, [tmp_path / "a.wav", tmp_path / "mono.wav"], out)
    (tmp_path / "junk.wav").write_bytes(b"RIFF....")
    with pytest.raises(AudioInputError, match=r"junk\.wav: cannot read audio"):
        predict_audio(pre_dir, [tmp_path / "junk.wav"], out)


# ---------------------------------------------------------------------- CLI
def test_cli_pretrain_and_predict(data, tmp_path, capsys):
    import yaml

    from textseld.cli import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"models": {"token_width": 32}, "train": {"batch_size": 4, "progress": False}}))
    run = tmp_path / "run"
    rc = main(
        [
            "train-baseline",
            "--features",
            str(data["train_h5"]),
            "--stats",
            str(data["stats"]),
            "--out",
            str(run),
            "--size",
            "tiny",
            "--config",
            str(cfg),
            "--epochs",
            "1",
            "--seed",
            "4",
        ]
    )
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epoch"] == 0
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "baseline" and config["seed"] == 4 and config["train"]["lr"] == 1e-3
    assert config["train"]["epochs"] == 1 and config["model"]["token_width"] == 32
    rc = main(
        [
            "predict",
            "--run-dir",
            str(run),
            "--features",
            str(data["train_h5"]),
            "--stats",
            str(data["stats"]),
            "--out",
            str(tmp_path / "pred"),
            "-j",
            "1",
        ]
    )
    assert rc == 0 and len(list((tmp_path / "pred").glob("*.csv"))) == 9
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: {epochs: 1}\n")
    rc = main(
        [
            "pretrain-tokenizer",
            "--source",
            "rcc",
            "--features",
            str(data["train_h5"]),
            "--stats",
            str(data["stats"]),
            "--out",
            str(tmp_path / "r2"),
            "--config",
            str(bad),
        ]
    )
    assert rc == 1
    assert (
        "bad.yaml: unknown section(s) 'trainer'; valid sections: models, text_encoders, train"
        in capsys.readouterr().err
    )


def test_beats_finetune_keeps_the_frozen_transformer_of_its_pretraining(data, tmp_path):
    """Without a BEATs file the frozen transformer is random: finetuning and prediction must
    use exactly the one the tokenizer was pretrained with, not a fresh draw."""
    from textseld.data.hdf5 import PackedDataset
    from textseld.data.labels import read_labels
    from textseld.data.splits import validation_split
    from textseld.metrics.seld import score
    from textseld.train.predict import predict_split
    from textseld.train.rebuild import load_run
    from textseld.train.runs import finetune, pretrain

    cfg = {**TRAIN_CFG, "epochs": 1}
    pretrain(tmp_path / "pre", data["train_h5"], data["stats"], "beats", model_cfg=MODEL_CFG, train_cfg=cfg, seed=5)
    result = finetune(
        tmp_path / "ft",
        data["train_h5"],
        data["stats"],
        data["texts"],
        tmp_path / "pre",
        "beats",
        "bert",
        "grep",
        model_cfg=MODEL_CFG,
        text_cfg=TEXT_CFG,
        train_cfg=cfg,
        seed=6,
    )
    _, pre_task, _, _ = load_run(tmp_path / "pre")
    _, ft_task, _, _ = load_run(tmp_path / "ft")
    frozen = [(n, p) for n, p in pre_task.model.tokenizer.named_parameters() if not p.requires_grad]
    assert frozen  # the BEATs transformer
    ft_params = dict(ft_task.model.tokenizer.named_parameters())
    for n, p in frozen:
        assert torch.equal(ft_params[n], p), n
    out = tmp_path / "pred"
    predict_split(tmp_path / "ft", data["train_h5"], data["stats"], out)
    names = PackedDataset(data["train_h5"]).names
    _, val_idx = validation_split(names, 0.1, 0)
    full = PackedDataset(data["train_h5"])
    refs = {names[i]: full.label_rows(int(i)) for i in val_idx}
    preds = {names[i]: read_labels(out / f"{names[i]}.csv", kind="prediction") for i in val_idx}
    assert score(refs, preds)["F"] == pytest.approx(result["F"], abs=1e-6, nan_ok=True)


def test_resuming_with_another_configuration_is_refused(tmp_path):
    from textseld.train.rebuild import RunConfigError
    from textseld.train.runs import _prepare_run_dir

    config = {
        "kind": "pretrain",
        "seed": 0,
        "model": {"d_model": 16},
        "train": {"epochs": 3, "device": "cpu"},
        "inputs": {"train_h5": "a.h5"},
    }
    _prepare_run_dir(tmp_path, config)
    (tmp_path / "last.pt").write_bytes(b"x")
    _prepare_run_dir(tmp_path, {**config, "train": {"epochs": 3, "device": "cuda"}, "inputs": {"train_h5": "b.h5"}})
    with pytest.raises(RunConfigError, match=r"differs in: seed, train\.epochs"):
        _prepare_run_dir(tmp_path, {**config, "seed": 1, "train": {"epochs": 4, "device": "cpu"}})


def test_restart_on_configuration_change_discards_the_old_run(tmp_path):
    from textseld.train.runs import RUN_STATE_FILES, _prepare_run_dir

    config = {"kind": "pretrain", "seed": 0, "train": {"epochs": 3}, "inputs": {}}
    _prepare_run_dir(tmp_path, config)
    for name in RUN_STATE_FILES:
        (tmp_path / name).write_bytes(b"old")
    # same configuration: the run state is kept (resume)
    _prepare_run_dir(tmp_path, config, on_config_change="restart")
    assert all((tmp_path / n).exists() for n in RUN_STATE_FILES)
    # changed configuration: the old state goes, the new config is written
    _prepare_run_dir(tmp_path, {**config, "train": {"epochs": 4}}, on_config_change="restart")
    assert not any((tmp_path / n).exists() for n in RUN_STATE_FILES)
    assert '"epochs": 4' in (tmp_path / "config.json").read_text()


# ------------------------------------------------------- one validation split
def test_no_run_validates_on_a_clip_its_pretraining_trained_on(data, pretrained, tmp_path):
    """Pretraining (seed 1), finetunings of other seeds and the baseline share one split."""
    from textseld.data.hdf5 import PackedDataset, compute_stats
    from textseld.data.splits import recording_key, validation_split
    from textseld.train.rebuild import RunConfigError
    from textseld.train.runs import finetune, train_baseline

    pre_dir, _ = pretrained
    names = PackedDataset(data["train_h5"]).names
    # the run seeds below would have validated on different recordings had the split followed them
    assert len({tuple(validation_split(names, 0.1, s)[1]) for s in (1, 5, 7)}) > 1
    cfg = {**TRAIN_CFG, "epochs": 1}
    for seed in (5, 7):
        finetune(
            tmp_path / f"ft{seed}",
            data["train_h5"],
            data["stats"],
            data["texts"],
            pre_dir,
            "rcc",
            "clip",
            "grep",
            model_cfg=MODEL_CFG,
            text_cfg=TEXT_CFG,
            train_cfg=cfg,
            seed=seed,
        )
    train_baseline(tmp_path / "base", data["train_h5"], data["stats"], model_cfg=MODEL_CFG, train_cfg=cfg, seed=4)

    def recordings(run):
        rec = json.loads((run / "split.json").read_text())
        assert rec["fraction"] == 0.1 and rec["seed"] == 0
        val = {recording_key(n) for n in rec["validation_clips"]}
        assert {"room{}_mix{:03d}".format(*k) for k in val} == set(rec["validation_recordings"])
        return val

    every = {recording_key(n) for n in names}
    pre_train = every - recordings(pre_dir)
    assert pre_train and len(pre_train) < len(every)
    for run in (tmp_path / "ft5", tmp_path / "ft7", tmp_path / "base"):
        assert not recordings(run) & pre_train, run
        assert recordings(run) == recordings(pre_dir)
    # a finetuning on another split than its pretraining's, or statistics that include the
    # validation clips, are refused with the file named
    with pytest.raises(RunConfigError, match="pretrained with validation split .* use one validation split"):
        finetune(
            tmp_path / "other",
            data["train_h5"],
            data["stats"],
            data["texts"],
            pre_dir,
            "rcc",
            "clip",
            "grep",
            model_cfg=MODEL_CFG,
            text_cfg=TEXT_CFG,
            train_cfg=cfg,
            seed=5,
            split={"seed": 3},
        )
    compute_stats(data["train_h5"], tmp_path / "all_stats.h5")
    with pytest.raises(RunConfigError, match=r"all_stats\.h5: records no validation split"):
        train_baseline(
            tmp_path / "b2", data["train_h5"], tmp_path / "all_stats.h5", model_cfg=MODEL_CFG, train_cfg=cfg, seed=4
        )
    with pytest.raises(ValueError, match="'val_fraction': the validation split is shared by every run"):
        train_baseline(
            tmp_path / "b3",
            data["train_h5"],
            data["stats"],
            model_cfg=MODEL_CFG,
            train_cfg={**cfg, "val_fraction": 0.3},
        )


# ------------------------------------------- resuming checks what the run trained on
def test_changed_pretrained_tokenizer_restarts_or_refuses_the_finetuning(data, pretrained, tmp_path):
    """Same configuration, other pretrained tokenizer (e.g. train.pretrain.lr changed): the
    finetuning must not resume its old run (issue 13: all finetunings failed)."""
    import shutil

    from textseld.train.checkpoint import read_checkpoint
    from textseld.train.rebuild import RunConfigError

    pre = tmp_path / "pre"
    shutil.copytree(pretrained[0], pre)
    run = tmp_path / "ft"
    _finetune(data, pre, run)
    first = read_checkpoint(run / "last.pt")["model"]
    recorded = json.loads((run / "config.json").read_text())["input_sha256"]
    assert set(recorded) == {"train_h5", "stats_h5", "texts", "pretrained_dir"}
    state = read_checkpoint(pre / "best.pt")
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = state["model"][key] + 0.5
    (pre / "best.pt").unlink()  # a new pretraining writes a new file
    torch.save(state, pre / "best.pt")
    with pytest.raises(RunConfigError, match=r"differs in: content of .*pre.* \(pretrained_dir\)"):
        _finetune(data, pre, run)
    restarted = _finetune(data, pre, run, on_config_change="restart")
    fresh = _finetune(data, pre, tmp_path / "fresh")
    assert json.dumps(restarted) == json.dumps(fresh)  # NaN-safe equality
    now, ref = read_checkpoint(run / "last.pt")["model"], read_checkpoint(tmp_path / "fresh" / "last.pt")["model"]
    assert all(torch.equal(now[k], ref[k]) for k in ref)
    assert not all(torch.equal(now[k], first[k]) for k in first)  # trained from the new tokenizer
    # the finetuning resumes (nothing retrained) when nothing changed
    mtime = (run / "last.pt").stat().st_mtime_ns
    assert json.dumps(_finetune(data, pre, run, on_config_change="restart")) == json.dumps(fresh)
    assert (run / "last.pt").stat().st_mtime_ns == mtime


def test_run_directory_works_from_another_working_directory(data, pretrained, tmp_path, monkeypatch):
    """Relative input paths are stored absolute: predicting from elsewhere finds the pretraining."""
    import shutil

    from textseld.train.predict import predict_split

    work = tmp_path / "project"
    (work / "runs").mkdir(parents=True)
    shutil.copytree(pretrained[0], work / "runs" / "pre")
    for key in ("train_h5", "stats", "texts"):
        shutil.copy(data[key], work / Path(data[key]).name)
    monkeypatch.chdir(work)
    _finetune(
        {"train_h5": Path("train.h5"), "stats": Path("stats.h5"), "texts": Path("texts.h5")},
        Path("runs/pre"),
        Path("runs/ft"),
    )
    inputs = json.loads((work / "runs/ft/config.json").read_text())["inputs"]
    assert all(Path(v).is_absolute() for v in inputs.values()), inputs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    paths = predict_split(work / "runs/ft", work / "train.h5", work / "stats.h5", elsewhere / "pred")
    assert len(paths) == 9


def test_predict_without_stats_uses_the_run_statistics(data, pretrained, tmp_path):
    """Never unstandardised features: --features without --stats predicts like with the run's stats."""
    from textseld.train.predict import predict_split

    pre_dir, _ = pretrained
    default = predict_split(pre_dir, data["train_h5"], None, tmp_path / "default")
    explicit = predict_split(pre_dir, data["train_h5"], data["stats"], tmp_path / "explicit")
    assert [p.name for p in default] == [p.name for p in explicit]
    for a, b in zip(default, explicit):
        assert a.read_text() == b.read_text(), a.name


def test_a_failed_predict_leaves_nothing_behind(data, pretrained, tmp_path, monkeypatch):
    """The disk fills after the first batch's CSVs: no output folder (nor the folders made for
    it) is left, and an existing output folder keeps what it held, without partial CSVs."""
    import textseld.metrics.predictions as predictions
    from textseld.train.predict import predict_split

    pre_dir, _ = pretrained
    write_outputs, calls = predictions.write_outputs, []

    def fill_disk(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return write_outputs(*args, **kwargs)

    monkeypatch.setattr(predictions, "write_outputs", fill_disk)
    with pytest.raises(OSError, match="No space left"):
        predict_split(pre_dir, data["train_h5"], None, tmp_path / "new" / "pred", batch_size=2)
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("kept")
    calls.clear()
    with pytest.raises(OSError, match="No space left"):
        predict_split(pre_dir, data["train_h5"], None, tmp_path / "old", batch_size=2)
    assert [p.name for p in tmp_path.rglob("*")] == ["old", "notes.txt"]
    monkeypatch.setattr(predictions, "write_outputs", write_outputs)
    paths = predict_split(pre_dir, data["train_h5"], None, tmp_path / "old", batch_size=2)
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == sorted([p.name for p in paths] + ["notes.txt"])
    assert all(p.parent == tmp_path / "old" and p.is_file() for p in paths)


def test_frozen_tokenizer_trains_only_the_head_and_predicts_with_the_pretrained_tokenizer(data, pretrained, tmp_path):
    """freeze_tokenizer: the tokenizer keeps its pretrained weights (eval mode, no gradient,
    not in the optimizer), the head trains, and prediction rebuilds the same model."""
    from textseld.train.checkpoint import read_checkpoint
    from textseld.train.rebuild import build_run_model, load_run

    pre_dir, _ = pretrained
    run = tmp_path / "ft_frozen"
    _finetune(data, pre_dir, run, "bert", "trep", train_cfg={**TRAIN_CFG, "epochs": 1, "freeze_tokenizer": True})
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["freeze_tokenizer"] is True
    model, _ = build_run_model(config)
    assert model.tokenizer_frozen and not any(p.requires_grad for p in model.tokenizer.parameters())
    model.train()
    assert not model.tokenizer.training and model.head.training
    pretrained_state = read_checkpoint(pre_dir / "best.pt")["model"]
    for name, p in model.tokenizer.named_parameters():  # the pretrain run's weights, unchanged
        torch.testing.assert_close(p, pretrained_state[f"tokenizer.{name}"], rtol=0, atol=0)
    state = read_checkpoint(run / "best.pt")["model"]
    assert not any(k.startswith("tokenizer.") and k.endswith(("weight", "bias")) for k in state)
    assert any(k.startswith("head.") for k in state)
    head_init = build_run_model({**config, "seed": config["seed"]}, load_pretrained=False)[0].head.state_dict()
    assert any(not torch.equal(state[f"head.{k}"], v) for k, v in head_init.items())  # the head trained
    log = (run / "log.csv").read_text().splitlines()[0]
    assert "lr_new" in log and "lr_pretrained" not in log  # one optimizer group
    _, task, _, _ = load_run(run)
    for name, p in task.model.tokenizer.named_parameters():
        torch.testing.assert_close(p, pretrained_state[f"tokenizer.{name}"], rtol=0, atol=0)


def test_frozen_tokenizer_step_builds_no_graph_before_the_head():
    from textseld.train.config import TrainConfig
    from textseld.train.runs import make_optimizer

    model, _ = _finetune_model("bert", "grep")
    model.freeze_tokenizer()
    opt = make_optimizer(
        model, TrainConfig.from_dict({**train_section("paper", "finetune"), "freeze_tokenizer": True}), "finetune"
    )
    assert [g["name"] for g in opt.param_groups] == ["new"]
    model.train()
    batch = {k: torch.randn(2, c, N_FEAT_FRAMES, N_MELS) for k, c in (("src", 1), ("doa", 4), ("dist", 2))}
    out, aux = model(batch, torch.tensor([0, 7]), torch.tensor([[0, 9], [3, 4]]))
    assert out.requires_grad and not aux["A"].requires_grad and not aux["hidden"].requires_grad


def test_a_fixed_tokenizer_step_embeds_no_ground_truth_sentences(data):
    """With nothing trainable before A, the MAE term is a constant: the step is ADPIT alone and
    the ground-truth sentences are never embedded."""
    from textseld.data.hdf5 import PackedDataset
    from textseld.text.store import TextStore
    from textseld.train.config import TrainConfig
    from textseld.train.rebuild import make_task

    model, _ = _finetune_model("bert", "trep")
    model.freeze_tokenizer()

    def never(sentences):
        raise AssertionError("ground-truth sentences embedded although A has no gradient")

    cfg = TrainConfig.from_dict(
        {**train_section("paper", "finetune"), "text_frames_per_clip": 6, "freeze_tokenizer": True}
    )
    task = make_task({"kind": "finetune"}, model, cfg, TextStore(data["texts"]).sentence, never)
    batch = next(iter(torch.utils.data.DataLoader(PackedDataset(data["train_h5"], data["stats"]), batch_size=3)))
    losses = task.losses(batch, torch.Generator().manual_seed(5))
    assert "mae" not in losses
    torch.testing.assert_close(losses["loss"].detach(), cfg.adpit_weight * losses["adpit"], rtol=1e-6, atol=0)
    losses["loss"].backward()
    assert all(p.grad is not None for p in model.head.parameters())


def test_fixed_training_templates_with_a_trained_tokenizer_align_to_the_same_templates(data):
    """train_templates fixed, freeze_tokenizer false: the ground-truth sentences of the MAE are
    written into the template the audio path used, each clip's fixed one (not a random draw)."""
    from textseld.data.hdf5 import PackedDataset
    from textseld.text.store import TextStore
    from textseld.train.config import TrainConfig
    from textseld.train.runs import make_task
    from textseld.train.tasks import fixed_template_ids

    model, encoder = _finetune_model("bert", "grep")
    store = TextStore(data["texts"])
    used: list[tuple[int, int]] = []

    def sentence(clip, frame, template):
        used.append((clip, template))
        return store.sentence(clip, frame, template)

    def embed(sentences):
        with torch.no_grad():
            return encoder.embed_sentences(sentences)

    cfg = TrainConfig.from_dict({**train_section("paper", "finetune"), "train_templates": "fixed"})
    task = make_task({"kind": "finetune"}, model, cfg, sentence, embed)
    batch = next(iter(torch.utils.data.DataLoader(PackedDataset(data["train_h5"], data["stats"]), batch_size=3)))
    losses = task.losses(batch, torch.Generator().manual_seed(5))
    assert "mae" in losses  # the tokenizer trains: A has a gradient
    fixed = dict(zip([int(i) for i in batch["index"]], fixed_template_ids(batch["name"]).tolist()))
    assert used and all(template == fixed[clip] for clip, template in used), (used[:3], fixed)


def test_lr_new_by_head_sets_the_head_learning_rate_of_its_head_only(data, pretrained, tmp_path):
    import csv

    pre_dir, _ = pretrained
    by_head = {"trep": 2e-3}
    for head, lr in (("trep", 2e-3), ("grep", 5e-3)):
        run = tmp_path / head
        cfg = {**TRAIN_CFG, "epochs": 1, "lr_new": 5e-3, "lr_new_by_head": by_head}
        _finetune(data, pre_dir, run, "bert", head, train_cfg=cfg)
        train = json.loads((run / "config.json").read_text())["train"]
        assert train["lr_new"] == lr and train["lr_new_by_head"] == by_head  # the resolved rate, recorded
        (row,) = csv.DictReader(open(run / "log.csv", encoding="utf-8"))
        assert float(row["lr_new"]) == pytest.approx(lr, rel=1e-12)  # what the optimizer used


def test_lr_new_by_head_is_checked():
    from textseld.train.config import TrainConfig

    assert TrainConfig.from_dict({"lr_new_by_head": {"trep": 1e-3}}).for_head("trep").lr_new == 1e-3
    assert TrainConfig.from_dict({"lr_new_by_head": None}).for_head("grep").lr_new == 1e-4
    for bad in ({"tre": 1e-3}, {"grep": -1.0}, {"grep": "fast"}, [1e-3]):
        with pytest.raises(ValueError, match="'lr_new_by_head'.*head names"):
            TrainConfig.from_dict({"lr_new_by_head": bad})


def _encode_sentences(data, pre_dir, tmp_path, text: str, **kw):
    """encode_sentences of the shared validation split (the defaults, as the pretraining's) and
    of a stand-in test split (any packed file: here the training file) into tmp_path."""
    from textseld.train.encode import encode_sentences

    return encode_sentences(
        pretrained_dir=pre_dir,
        text=text,
        text_cfg=TEXT_CFG,
        stats_h5=data["stats"],
        train_h5=data["train_h5"],
        split=None,
        validation_out=tmp_path / "val.h5",
        test_h5=data["train_h5"],
        test_out=tmp_path / "test.h5",
        **kw,
    )


def _h5_contents(path) -> dict:
    """Every dataset (as an array) and every attribute of an HDF5 file, by name."""
    import h5py

    found: dict = {}
    with h5py.File(path, "r") as f:
        found["/attrs"] = dict(f.attrs)
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def test_encode_sentences_writes_each_part_alone_as_all_together(data, pretrained, tmp_path):
    """The workflow writes one part per job (a test-split edit must not rerun the finetunings,
    which read only the validation and training parts): each part written alone is the file
    written with the others, array for array and attribute for attribute."""
    pre_dir, _ = pretrained
    together = _encode_sentences(data, pre_dir, tmp_path, "bert", train_out=tmp_path / "train.h5")
    common = {"pretrained_dir": pre_dir, "text": "bert", "text_cfg": TEXT_CFG, "stats_h5": data["stats"]}
    from textseld.train.encode import encode_sentences

    alone = [
        *encode_sentences(**common, train_h5=data["train_h5"], validation_out=tmp_path / "a" / "val.h5"),
        *encode_sentences(**common, test_h5=data["train_h5"], test_out=tmp_path / "a" / "test.h5"),
        *encode_sentences(**common, train_h5=data["train_h5"], train_out=tmp_path / "a" / "train.h5"),
    ]
    for one, other in zip(together, alone, strict=True):
        a, b = _h5_contents(one), _h5_contents(other)
        assert a.keys() == b.keys() and len(a) > 2
        for key in a:
            if key == "/attrs":
                assert {k: str(v) for k, v in a[key].items()} == {k: str(v) for k, v in b[key].items()}
            else:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{one.name}: {key}")


def test_encode_sentences_refuses_a_call_without_a_part_or_with_an_input_missing(tmp_path):
    from textseld.train.encode import encode_sentences

    common = {"pretrained_dir": tmp_path, "text": "bert", "text_cfg": None, "stats_h5": tmp_path / "s.h5"}
    with pytest.raises(ValueError, match="no part to write"):
        encode_sentences(**common, train_h5=tmp_path / "t.h5")
    with pytest.raises(ValueError, match=r"train_h5 \(None\) is read for.*validation_out"):
        encode_sentences(**common, validation_out=tmp_path / "v.h5")
    with pytest.raises(ValueError, match="test_h5 .* and test_out .* go together"):
        encode_sentences(**common, test_out=tmp_path / "o.h5")
    with pytest.raises(ValueError, match="test_h5 .* and test_out .* go together"):
        encode_sentences(**common, train_h5=tmp_path / "t.h5", train_out=tmp_path / "o.h5", test_h5=tmp_path / "x")
    assert list(tmp_path.iterdir()) == []  # refused before anything is read or written


def test_cached_tokenizer_outputs_train_and_predict_like_the_fixed_tokenizer(data, pretrained, tmp_path):
    """encode_tokens stores the fixed tokenizer's tokens, encode_sentences the text encoder's
    fixed-template outputs of the validation and test clips; a finetuning that reads them trains
    the same head (to float rounding: other batches) and selects the same epoch with the same
    validation result as one that computes everything itself, and predicting from the cached
    outputs gives the model's own outputs."""
    from textseld.data.hdf5 import PackedDataset
    from textseld.train.checkpoint import read_checkpoint
    from textseld.train.encode import encode_tokens, encoded_cache
    from textseld.train.rebuild import load_run

    pre_dir, _ = pretrained
    tokens = encode_tokens(
        pretrained_dir=pre_dir, features_h5=data["train_h5"], stats_h5=data["stats"], out=tmp_path / "tok.h5"
    )
    split = None  # the defaults, as the pretraining's
    validation, test = _encode_sentences(data, pre_dir, tmp_path, "clip")
    cfg = {**TRAIN_CFG, "epochs": 2, "freeze_tokenizer": True}
    kw = {"train_cfg": cfg, "split": split}
    plain = _finetune(data, pre_dir, tmp_path / "plain", "clip", "trep", **kw)
    cached = _finetune(data, pre_dir, tmp_path / "cached", "clip", "trep", tokens=tokens, encoded=validation, **kw)
    for key in ("epoch", "F", "DOAE", "RDE"):  # the same selection, the same validation result
        assert cached[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-4, nan_ok=True), key
    a, b = (read_checkpoint(tmp_path / r / "best.pt")["model"] for r in ("plain", "cached"))
    assert a.keys() == b.keys()
    for k in a:  # 2 epochs of Adam on the same batches: agree to rounding, not bit for bit
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
    config = json.loads((tmp_path / "cached" / "config.json").read_text())
    assert config["inputs"]["tokens"] == os.path.abspath(tokens)
    assert config["inputs"]["encoded_validation"] == os.path.abspath(validation)
    config, task, _, _ = load_run(tmp_path / "cached")
    dataset = PackedDataset(data["train_h5"], data["stats"])
    cache = encoded_cache(config, test, data["train_h5"], data["stats"], dataset.names)
    batch = next(iter(torch.utils.data.DataLoader(cache.wrap(dataset), batch_size=3)))
    assert "src" not in batch  # the cached outputs are all the head needs: no features are read
    features = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert features["name"] == batch["name"]
    with torch.no_grad():
        from_cache = task.predict(batch)
        from_features = task.predict(features)
    torch.testing.assert_close(from_cache, from_features, rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="train only with fixed training templates"):  # random ones here
        task.losses(batch, torch.Generator())


def test_cached_training_encodings_train_like_the_fixed_tokenizer_with_fixed_templates(
    data, pretrained, tmp_path, monkeypatch
):
    """With a fixed tokenizer and fixed training templates, encode_sentences(train_out=...) stores
    the text encoder's outputs of every training frame; a finetuning that trains its head on them
    takes the steps (to float rounding) and selects the epoch of one that computes them itself on
    all frames, without building the text encoder (its record in the files stands in: the same
    weights.json), and so does a prediction on cached test outputs; without fixed templates they
    are refused before the run directory is touched."""
    import textseld.models.factory
    from textseld.data.hdf5 import PackedDataset
    from textseld.train.checkpoint import read_checkpoint
    from textseld.train.encode import encoded_cache
    from textseld.train.predict import predict_split
    from textseld.train.rebuild import RunConfigError, load_run

    pre_dir, _ = pretrained
    validation, test, train = _encode_sentences(data, pre_dir, tmp_path, "bert", train_out=tmp_path / "train.h5")
    cfg = {**TRAIN_CFG, "epochs": 2, "freeze_tokenizer": True, "train_templates": "fixed", "lr_new": 3e-3}
    plain = _finetune(data, pre_dir, tmp_path / "plain", "bert", "grep", train_cfg=cfg)
    with monkeypatch.context() as m:  # every text-encoder output is read from files: none is built

        def not_built(*args, **kwargs):
            raise AssertionError("the text encoder was built")

        m.setattr(textseld.models.factory, "build_text_encoder", not_built)
        cached = _finetune(
            data, pre_dir, tmp_path / "cached", "bert", "grep", train_cfg=cfg, encoded=validation, encoded_train=train
        )
        from_cache = predict_split(
            tmp_path / "cached", data["train_h5"], data["stats"], tmp_path / "p1", encoded_h5=test
        )
        config = json.loads((tmp_path / "cached" / "config.json").read_text())
        dataset = PackedDataset(data["train_h5"], data["stats"])
        cache = encoded_cache(config, test, data["train_h5"], data["stats"], dataset.names)
        _, recorded_task, _, _ = load_run(tmp_path / "cached", text_encoder=cache.text_encoder())
    from_features = predict_split(tmp_path / "cached", data["train_h5"], data["stats"], tmp_path / "p2")
    assert [p.name for p in from_cache] == [p.name for p in from_features]
    _, built_task, _, _ = load_run(tmp_path / "cached")
    loader = torch.utils.data.DataLoader
    with torch.no_grad():  # the same network outputs from the cached path, to float rounding
        out_cached = recorded_task.predict(next(iter(loader(cache.wrap(dataset), batch_size=4))))
        out_built = built_task.predict(next(iter(loader(dataset, batch_size=4))))
    torch.testing.assert_close(out_cached, out_built, rtol=1e-4, atol=1e-5)
    weights = [json.loads((tmp_path / r / "weights.json").read_text()) for r in ("plain", "cached")]
    assert weights[1] == weights[0] and weights[0]["text_encoder"]
    for key in ("epoch", "F", "DOAE", "RDE"):
        assert cached[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-4, nan_ok=True), key
    a, b = (read_checkpoint(tmp_path / r / "best.pt")["model"] for r in ("plain", "cached"))
    for k in a:  # 2 epochs of Adam on the same batches: agree to rounding, not bit for bit
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
    config = json.loads((tmp_path / "cached" / "config.json").read_text())
    assert config["inputs"]["encoded_train"] == os.path.abspath(train)
    assert config["train"]["train_templates"] == "fixed"
    random_cfg = {**cfg, "train_templates": "random"}
    with pytest.raises(RunConfigError, match=r"train\.h5.*train_templates"):
        _finetune(data, pre_dir, tmp_path / "r", "bert", "grep", train_cfg=random_cfg, encoded_train=train)
    assert not (tmp_path / "r").exists()
    # batches of frames dealt across clips (textseld.train.frames): from the cached encodings only
    shuffled_cfg = {**cfg, "shuffle_frames": True}
    with pytest.raises(RunConfigError, match="shuffle_frames deals the training clips' cached encodings"):
        _finetune(data, pre_dir, tmp_path / "s", "bert", "grep", train_cfg=shuffled_cfg, encoded=validation)
    assert not (tmp_path / "s").exists()
    shuffled = _finetune(
        data, pre_dir, tmp_path / "s", "bert", "grep", train_cfg=shuffled_cfg, encoded=validation, encoded_train=train
    )
    rows = list(csv.DictReader(open(tmp_path / "s" / "log.csv")))
    plain_rows = list(csv.DictReader(open(tmp_path / "plain" / "log.csv")))
    assert [r["step"] for r in rows] == [r["step"] for r in plain_rows]  # as many steps, other batches
    assert float(rows[0]["loss"]) != pytest.approx(float(plain_rows[0]["loss"]), rel=1e-6)
    assert shuffled["epoch"] in (0, 1)


def test_an_identity_control_trains_its_head_on_the_cached_tokens_without_an_alignment_term(
    data, pretrained, tmp_path, monkeypatch
):
    """The identity control (docs/METHOD.md section 5): with a fixed tokenizer and fixed training
    templates it trains its head on the cached tokens alone (they are its validation and training
    outputs: no encode_sentences file), takes the steps and selects the epoch of a run that
    computes them itself, embeds no sentence, has no MAE term (config.json and provenance say so),
    records "identity (no text encoder)" as its text encoder, and predicts from the features."""
    import textseld.models.text_encoders
    from textseld.models.text_identity import NO_ALIGNMENT, NO_TEXT_ENCODER
    from textseld.recipes import apply_recipe
    from textseld.train.checkpoint import read_checkpoint
    from textseld.train.encode import encode_tokens
    from textseld.train.predict import predict_split
    from textseld.train.rebuild import RunConfigError

    pre_dir, _ = pretrained
    tokens = encode_tokens(
        pretrained_dir=pre_dir, features_h5=data["train_h5"], stats_h5=data["stats"], out=tmp_path / "tok.h5"
    )
    cfg = {**TRAIN_CFG, "epochs": 2, "freeze_tokenizer": True, "train_templates": "fixed", "lr_new": 3e-3}
    with monkeypatch.context() as m:  # no ground-truth sentence is embedded for the control

        def never(*args, **kwargs):
            raise AssertionError("a sentence was embedded for the identity control")

        m.setattr(textseld.models.text_encoders.GroundTruthCache, "embed", never)
        plain = _finetune(data, pre_dir, tmp_path / "plain", "identity", "grep", train_cfg=cfg)
        setup = apply_recipe({"recipe": "default"})
        kw = {"train_cfg": cfg, "tokens": tokens, "setup": setup, "texts": None}  # no sentences: no text store
        cached = _finetune(data, pre_dir, tmp_path / "cached", "identity", "grep", **kw)
        shuffled = _finetune(
            data, pre_dir, tmp_path / "s", "identity", "trep", train_cfg={**cfg, "shuffle_frames": True}, tokens=tokens
        )
    for key in ("epoch", "F", "DOAE", "RDE"):
        assert cached[key] == pytest.approx(plain[key], rel=1e-4, abs=1e-4, nan_ok=True), key
    a, b = (read_checkpoint(tmp_path / r / "best.pt")["model"] for r in ("plain", "cached"))
    assert (
        any(k.startswith("head.net.0") for k in a) and a["head.net.0.weight"].shape[1] == 3 * MODEL_CFG["token_width"]
    )
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5)
    assert shuffled["epoch"] in (0, 1)
    for run in ("plain", "cached", "s"):
        config = json.loads((tmp_path / run / "config.json").read_text())
        assert config["text"] == "identity" and config["alignment_loss"] is False
        weights = json.loads((tmp_path / run / "weights.json").read_text())
        assert weights["text_encoder"]["source"] == NO_TEXT_ENCODER
        rows = list(csv.DictReader(open(tmp_path / run / "log.csv")))
        assert rows and all(r["adpit"] != "nan" and r["mae"] == "nan" for r in rows)  # no step had an MAE term
    assert json.loads((tmp_path / "cached" / "provenance.json").read_text())["alignment_loss"] == NO_ALIGNMENT
    paths = predict_split(tmp_path / "cached", data["train_h5"], data["stats"], tmp_path / "pred")
    assert len(paths) == len(read_names_of(data["train_h5"]))
    # the split's cached tokens are the control's outputs at prediction too: the same network outputs
    from_tokens = predict_split(
        tmp_path / "cached", data["train_h5"], data["stats"], tmp_path / "pred2", encoded_h5=tokens
    )
    assert [p.name for p in from_tokens] == [p.name for p in paths]
    from textseld.data.hdf5 import PackedDataset
    from textseld.models.text_identity import IdentityTextEncoder
    from textseld.train.encode import token_cache
    from textseld.train.rebuild import load_run

    config, task, _, _ = load_run(tmp_path / "cached")
    dataset = PackedDataset(data["train_h5"], data["stats"])
    view = token_cache(config, tokens, data["train_h5"], data["stats"]).as_encoded(
        IdentityTextEncoder.encoded_from_tokens
    )
    loader = torch.utils.data.DataLoader
    with torch.no_grad():
        cached_batch = next(iter(loader(view.wrap(dataset), batch_size=4)))
        assert "src" not in cached_batch  # nothing before the head runs
        out_cached = task.predict(cached_batch)
        out_features = task.predict(next(iter(loader(dataset, batch_size=4))))
    torch.testing.assert_close(out_cached, out_features, rtol=1e-4, atol=1e-5)
    with pytest.raises(RunConfigError, match="identity control has no text encoder whose outputs are cached"):
        _finetune(data, pre_dir, tmp_path / "e", "identity", "grep", train_cfg=cfg, tokens=tokens, encoded=tokens)
    assert not (tmp_path / "e").exists()
    with pytest.raises(RunConfigError, match="alignment term needs the training split's sentences"):
        _finetune(data, pre_dir, tmp_path / "e", "bert", "grep", train_cfg=cfg, texts=None)
    assert not (tmp_path / "e").exists()


def read_names_of(path) -> list[str]:
    from textseld.data.hdf5 import read_names

    return list(read_names(path))


def test_cached_tokens_are_refused_when_they_do_not_belong_to_the_run(data, pretrained, tmp_path):
    from textseld.train.encode import encode_tokens
    from textseld.train.rebuild import RunConfigError

    pre_dir, _ = pretrained
    tokens = encode_tokens(
        pretrained_dir=pre_dir, features_h5=data["train_h5"], stats_h5=data["stats"], out=tmp_path / "tok.h5"
    )
    trained = {**TRAIN_CFG, "epochs": 1}
    with pytest.raises(RunConfigError, match="freeze_tokenizer"):  # a trained tokenizer computes its own
        _finetune(data, pre_dir, tmp_path / "a", "bert", "trep", train_cfg=trained, tokens=tokens)
    assert not (tmp_path / "a").exists()
    # another pretraining's tokens (same source, other seed): refused, naming the file and the key
    from textseld.train.runs import pretrain

    other = tmp_path / "pre_other"
    pretrain(other, data["train_h5"], data["stats"], "rcc", model_cfg=MODEL_CFG, train_cfg=TRAIN_CFG, seed=7)
    wrong = encode_tokens(
        pretrained_dir=other, features_h5=data["train_h5"], stats_h5=data["stats"], out=tmp_path / "wrong.h5"
    )
    fixed = {**trained, "freeze_tokenizer": True}
    with pytest.raises(RunConfigError, match=r"wrong\.h5.*pretrained_best_sha256"):
        _finetune(data, pre_dir, tmp_path / "b", "bert", "trep", train_cfg=fixed, tokens=wrong)
    with pytest.raises(RunConfigError, match="file not found"):
        _finetune(data, pre_dir, tmp_path / "c", "bert", "trep", train_cfg=fixed, tokens=tmp_path / "none.h5")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()  # refused before anything is written


def test_channel_swap_acts_in_the_training_data_of_every_run_and_is_refused_on_cached_outputs(
    data, pretrained, tmp_path, monkeypatch
):
    """train.channel_swap wraps the training clips (not the validation clips) of the Baseline,
    the pretraining and the finetuning; a finetuning that trains on cached tokenizer or
    text-encoder outputs cannot swap features and is refused before its run directory exists."""
    from textseld.train import augment
    from textseld.train.rebuild import RunConfigError
    from textseld.train.runs import pretrain, train_baseline

    served: list[str] = []
    original = augment.ChannelSwap.__getitem__

    def spy(self, i):
        served.append(self.dataset.item_names()[i])
        return original(self, i)

    monkeypatch.setattr(augment.ChannelSwap, "__getitem__", spy)
    cfg = {**TRAIN_CFG, "epochs": 1, "channel_swap": 1.0}
    split = json.loads((pretrained[0] / "split.json").read_text())
    runs = {
        "baseline": lambda d: train_baseline(d, data["train_h5"], data["stats"], model_cfg=MODEL_CFG, train_cfg=cfg),
        "pretrain": lambda d: pretrain(d, data["train_h5"], data["stats"], "rcc", model_cfg=MODEL_CFG, train_cfg=cfg),
        "finetune": lambda d: _finetune(data, pretrained[0], d, train_cfg=cfg),
    }
    for name, run in runs.items():
        served.clear()
        run(tmp_path / name)
        assert len(served) == split["n_train"], name
        assert not set(served) & set(split["validation_clips"]), name
        assert json.loads((tmp_path / name / "config.json").read_text())["train"]["channel_swap"] == 1.0
    fixed = {**cfg, "freeze_tokenizer": True, "train_templates": "fixed"}
    for cached in ({"tokens": data["train_h5"]}, {"encoded_train": data["train_h5"]}):
        with pytest.raises(RunConfigError, match=r"train\.channel_swap \(1\.0\).*set channel_swap to 0"):
            _finetune(data, pretrained[0], tmp_path / "cached", train_cfg=fixed, **cached)
        assert not (tmp_path / "cached").exists()


def test_alignment_reads_a_fixed_tokenizers_cached_outputs_and_recomputes_a_trained_ones(data, pretrained, tmp_path):
    """The alignment diagnostics of a run with a fixed tokenizer from the cached test outputs equal
    those recomputed from its checkpoint; a run that trains its tokenizer (the paper's recipe) is
    recomputed from its own checkpoint, not from the pretraining's tokenizer; a run or sentence
    file that does not fit is refused, naming it. (The training file stands in for the test split.)"""
    from textseld.metrics.alignment import AlignmentError, audio_embeddings, embed_test_sentences, run_alignment

    pre_dir, _ = pretrained
    _, test = _encode_sentences(data, pre_dir, tmp_path, "bert")
    sentences = embed_test_sentences(text="bert", text_cfg=TEXT_CFG, texts_h5=data["texts"], out=tmp_path / "s.h5")
    fixed, trained = tmp_path / "fixed", tmp_path / "trained"
    _finetune(data, pre_dir, fixed, "bert", "trep", train_cfg={**TRAIN_CFG, "epochs": 1, "freeze_tokenizer": True})
    _finetune(data, pre_dir, trained, "bert", "trep", train_cfg={**TRAIN_CFG, "epochs": 1, "lr_pretrained": 1e-2})
    common = {"features_h5": data["train_h5"], "stats_h5": data["stats"], "texts_h5": data["texts"]}
    cached = run_alignment(run_dir=fixed, **common, sentences_h5=sentences, out=tmp_path / "c.json", encoded_h5=test)
    again = run_alignment(run_dir=fixed, **common, sentences_h5=sentences, out=tmp_path / "r.json")
    assert json.loads((tmp_path / "c.json").read_text()) == cached
    assert cached["audio_A"].startswith("cached") and again["audio_A"].startswith("recomputed")
    for key in ("cosine_mean", "cosine_to_all_mean", "R1", "R10", "median_rank", "cosine_silent_mean"):
        assert cached[key] == pytest.approx(again[key], abs=1e-5), key
    assert cached["n_frames"] > 0 and cached["n_frames"] + cached["n_frames_silent"] == 9 * N_LABEL_FRAMES
    assert cached["chance"]["R1"] == pytest.approx(1 / cached["n_sentences"])
    own = run_alignment(run_dir=trained, **common, sentences_h5=sentences, out=tmp_path / "t.json")
    assert own["audio_A"].startswith("recomputed") and own["n_sentences"] == cached["n_sentences"]
    # A from audio of the trained tokenizer: its own, not the pretraining's (the cached outputs)
    mine = audio_embeddings(trained, data["train_h5"], data["stats"])
    theirs = audio_embeddings(fixed, data["train_h5"], data["stats"], test)
    assert max(float(np.abs(mine[n] - theirs[n]).max()) for n in mine) > 1e-4
    with pytest.raises(AlignmentError, match="text_encoder differs"):
        other = embed_test_sentences(
            text="bert",
            text_cfg={**TEXT_CFG, "bert_config": {**TEXT_CFG["bert_config"], "intermediate_size": 32}},
            texts_h5=data["texts"],
            out=tmp_path / "o.h5",
        )
        run_alignment(run_dir=fixed, **common, sentences_h5=other, out=tmp_path / "x.json")
    with pytest.raises(AlignmentError, match="only a finetuning"):
        run_alignment(run_dir=pre_dir, **common, sentences_h5=sentences, out=tmp_path / "p.json")
    assert not (tmp_path / "x.json").exists() and not (tmp_path / "p.json").exists()
