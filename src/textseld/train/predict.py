"""Prediction with a trained run: DCASE CSVs for a packed split or for arbitrary WAV files.

The model is rebuilt from the run's `config.json` (`textseld.train.rebuild`:
frozen pretrained parts from their files, under the run's seed), its trainable
weights from `best.pt` (or `last.pt`, or a given file). Text models use each clip's fixed
template (derived from its name) and all frames: no randomness at test time.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from textseld.atomic import write_text_atomic
from textseld.constants import CLIP_SAMPLES, IDENTITY, N_CHANNELS, N_LABEL_FRAMES, SAMPLE_RATE
from textseld.train.encode import encoded_cache, token_cache
from textseld.train.loop import make_loader, to_device
from textseld.train.rebuild import load_run, run_config

log = logging.getLogger(__name__)


class AudioInputError(ValueError):
    """An input WAV cannot be used; the message names the file."""


@torch.no_grad()
def predict_split(
    run_dir: str | os.PathLike,
    features_h5: str | os.PathLike,
    stats_h5: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    checkpoint: str = "best",
    device: str | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    manifest: str | os.PathLike | None = None,
    encoded_h5: str | os.PathLike | None = None,
) -> list[Path]:
    """Write `<out_dir>/<clip>.csv` for every clip of a packed features file (empty clips: header only).

    stats_h5: the normalisation statistics (None: the run's own, see run_stats).
    threads: torch CPU threads (None: torch's default). manifest: a JSON file
    listing the written CSVs; with it, out_dir is owned by the caller (the
    workflow) and replaced as a whole: it ends up holding exactly these CSVs
    and nothing else (other tools, e.g. the official DCASE evaluation, read
    every file in it), and an interrupted call leaves the previous folder.
    encoded_h5: the fixed-template text-encoder outputs of these clips (`encode_sentences`), for
    a finetuning run with a fixed tokenizer: only its head then runs (checked against the run);
    for an identity control, the fixed tokenizer's tokens of these clips (`encode_tokens`).
    """
    from textseld.data.hdf5 import PackedDataset
    from textseld.metrics.predictions import write_outputs

    if threads:
        torch.set_num_threads(threads)
    config = run_config(run_dir)
    stats = run_stats(run_dir, config, stats_h5)
    dataset: Any = PackedDataset(features_h5, stats)
    cache = None
    if encoded_h5 is not None and config.get("text") == IDENTITY:  # the control's outputs: its tokens
        from textseld.models.text_identity import IdentityTextEncoder

        tokens = token_cache(config, encoded_h5, features_h5, stats)
        cache = tokens.as_encoded(IdentityTextEncoder.encoded_from_tokens)
        dataset = cache.wrap(dataset)
    elif encoded_h5 is not None:
        cache = encoded_cache(config, encoded_h5, features_h5, stats, dataset.names)
        dataset = cache.wrap(dataset)
    # with every text-encoder output cached, the encoder is not built (its record stands in)
    config, task, train_cfg, dev = load_run(
        run_dir, checkpoint, device, text_encoder=cache.text_encoder() if cache is not None else None
    )
    loader = make_loader(
        dataset,
        batch_size or train_cfg.val_batch_size or train_cfg.batch_size,
        None,
        train_cfg.num_workers,
        int(config["seed"]),
    )
    final = Path(out_dir)
    made = [p for p in final.parents if not p.exists()]  # deepest first
    target = _fresh_folder(final)  # a failed call leaves nothing behind
    paths: list[Path] = []
    try:
        for batch in tqdm(loader, desc=f"predict {Path(features_h5).name}", disable=not train_cfg.progress):
            out = task.predict(to_device(batch, dev)).float().cpu()
            paths += write_outputs(target, list(batch["name"]), out)
    except BaseException:
        _drop_folder(target, made)
        raise
    if manifest is not None:
        _swap_folder(target, final)
    else:
        _move_files(target, final)
    paths = [final / p.name for p in paths]
    if manifest is not None:
        write_text_atomic(
            manifest,
            json.dumps({"folder": str(final), "n_files": len(paths), "files": sorted(p.name for p in paths)}, indent=2)
            + "\n",
        )
    log.info("wrote %d prediction files to %s", len(paths), final)
    return paths


def _fresh_folder(final: Path) -> Path:
    """An empty temporary folder beside `final` (stale ones of killed calls removed first)."""
    import shutil
    import tempfile

    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


def _drop_folder(folder: Path, made: list[Path]) -> None:
    """Remove `folder` and the (empty) folders in `made` that a failed call created."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    for parent in made:
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _move_files(new: Path, final: Path) -> None:
    """Move the files of folder `new` into `final` (made if need be; other files there stay)."""
    final.mkdir(parents=True, exist_ok=True)
    for path in sorted(new.iterdir()):
        os.replace(path, final / path.name)
    new.rmdir()


def _swap_folder(new: Path, final: Path) -> None:
    """Put folder `new` in the place of `final` (whatever was there is removed)."""
    import shutil

    from textseld.atomic import current_umask

    os.chmod(new, 0o777 & ~current_umask())  # mkdtemp makes 0700
    if final.exists():
        old = new.with_name(new.name[: -len(".tmp")] + ".old.tmp")
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)


def run_stats(run_dir: str | os.PathLike, config: dict, stats_h5: str | os.PathLike | None) -> Path:
    """The normalisation statistics to predict with: `stats_h5`, or (None) those the run
    trained with. A model never sees unstandardised features: without either, an error.
    Statistics other than the run's (sha256 recorded in config.json) are used with a warning."""
    from textseld.models.pretrained import sha256_file

    recorded = config.get("inputs", {}).get("stats_h5")
    if stats_h5 is None:
        if not recorded or not Path(recorded).is_file():
            raise FileNotFoundError(
                f"{run_dir}: the statistics it trained with ({recorded}) are not there; "
                f"give the training split's stats.h5 (--stats)"
            )
        return Path(recorded)
    expected = config.get("input_sha256", {}).get("stats_h5")
    if expected and Path(stats_h5).is_file() and sha256_file(stats_h5) != expected:
        log.warning(
            "%s: not the statistics %s trained with (%s); its predictions may be off", stats_h5, run_dir, recorded
        )
    return Path(stats_h5)


# ------------------------------------------------------------------ raw audio
def _wav_shortfall(path: Path) -> tuple[int, int] | None:
    """(bytes present, bytes declared) of a RIFF/WAVE file's data chunk when the file ends
    before it does (a truncated copy or download); None otherwise or for other formats."""
    import struct

    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, n = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                present = size - fh.tell()
                return (present, n) if n not in (0, 0xFFFFFFFF) and present < n else None
            fh.seek(n + (n & 1), os.SEEK_CUR)


def read_stereo(path: str | os.PathLike) -> np.ndarray:
    """(2, N) float32 at SAMPLE_RATE (resampled if needed); errors name the file."""
    import soundfile as sf

    if not Path(path).is_file():
        raise AudioInputError(f"{path}: audio file not found")
    short = _wav_shortfall(Path(path))
    if short is not None:
        raise AudioInputError(
            f"{path}: truncated WAV: its header declares {short[1]} bytes of audio, the file "
            f"holds {short[0]}; predicting it would score a partial recording as whole"
        )
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioInputError(f"{path}: cannot read audio ({exc})") from None
    if audio.shape[1] != N_CHANNELS:
        raise AudioInputError(f"{path}: expected a stereo (2-channel) file, got {audio.shape[1]} channel(s)")
    if audio.shape[0] == 0:
        raise AudioInputError(f"{path}: the file holds no samples")
    audio = audio.T
    if sr != SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio.T, sr, SAMPLE_RATE).T.astype(np.float32)
    return np.ascontiguousarray(audio)


