"""Alignment diagnostics: does A from audio land near the A of the frame's ground-truth sentence?

For a text system (a frozen text encoder that embeds sentences, `embeds_sentences`), on the
test clips, each clip written into its fixed template (docs/METHOD.md section 8):

- A from audio: the text encoder's output driven by the frame's three audio tokens, read from
  the cached test outputs (`encode_sentences`, a fixed tokenizer) or recomputed with the run's
  own tokenizer (its checkpoint, `textseld.train.rebuild`);
- A of the frame's ground-truth sentence: the same encoder on the sentence in the same template
  (the MAE term's target: a frame with several events has one sentence naming them all, a frame
  without events a "no sound" sentence), embedded once per text encoder (`embed_test_sentences`).

Reported over the active frames (at least one event): the mean cosine similarity of the two,
and retrieval: the rank of the frame's true sentence among the split's N distinct active-frame
sentences by cosine with A from audio (ties share the mean of their ranks), as R@1, R@10 and the
median rank, with their chance levels (1/N, min(10, N)/N, (N + 1)/2). Silent frames are counted
and their mean cosine with their "no sound" sentence is reported apart (ten such sentences: no
retrieval). As a reference for the cosine: the mean cosine of A from audio with every candidate
sentence.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from textseld.atomic import atomic_path, write_text_atomic

log = logging.getLogger(__name__)

FORMAT = "textseld-sentence-embeddings-1"
_CHUNK = 1024  # frames per block of the (frames x sentences) similarity matrix


class AlignmentError(ValueError):
    """An input of the alignment diagnostics does not fit; the message names the file."""


def chance_levels(n_sentences: int) -> dict[str, float]:
    """R@1, R@10 and the median rank of a rank drawn uniformly from 1..N."""
    if n_sentences < 1:
        raise ValueError(f"chance levels need at least one candidate sentence, got {n_sentences}")
    return {"R1": 1.0 / n_sentences, "R10": min(10, n_sentences) / n_sentences, "median_rank": (n_sentences + 1) / 2}


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def retrieval_scores(audio: np.ndarray, truth: np.ndarray, candidates: np.ndarray) -> dict:
    """audio (n, E): A from audio of n frames; truth (n,): the index of each frame's true sentence
    in candidates (N, E), the A of the N distinct sentences. Returns the mean cosine of each
    frame's A with its true sentence's, the mean cosine with every candidate, the ranks' R@1, R@10
    and median (rank 1 = most similar; ties share the mean of their ranks) and the chance levels."""
    audio, candidates = np.asarray(audio), np.asarray(candidates)
    truth = np.asarray(truth, dtype=np.int64)
    n, big_n = len(audio), len(candidates)
    if n == 0:
        raise ValueError("retrieval_scores: no frame to score")
    if audio.ndim != 2 or candidates.ndim != 2 or audio.shape[1] != candidates.shape[1]:
        raise ValueError(f"retrieval_scores: audio {audio.shape}, candidates {candidates.shape}: not (n, E), (N, E)")
    if truth.shape != (n,) or truth.min() < 0 or truth.max() >= big_n:
        raise ValueError(f"retrieval_scores: truth must be ({n},) indices in 0..{big_n - 1}")
    a, c = _unit(audio), _unit(candidates)
    true_cos = np.empty(n)
    ranks = np.empty(n)
    all_cos = 0.0
    for start in range(0, n, _CHUNK):
        sims = a[start : start + _CHUNK] @ c.T  # (chunk, N)
        rows = np.arange(len(sims))
        own = sims[rows, truth[start : start + _CHUNK]]
        higher = (sims > own[:, None]).sum(axis=1)
        tied = (sims == own[:, None]).sum(axis=1) - 1  # the true sentence itself excluded
        true_cos[start : start + len(sims)] = own
        ranks[start : start + len(sims)] = 1 + higher + tied / 2
        all_cos += float(sims.sum())
    return {
        "n_frames": n,
        "n_sentences": big_n,
        "cosine_mean": float(true_cos.mean()),
        "cosine_to_all_mean": all_cos / (n * big_n),
        "R1": float(np.mean(ranks <= 1)),
        "R10": float(np.mean(ranks <= 10)),
        "median_rank": float(np.median(ranks)),
        "chance": chance_levels(big_n),
    }


def frame_sentences(texts_h5: str | os.PathLike) -> tuple[list[str], list[list[str]], np.ndarray]:
    """The test split's text store (`make_texts`) -> (clip names, each clip's fixed-template sentence
    per frame, (clips, frames) int array of the number of events per frame)."""
    from textseld.text.store import TextStore, TextStoreError

    try:
        store = TextStore(texts_h5)
        sentences = [store.fixed_sentences(i) for i in range(len(store))]
        events = np.array([[len(f) for f in store.frames(i)] for i in range(len(store))], dtype=np.int64)
    except TextStoreError as exc:
        raise AlignmentError(str(exc)) from None
    return list(store.names), sentences, events.reshape(len(store), store.n_frames)


def _record(text: str, text_cfg) -> dict:
    from textseld.train.rebuild import TEXT_ENCODER_SEED, text_encoder_record

    return {"text": text, "text_encoder": text_encoder_record(text_cfg or {}), "text_encoder_seed": TEXT_ENCODER_SEED}


def embed_test_sentences(
    *,
    text: str,
    text_cfg: dict | None,
    texts_h5: str | os.PathLike,
    out: str | os.PathLike,
    batch_size: int = 256,
    threads: int | None = None,
) -> Path:
    """Write the A of every distinct fixed-template sentence of the split `texts_h5` by the frozen
    text encoder `text` (`text_cfg`), built as every run builds it, to `out` (HDF5: `sentences`,
    `A` (N, E); attributes: the encoder's record and the text store's SHA-256)."""
    import torch

    from textseld.models.pretrained import sha256_file
    from textseld.models.text_config import embeds_sentences
    from textseld.train.rebuild import build_frozen_text_encoder

    if not embeds_sentences(text):
        raise AlignmentError(f"text encoder {text!r} embeds no sentence: it has no alignment to measure")
    if threads:
        torch.set_num_threads(threads)
    _, sentences, _ = frame_sentences(texts_h5)
    distinct = sorted({s for clip in sentences for s in clip})
    record = _record(text, text_cfg)
    encoder = build_frozen_text_encoder(text, record["text_encoder"], record["text_encoder_seed"])
    with torch.no_grad():
        emb = encoder.embed_sentences(distinct, batch_size=batch_size).float().cpu().numpy()
    with atomic_path(out, suffix=".h5", remove_stale=True) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("sentences", data=np.array(distinct, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("A", data=emb.reshape(len(distinct), -1).astype(np.float32))
        attrs = {**record, "texts_sha256": sha256_file(texts_h5), "format": FORMAT}
        f.attrs.update({k: json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for k, v in attrs.items()})
    log.info("wrote the %s embeddings of %d distinct sentences of %s to %s", text, len(distinct), texts_h5, out)
    return Path(out)


def read_sentence_embeddings(path: str | os.PathLike, expect: dict) -> dict[str, np.ndarray]:
    """sentence -> A of an `embed_test_sentences` file, checked against `expect` (attribute -> value)."""
    path = Path(path)
    if not path.is_file():
        raise AlignmentError(f"{path}: sentence embeddings not found (the workflow's embed_test_sentences)")
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise AlignmentError(f"{path}: not a file of sentence embeddings ({FORMAT} expected)")
        for key, value in expect.items():
            want = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
            if f.attrs.get(key) != want:
                raise AlignmentError(f"{path}: computed from other inputs than this run's ({key} differs)")
        sentences = list(f["sentences"].asstr()[:])
        emb = f["A"][:]
    return dict(zip(sentences, emb))


def audio_embeddings(
    run_dir: str | os.PathLike,
    features_h5: str | os.PathLike,
    stats_h5: str | os.PathLike | None,
    encoded_h5: str | os.PathLike | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> dict[str, np.ndarray]:
    """clip name -> A from audio (L, E) of every clip of `features_h5` under its fixed template:
    read from the cached test outputs `encoded_h5` of a fixed tokenizer (checked against the
    run), or recomputed with the run's tokenizer (its best.pt) and text encoder."""
    import torch

    from textseld.data.hdf5 import PackedDataset
    from textseld.train.encode import encoded_cache
    from textseld.train.loop import make_loader, to_device
    from textseld.train.predict import run_stats
    from textseld.train.rebuild import load_run, run_config
    from textseld.train.tasks import fixed_template_ids

    if threads:
        torch.set_num_threads(threads)
    config = run_config(run_dir)
    stats = run_stats(run_dir, config, stats_h5)
    names = PackedDataset(features_h5).names
    if encoded_h5 is not None:
        cache = encoded_cache(config, encoded_h5, features_h5, stats, names)
        return {n: cache.arrays["A"][cache.row[n]].numpy() for n in names}
    config, task, train_cfg, dev = load_run(run_dir, "best", device)
    model = task.model
    batch_size = train_cfg.val_batch_size or train_cfg.batch_size
    loader = make_loader(PackedDataset(features_h5, stats), batch_size, None, 0, 0)
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for batch in loader:
            a, _ = model.encode(to_device(batch, dev), fixed_template_ids(batch["name"], dev))
            out.update(zip(batch["name"], a.float().cpu().numpy()))
    return out


