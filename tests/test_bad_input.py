"""The bad-input corpus: one small fixture per kind of bad input, generated at test time.
Each case gives an error naming the file (and line or key) and what was expected, or is
handled correctly; none passes silently."""

from __future__ import annotations

import json
import logging

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


def test_features_on_a_split_without_clips_is_an_error(tmp_path):
    from textseld.data.layout import DatasetError
    from textseld.features.pipeline import extract_shard

    (tmp_path / "stereo_dev" / "dev-test-x").mkdir(parents=True)
    (tmp_path / "metadata_dev" / "dev-test-x").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"dev-test-x hold no clips \(expected .*stereo_dev/dev-test-x/\*\.wav"):
        extract_shard(tmp_path, ["dev-test-x"], tmp_path / "test.h5")
    assert not (tmp_path / "test.h5").exists()


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