def windows(audio: np.ndarray) -> list[np.ndarray]:
    """Cut (2, N) into 5 s windows (2, CLIP_SAMPLES); the last one zero-padded."""
    n = audio.shape[1]
    out = []
    for start in range(0, max(n, 1), CLIP_SAMPLES):
        chunk = audio[:, start : start + CLIP_SAMPLES]
        if chunk.shape[1] < CLIP_SAMPLES:
            chunk = np.pad(chunk, ((0, 0), (0, CLIP_SAMPLES - chunk.shape[1])))
        out.append(chunk)
    return out


def _standardise(feats: dict[str, torch.Tensor], stats_h5) -> dict[str, torch.Tensor]:
    """Standardise like PackedDataset does: (x - mean) / std per channel and band."""
    from textseld.data.hdf5 import read_stats

    for key, (mean, std) in read_stats(stats_h5).items():
        feats[key] = (feats[key] - torch.from_numpy(mean)[:, None, :]) / torch.from_numpy(std)[:, None, :]
    return feats


@torch.no_grad()
def predict_audio(
    run_dir: str | os.PathLike,
    audio: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    checkpoint: str = "best",
    stats_h5: str | os.PathLike | None = None,
    device: str | None = None,
) -> list[Path]:
    """Write `<out_dir>/<wav stem>.csv` for each stereo WAV of any length and sample rate.

    Long files are processed in 5 s windows, frame indices continuing across
    windows (window w's frame f is written as w * 50 + f); the last window is
    zero-padded, and the events of frames that start after the end of the audio
    (in that padding) are dropped. stats_h5 defaults to the run's training statistics.
    """
    from textseld.features.extract import compute_features
    from textseld.metrics.decode import decode_output
    from textseld.metrics.predictions import write_prediction

    by_stem: dict[str, Path] = {}
    for p in map(Path, audio):  # one CSV per stem: two inputs with one stem would overwrite each other
        if p.stem in by_stem:
            raise AudioInputError(
                f"{p}: has the file name stem of {by_stem[p.stem]} ({p.stem!r}); both would be "
                f"written to {Path(out_dir) / (p.stem + '.csv')}: predict them into separate "
                f"folders"
            )
        by_stem[p.stem] = p
    config, task, _, dev = load_run(run_dir, checkpoint, device)
    stats_h5 = run_stats(run_dir, config, stats_h5)
    signals = [(Path(p), read_stereo(p)) for p in audio]  # fail on a bad file before any work
    paths = []
    for path, signal in tqdm(signals, desc="predict audio", disable=len(signals) < 2):
        chunks = windows(signal)
        labels = [f"{path} (window {w})" for w in range(len(chunks))]
        # One window at a time: each is peak-normalised on its own, like a 5 s dataset clip.
        rows = []
        for w, chunk in enumerate(chunks):
            feats = _standardise(compute_features(chunk[None], names=labels[w : w + 1]), stats_h5)
            batch: dict[str, Any] = {k: feats[k].to(dev) for k in ("src", "doa", "dist")}
            batch["name"] = [path.stem]
            r = decode_output(task.predict(batch)[0].float().cpu())
            r[:, 0] += w * N_LABEL_FRAMES
            rows.append(r)
        events = np.concatenate(rows, axis=0)
        events = events[events[:, 0] < audio_frames(signal.shape[1])]  # not the last window's padding
        paths.append(write_prediction(out_dir, path.stem, events))
    return paths


def audio_frames(n_samples: int) -> int:
    """Label frames (100 ms) that hold audio of an n-sample signal: those starting before its end."""
    per_frame = CLIP_SAMPLES // N_LABEL_FRAMES
    return -(-n_samples // per_frame)
