"""Extract the features, targets and label rows of one shard of a dataset into a packed file."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from textseld.data.audio import load_audio
from textseld.data.hdf5 import PackedWriter
from textseld.data.labels import read_labels
from textseld.data.layout import Clip, list_clips
from textseld.data.targets import build_targets
from textseld.features.extract import compute_features, feature_config_json

log = logging.getLogger(__name__)


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"shard I/N needs 0 <= I < N, got {text!r}")
    return index, count


def shard_clips(clips: Sequence[Clip], index: int, count: int) -> list[Clip]:
    """Contiguous block `index` of `count` of the (name-sorted) clip list."""
    n = len(clips)
    return list(clips[index * n // count : (index + 1) * n // count])


def extract_shard(
    root: str | os.PathLike,
    splits: Sequence[str],
    out: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    device: str = "cpu",
    batch_size: int = 8,
    wpe: Mapping[str, int] | None = None,
    threads: int | None = None,
) -> int:
    """Write features (src, doa, dist), ADPIT targets and label rows of shard I of N of the
    sorted clips of `splits` under `root` to the packed file `out`. Returns the clip count.
    wpe: WPE settings (taps, delay, iterations; default docs/METHOD.md section 2's), recorded in the file.
    threads: torch CPU threads (None: torch's default, all cores)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"feature extraction on {device!r} was asked for, but this job sees no CUDA device "
            "(on a cluster, request a GPU for it; or extract on 'cpu')"
        )
    clips = shard_clips(list_clips(root, splits), *shard)
    log.info("extracting %d clips (shard %d/%d of %s) on %s", len(clips), shard[0], shard[1], "+".join(splits), device)
    if threads:
        torch.set_num_threads(threads)
    config = feature_config_json(wpe)  # validates the WPE settings before any work
    with PackedWriter(out, "+".join(splits), config) as writer:
        for start in tqdm(range(0, len(clips), batch_size), desc=f"features {os.path.basename(out)}", unit="batch"):
            batch = clips[start : start + batch_size]
            names = [c.name for c in batch]
            audio = np.stack([load_audio(c.wav) for c in batch])
            rows = [read_labels(c.csv) for c in batch]
            targets = np.stack([build_targets(r, name=c.name) for r, c in zip(rows, batch)])
            feats = compute_features(audio, names=names, device=device, wpe_params=wpe)
            writer.append(names, feats["src"].numpy(), feats["doa"].numpy(), feats["dist"].numpy(), targets, rows)
    return len(clips)
