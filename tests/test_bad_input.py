"""The bad-input corpus: one small fixture per kind of bad input, generated at test time.
Each case gives an error naming the file (and line or key) and what was expected, or is
handled correctly; none passes silently."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from textseld.cli import main
from textseld.constants import CLIP_SAMPLES, SAMPLE_RATE

HEADER = "frame,class,source,azimuth,distance,onscreen\n"
ROWS = "0,1,0,30,200,0\n3,4,0,-20,150,1\n"
NAME = "fold3_room1_mix001_deg000_start0000"


def _wav(path, n=CLIP_SAMPLES, channels=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.random.default_rng(0).uniform(-0.3, 0.3, (n, channels)), SAMPLE_RATE, subtype="PCM_16")
    return path


def _csv(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _dataset(root, split, labels):
    _wav(root / "stereo_dev" / split / f"{NAME}.wav")
    return _csv(root / "metadata_dev" / split / f"{NAME}.csv", labels)


# -------------------------------------------------------------- label files
DUPLICATES = {
    "duplicate-row": (HEADER + ROWS + "3,4,0,-20,150,1\n", 4, "repeats line 3"),
    "same-event-two-azimuths": (HEADER + ROWS + "3,4,0,45,150,1\n", 4, "contradicts line 3"),
}


@pytest.mark.parametrize("kind", DUPLICATES)
def test_duplicate_events_rejected_by_check_data_features_and_evaluate(tmp_path, kind, capsys):
    from textseld.data.labels import LabelFileError
    from textseld.features.pipeline import extract_shard
    from textseld.metrics.evaluate import evaluate_dirs

    text, line, what = DUPLICATES[kind]
    csv_path = _dataset(tmp_path, "dev-train-x", text)
    where = f"{csv_path}:{line}: {what}"
    # check-data
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 1
    assert where in capsys.readouterr().out
    # features
    with pytest.raises(LabelFileError, match=where):
        extract_shard(tmp_path, ["dev-train-x"], tmp_path / "train.h5")
    assert not (tmp_path / "train.h5").exists()
    # evaluate (the reference side)
    pred = _csv(tmp_path / "pred" / f"{NAME}.csv", HEADER + ROWS)
    with pytest.raises(LabelFileError, match=where):
        evaluate_dirs(tmp_path / "metadata_dev", pred.parent)


def test_byte_order_mark_is_accepted(tmp_path):
    from textseld.data.labels import read_labels

    plain = read_labels(_csv(tmp_path / "a.csv", HEADER + ROWS))
    bom = tmp_path / "b.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEADER + ROWS).encode())
    np.testing.assert_array_equal(read_labels(bom), plain)


def _empty_split(root):
    (root / "stereo_dev" / "dev-test-x").mkdir(parents=True)
    (root / "metadata_dev" / "dev-test-x").mkdir(parents=True)
    return ["dev-test-x"]


def _one_folder_too_deep(root):
    _wav(root / "stereo_dev" / "dev-test-x" / "dev-test-x" / f"{NAME}.wav")
    _csv(root / "metadata_dev" / "dev-test-x" / "dev-test-x" / f"{NAME}.csv", HEADER + ROWS)
    return ["dev-test-x"]


def _clip_in_two_splits(root):
    _dataset(root, "dev-train-x", HEADER + ROWS)
    _dataset(root, "dev-train-y", HEADER + ROWS)
    return ["dev-train-x", "dev-train-y"]


REFUSED_DATASETS = {
    "split-without-clips": (
        _empty_split,
        r"stereo_dev/dev-test-x: split 'dev-test-x' holds no clips \(expected .*stereo_dev/dev-test-x/\*\.wav",
    ),
    "clips-one-folder-too-deep": (
        _one_folder_too_deep,
        r"holds no clips .*; there are \.wav files one folder deeper, in .*stereo_dev/dev-test-x/dev-test-x: move them",
    ),
    "clip-in-two-splits": (
        _clip_in_two_splits,
        rf"stereo_dev/dev-train-y/{NAME}\.wav: clip {NAME} is also in split 'dev-train-x'",
    ),
}


@pytest.mark.parametrize("case", REFUSED_DATASETS)
def test_check_data_and_features_refuse_the_same_datasets(tmp_path, case, capsys):
    from textseld.data.layout import DatasetError
    from textseld.features.pipeline import extract_shard

    make, expected = REFUSED_DATASETS[case]
    splits = make(tmp_path)
    assert main(["check-data", str(tmp_path), "--no-progress", "--splits", *splits]) == 1
    assert re.search(expected, capsys.readouterr().out)
    with pytest.raises(DatasetError, match=expected):
        extract_shard(tmp_path, splits, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_check_data_and_features_accept_24_bit_and_float_wavs(tmp_path, subtype, capsys):
    from textseld.features.pipeline import extract_shard

    _csv(tmp_path / "metadata_dev" / "dev-test-x" / f"{NAME}.csv", HEADER + ROWS)
    wav = tmp_path / "stereo_dev" / "dev-test-x" / f"{NAME}.wav"
    wav.parent.mkdir(parents=True)
    sf.write(str(wav), np.random.default_rng(0).uniform(-0.3, 0.3, (CLIP_SAMPLES, 2)), SAMPLE_RATE, subtype=subtype)
    assert main(["check-data", str(tmp_path), "--no-progress"]) == 0, capsys.readouterr().out
    assert extract_shard(tmp_path, ["dev-test-x"], tmp_path / "out.h5") == 1


# ---------------------------------------------------------------- evaluate
@pytest.fixture
def refs(tmp_path):
    return _csv(tmp_path / "refs" / "dev-test-x" / f"{NAME}.csv", HEADER + ROWS).parent.parent


def test_evaluate_empty_prediction_folder_is_an_error_not_f0(tmp_path, refs):
    from textseld.metrics.evaluate import evaluate_dirs

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'empty'}: no prediction CSV files .*{NAME}\.csv"):
        evaluate_dirs(refs, tmp_path / "empty")
    assert main(["evaluate", "--ref", str(refs), "--pred", str(tmp_path / "empty")]) != 0


def test_evaluate_predictions_one_folder_too_deep_names_the_folder(tmp_path, refs):
    from textseld.metrics.evaluate import evaluate_dirs

    _csv(tmp_path / "pred" / "seed0" / f"{NAME}.csv", HEADER + ROWS)
    with pytest.raises(FileNotFoundError, match=rf"there are CSVs in {tmp_path / 'pred' / 'seed0'}"):
        evaluate_dirs(refs, tmp_path / "pred")


def test_evaluate_wrong_prediction_path_is_an_error(tmp_path, refs):
    from textseld.metrics.evaluate import evaluate_dirs

    with pytest.raises(FileNotFoundError, match=f"prediction folder {tmp_path / 'nope'} does not exist"):
        evaluate_dirs(refs, tmp_path / "nope")


def test_evaluate_reads_upper_case_csv_extension_and_ignores_other_files(tmp_path, refs):
    from textseld.metrics.evaluate import evaluate_dirs

    lower = evaluate_dirs(refs, _csv(tmp_path / "a" / f"{NAME}.csv", HEADER + ROWS).parent)
    upper_dir = _csv(tmp_path / "b" / f"{NAME}.CSV", HEADER + ROWS).parent
    (upper_dir / ".snakemake_timestamp").write_text("")
    upper = evaluate_dirs(refs, upper_dir)
    assert upper["n_pred_files"] == 1 and upper["F"] == pytest.approx(lower["F"])
    _csv(upper_dir / f"{NAME}.csv", HEADER + ROWS)
    with pytest.raises(ValueError, match="also has a prediction file"):
        evaluate_dirs(refs, upper_dir)


# ------------------------------------------------------------ predict --audio
def test_predict_audio_inputs_sharing_a_stem_are_refused_before_any_work(tmp_path):
    from textseld.train.predict import AudioInputError, predict_audio

    a, b = _wav(tmp_path / "x" / "take.wav", n=100), _wav(tmp_path / "y" / "take.wav", n=100)
    with pytest.raises(AudioInputError, match=rf"{b}: has the file name stem of {a} \('take'\)"):
        predict_audio(tmp_path / "no-run", [a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_and_missing_wav_are_named(tmp_path):
    from textseld.train.predict import AudioInputError, read_stereo

    whole = _wav(tmp_path / "whole.wav")
    assert read_stereo(whole).shape == (2, CLIP_SAMPLES)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioInputError, match=rf"{cut}: truncated WAV: its header declares {4 * CLIP_SAMPLES} bytes"):
        read_stereo(cut)
    with pytest.raises(AudioInputError, match=f"{tmp_path / 'gone.wav'}: audio file not found"):
        read_stereo(tmp_path / "gone.wav")
    assert (
        main(
            [
                "predict",
                "--run-dir",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--audio",
                str(tmp_path / "gone.wav"),
            ]
        )
        != 0
    )


# ------------------------------------------------ predict --features statistics
def test_predict_uses_the_run_statistics_or_refuses(tmp_path, caplog):
    from textseld.models.pretrained import sha256_file
    from textseld.train.predict import run_stats

    stats = tmp_path / "stats.h5"
    stats.write_bytes(b"stats of the training split")
    other = tmp_path / "other.h5"
    other.write_bytes(b"other statistics")
    config = {"inputs": {"stats_h5": str(stats)}, "input_sha256": {"stats_h5": sha256_file(stats)}}
    assert run_stats("run", config, None) == stats  # the default: what the run trained with
    with caplog.at_level(logging.WARNING):
        assert run_stats("run", config, other) == other
    assert "not the statistics run trained with" in caplog.text
    stats.unlink()
    with pytest.raises(FileNotFoundError, match=rf"run: the statistics it trained with \({stats}\) are not there"):
        run_stats("run", config, None)


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("epochs", 2.0, "expected a positive integer, got 2.0"),
        ("batch_size", "8", "expected a positive integer"),
        ("lr", "1e-4", "expected"),
        ("epochz", 3, "valid keys: epochs"),
    ],
)
def test_training_config_types_are_checked_naming_the_key(key, value, expected):
    """YAML's `2.0` passes an integer JSON schema and `1e-4` is a string: the config class says so."""
    from textseld.train.config import TrainConfig

    with pytest.raises(ValueError, match=f"'{key}'") as err:
        TrainConfig.from_dict({key: value})
    assert expected in str(err.value)