def run_alignment(
    *,
    run_dir: str | os.PathLike,
    features_h5: str | os.PathLike,
    stats_h5: str | os.PathLike | None,
    texts_h5: str | os.PathLike,
    sentences_h5: str | os.PathLike,
    out: str | os.PathLike,
    encoded_h5: str | os.PathLike | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> dict:
    """The alignment diagnostics of one text run on the clips of `features_h5` (module docstring),
    written as JSON to `out` and returned. texts_h5: the clips' text store; sentences_h5: its
    sentences' A (`embed_test_sentences`, by the run's text encoder); encoded_h5: the cached
    outputs of a fixed tokenizer, else A from audio is recomputed from the run's checkpoint."""
    from textseld.models.pretrained import sha256_file
    from textseld.models.text_config import embeds_sentences
    from textseld.train.rebuild import run_config

    config = run_config(run_dir)
    text = config.get("text")
    if config.get("kind") != "finetune" or not embeds_sentences(str(text)):
        raise AlignmentError(
            f"{run_dir}: a {config.get('kind')} run with text encoder {text!r}: only a finetuning with a "
            "text encoder that embeds sentences has an alignment to measure"
        )
    expect = {
        "text": text,
        "text_encoder": config["text_encoder"],
        "text_encoder_seed": config.get("text_encoder_seed", -1),
        "texts_sha256": sha256_file(texts_h5),
    }
    table = read_sentence_embeddings(sentences_h5, expect)
    names, sentences, events = frame_sentences(texts_h5)
    audio = audio_embeddings(run_dir, features_h5, stats_h5, encoded_h5, threads, device)
    missing = [n for n in names if n not in audio]
    if missing:
        raise AlignmentError(f"{features_h5}: no clip {missing[0]!r} of the text store {texts_h5}")
    active = [(n, f) for i, n in enumerate(names) for f in range(events.shape[1]) if events[i, f] > 0]
    silent = [(n, f) for i, n in enumerate(names) for f in range(events.shape[1]) if events[i, f] == 0]
    if not active:
        raise AlignmentError(f"{texts_h5}: no frame with an event: nothing to align")
    row = {n: i for i, n in enumerate(names)}
    candidates = sorted({sentences[row[n]][f] for n, f in active})
    index = {s: k for k, s in enumerate(candidates)}
    result = retrieval_scores(
        np.stack([audio[n][f] for n, f in active]),
        np.array([index[sentences[row[n]][f]] for n, f in active]),
        np.stack([table[s] for s in candidates]),
    )
    if silent:
        a = _unit(np.stack([audio[n][f] for n, f in silent]))
        s = _unit(np.stack([table[sentences[row[n]][f]] for n, f in silent]))
        silent_cos: float | None = float(np.mean(np.sum(a * s, axis=1)))
    else:
        silent_cos = None
    result.update(
        {
            "run_dir": str(run_dir),
            "text": text,
            "audio_A": "cached test outputs (fixed tokenizer)" if encoded_h5 is not None else "recomputed (best.pt)",
            "n_clips": len(names),
            "n_frames_several_events": int(np.sum(events > 1)),
            "n_frames_silent": len(silent),
            "cosine_silent_mean": silent_cos,
        }
    )
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    log.info(
        "%s: cosine %.3f, R@1 %.3f, R@10 %.3f, median rank %.1f of %d sentences",
        run_dir,
        result["cosine_mean"],
        result["R1"],
        result["R10"],
        result["median_rank"],
        result["n_sentences"],
    )
    return result
