"""Dataset layout on disk: pairing audio and label files by clip name.

`ROOT/stereo_dev/<split>/<stem>.wav` pairs with `ROOT/metadata_dev/<split>/<stem>.csv`.
Pairing is by stem, never by sort order, so that one missing file cannot
silently shift every later pair.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from textseld.constants import AUDIO_ROOT, META_ROOT


class DatasetError(ValueError):
    """The dataset folder does not have the expected layout; the message names the paths."""


@dataclass(frozen=True)
class Clip:
    """One clip: its name (file stem), split folder, audio and label paths."""

    name: str
    split: str
    wav: Path
    csv: Path


_CLIP_NAME = re.compile(
    r"fold(?P<fold>\d+)_room(?P<room>\d+)_mix(?P<mix>\d{3})_deg(?P<deg>\d{3})_start(?P<start>\d{4})"
)


def parse_clip_name(name: str) -> dict[str, int]:
    """Parse `fold{F}_room{R}_mix{MMM}_deg{DDD}_start{SSSS}` into integers.

    Returns dict(fold, room, mix, deg, start). A path or a name with a file
    extension is accepted (the stem is used). Raises DatasetError otherwise.
    """
    stem = Path(str(name)).name
    if stem.endswith((".wav", ".csv")):
        stem = stem[:-4]
    match = _CLIP_NAME.fullmatch(stem)
    if match is None:
        raise DatasetError(f"clip name {name!r} does not match fold{{F}}_room{{R}}_mix{{MMM}}_deg{{DDD}}_start{{SSSS}}")
    return {key: int(value) for key, value in match.groupdict().items()}


def files_by_stem(folder: Path, suffix: str) -> dict[str, Path]:
    """Files in `folder` whose extension is `suffix` (case-insensitive), keyed by stem."""
    return {p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == suffix}


def split_folders(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """(audio folder, metadata folder) of one split under `root`."""
    root = Path(root)
    return root / AUDIO_ROOT / split, root / META_ROOT / split


def available_splits(root: str | os.PathLike) -> list[str]:
    """Split names present under stereo_dev/ or metadata_dev/ (union, sorted)."""
    root = Path(root)
    names: set[str] = set()
    for sub in (AUDIO_ROOT, META_ROOT):
        if (root / sub).is_dir():
            names.update(p.name for p in (root / sub).iterdir() if p.is_dir())
    return sorted(names)


def pair_split(root: str | os.PathLike, split: str) -> tuple[list[Clip], list[tuple[Path, str]]]:
    """Pair one split's files by stem. Returns (clips sorted by name, problems).

    Each problem is (path, what is wrong): an unpaired file with the expected
    partner path, or a missing split folder.
    """
    wav_dir, csv_dir = split_folders(root, split)
    problems = [(d, f"split folder of '{split}' does not exist") for d in (wav_dir, csv_dir) if not d.is_dir()]
    if problems:
        return [], problems
    wavs = files_by_stem(wav_dir, ".wav")
    csvs = files_by_stem(csv_dir, ".csv")
    for stem in sorted(wavs.keys() - csvs.keys()):
        problems.append((wavs[stem], f"has no label file: expected {csv_dir / (stem + '.csv')}"))
    for stem in sorted(csvs.keys() - wavs.keys()):
        problems.append((csvs[stem], f"has no audio file: expected {wav_dir / (stem + '.wav')}"))
    clips = [Clip(stem, split, wavs[stem], csvs[stem]) for stem in sorted(wavs.keys() & csvs.keys())]
    return clips, problems


def _deeper_hint(folder: Path, suffix: str) -> str:
    """ "; found ... one folder deeper" when subfolders of `folder` hold `suffix` files, else ""."""
    deeper = sorted(d for d in folder.iterdir() if d.is_dir() and files_by_stem(d, suffix)) if folder.is_dir() else []
    return f"; there are {suffix} files one folder deeper, in {deeper[0]}: move them up" if deeper else ""


def dataset_problems(root: str | os.PathLike, splits: Iterable[str]) -> tuple[list[Clip], list[tuple[Path, str]]]:
    """The layout rules of a dataset, in one place (`check-data` reports them, feature
    extraction refuses on any): (clips of `splits` sorted by name, problems as (path, what)).

    Problems: a missing split folder, an unpaired file (with the expected partner), a clip
    name that does not parse, a split that holds no clips (naming files found one folder
    too deep, if any) and a clip found in two splits.
    """
    splits = [splits] if isinstance(splits, str) else list(splits)
    clips: list[Clip] = []
    problems: list[tuple[Path, str]] = []
    for split in splits:
        found, errs = pair_split(root, split)
        clips.extend(found)
        problems.extend(errs)
        wav_dir, csv_dir = split_folders(root, split)
        if not found and not errs:  # an empty split would silently make an empty feature file
            hint = _deeper_hint(wav_dir, ".wav") or _deeper_hint(csv_dir, ".csv")
            expected = f"expected {wav_dir}/*.wav with {csv_dir}/*.csv"
            problems.append((wav_dir, f"split '{split}' holds no clips ({expected}){hint}"))
        for clip in found:
            try:
                parse_clip_name(clip.name)
            except DatasetError as exc:
                problems.append((clip.wav, str(exc)))
    seen: dict[str, Clip] = {}
    for clip in clips:
        if clip.name in seen:
            first = seen[clip.name]
            problems.append(
                (
                    clip.wav,
                    f"clip {clip.name} is also in split '{first.split}' ({first.wav}); a clip belongs to one split",
                )
            )
        seen.setdefault(clip.name, clip)
    clips.sort(key=lambda c: c.name)
    return clips, problems


def list_clips(root: str | os.PathLike, splits: Iterable[str]) -> list[Clip]:
    """All clips of `splits` under `root`, paired by stem and sorted by name.

    Raises DatasetError listing every problem of `dataset_problems`.
    """
    clips, problems = dataset_problems(root, splits)
    if problems:
        lines = [f"{path}: {what}" for path, what in problems]
        more = f"\n... and {len(lines) - 20} more" if len(lines) > 20 else ""
        raise DatasetError("dataset layout problems:\n" + "\n".join(lines[:20]) + more)
    return clips


def collect_references(*, folders: Iterable[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Copy the reference CSVs of the given split folders into `out/<split>/` (the test
    split's references in one folder, so that a scorer sees exactly its clips).

    A folder without CSVs, or two folders with the same name, is an error naming them.
    The copy is built beside `out` and renamed into place; an existing `out` is replaced.
    """
    import shutil
    import tempfile

    out = Path(out)
    sources = [Path(f) for f in folders]
    names = [f.name for f in sources]
    for folder in sources:
        if not folder.is_dir() or not files_by_stem(folder, ".csv"):
            raise DatasetError(f"{folder}: expected a folder of reference CSV files")
    if len(set(names)) != len(names):
        raise DatasetError(f"reference folders share a name: {', '.join(map(str, sources))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for folder in sources:
            (tmp / folder.name).mkdir()
            for path in files_by_stem(folder, ".csv").values():
                shutil.copy2(path, tmp / folder.name / path.name)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