# ---------------------------------------------------------------- weights
def test_clip_torchscript_archive_is_refused_not_executed(tmp_path):
    from textseld.models.text_clip import load_clip_state_dict

    path = tmp_path / "ViT-B-16.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(ValueError, match=rf"{path}: a TorchScript archive .*weights_only=True"):
        load_clip_state_dict(path)
    sd = tmp_path / "sd.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), sd)
    assert set(load_clip_state_dict(sd)) == {"weight", "bias"}


def test_prediction_manifest_folder_holds_only_the_csvs(tmp_path):
    """What the workflow's predict rule leaves: the folder holds the CSVs only; a rerun
    replaces it as a whole (no stale CSVs), an interrupted one's temporary is cleared."""
    from textseld.train.predict import _fresh_folder, _swap_folder

    final = tmp_path / "predictions" / "seed0"
    _csv(final / "old-clip.csv", HEADER)
    (tmp_path / "predictions" / ".seed0.abc.tmp").mkdir()  # left by a killed call
    new = _fresh_folder(final)
    assert not (tmp_path / "predictions" / ".seed0.abc.tmp").exists()
    _csv(new / f"{NAME}.csv", HEADER + ROWS)
    _swap_folder(new, final)
    assert sorted(p.name for p in final.iterdir()) == [f"{NAME}.csv"]
    assert sorted(p.name for p in final.parent.iterdir()) == ["seed0"]
    assert json.dumps(sorted(p.name for p in final.iterdir()))  # plain listing


def test_unreadable_text_store_is_named(tmp_path):
    from textseld.text.store import TextStore, TextStoreError, read_packed_labels

    bad = tmp_path / "texts.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 600)  # an HDF5 signature and nothing valid after it
    with pytest.raises(TextStoreError, match=str(bad)):
        TextStore(bad)
    with pytest.raises(TextStoreError, match=str(bad)):
        read_packed_labels(bad)


VERIFY_CASES = {
    "missing-folder": (lambda d: None, "{d}: weights folder does not exist"),
    "no-manifest": (lambda d: d.mkdir(), "{d}/manifest.json: not found"),
    "empty-manifest": (
        lambda d: (d.mkdir(), (d / "manifest.json").write_text('{"entries": {}}')),
        "{d}/manifest.json: lists no weights",
    ),
}


@pytest.mark.parametrize("case", VERIFY_CASES)
def test_verify_weights_fails_on_a_folder_without_weights(tmp_path, case, capsys):
    make, expected = VERIFY_CASES[case]
    folder = tmp_path / "weights"
    make(folder)
    assert main(["verify-weights", "--dir", str(folder)]) == 1
    assert expected.format(d=folder) in capsys.readouterr().out


def test_damaged_weights_manifest_is_named(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text('{"entries": {"clip": ')
    assert main(["verify-weights", "--dir", str(tmp_path)]) == 1
    assert f"{tmp_path / 'manifest.json'}: not a valid weights manifest" in capsys.readouterr().err


# ------------------------------------------ messages that say what and where (CLI)
@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A tiny packed training file, its statistics and an empty shard (no training)."""
    from test_train_runs import write_packed
    from textseld.data.hdf5 import PackedWriter
    from textseld.features.extract import feature_config_json

    root = tmp_path_factory.mktemp("packed")
    train_h5, stats = write_packed(root / "train.h5")
    with PackedWriter(root / "empty.h5", "dev-train-x", feature_config_json()):
        pass
    (root / "a-file").write_text("not a folder")
    return {"train": train_h5, "stats": stats, "empty": root / "empty.h5", "file": root / "a-file"}


def _train_args(d, out, stats=None):
    return ["train-baseline", "--features", d["train"], "--stats", stats or d["stats"], "--out", out, "--size", "tiny"]


def _damaged_run(tmp_path, last=False):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"kind": "baseline", ')
    if last:
        (run / "last.pt").write_bytes(b"")
    return run


# case -> (argv from (packed files, tmp_path), expected error text, paths that must not exist afterwards)
MESSAGES = {
    "out-is-a-file": (
        lambda d, t: _train_args(d, d["file"]),
        "{file}: is a file; expected a folder there",
        [],
    ),
    "out-under-a-file": (
        lambda d, t: ["feature-stats", "--features", d["train"], "--out", d["file"] / "stats.h5"],
        "{file}: is a file; expected a folder there (or nothing, for the folder to be made)",
        [],
    ),
    "stats-given-packed-features": (
        lambda d, t: _train_args(d, t / "run", stats=d["train"]),
        "{train}: a packed features file: expected the statistics of feature-stats",
        ["run"],
    ),
    "evaluate-pred-is-a-file": (
        lambda d, t: ["evaluate", "--ref", t, "--pred", d["file"]],
        "{file}: a file; expected the prediction folder",
        [],
    ),
    "shards-without-clips": (
        lambda d, t: ["pack-features", "--shards", d["empty"], "--out", t / "packed.h5"],
        "{empty}: the shards hold no clips (expected at least one",
        ["packed.h5"],
    ),
    "packed-file-without-clips": (
        lambda d, t: ["feature-stats", "--features", d["empty"], "--out", t / "stats.h5"],
        "{empty}: holds no clips",
        ["stats.h5"],
    ),
    "pack-features-zero-batch": (
        lambda d, t: ["pack-features", "--shards", d["train"], "--out", t / "p.h5", "--batch-size", "0"],
        "batch_size must be >= 1, got 0",
        ["p.h5"],
    ),
    "damaged-run-config-predict": (
        lambda d, t: ["predict", "--run-dir", _damaged_run(t), "--out", t / "pred", "--features", d["train"]],
        "{tmp}/run/config.json: damaged run configuration (Expecting",
        ["pred"],
    ),
    "damaged-run-config-resume": (
        lambda d, t: _train_args(d, _damaged_run(t, last=True)),
        "{tmp}/run/config.json: damaged run configuration (Expecting",
        [],
    ),
}


@pytest.mark.parametrize("case", MESSAGES)
def test_errors_name_the_file_and_what_was_expected_and_leave_nothing(packed, tmp_path, case, capsys):
    make, expected, absent = MESSAGES[case]
    argv = [str(a) for a in make(packed, tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert expected.format(tmp=tmp_path, **packed) in err, err
    for name in absent:
        assert not (tmp_path / name).exists(), name
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob("*.tmp"))
