"""Validate a dataset folder (DCASE2025 layout) and report EVERY problem.

The rules are those feature extraction applies, from their one owner each: the
layout of `textseld.data.layout.dataset_problems` (files pair up by stem, clip names
parse, no split without clips, no clip in two splits), the audio of `textseld.data.audio` (2 channels,
24 kHz, exactly 120 000 finite samples), the reference-label rules of
`textseld.data.labels` (each bad line reported). Nothing stops at the first problem, so
one run lists everything to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from textseld.data.audio import clip_audio_problems
from textseld.data.labels import label_file_errors
from textseld.data.layout import (
    available_splits,
    dataset_problems,
    files_by_stem,
    split_folders,
)


@dataclass(frozen=True)
class Problem:
    """One problem: the file, the line (CSV rows; None otherwise) and what is wrong."""

    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.message}"


@dataclass
class CheckReport:
    """Result of `check_dataset`: what was checked and every problem found."""

    root: Path
    splits: list[str]
    n_audio: dict[str, int] = field(default_factory=dict)
    n_labels: dict[str, int] = field(default_factory=dict)
    n_clips: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = [
            f"{split}: {self.n_clips.get(split, 0)} clips "
            f"({self.n_audio.get(split, 0)} wav, {self.n_labels.get(split, 0)} csv)"
            for split in self.splits
        ]
        verdict = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines.append(f"{self.root}: {verdict}")
        return "\n".join(lines)


def check_audio(path: str | os.PathLike) -> list[Problem]:
    """Problems of one WAV, by the rules of `textseld.data.audio` (those of feature extraction)."""
    return [Problem(Path(path), None, what) for what in clip_audio_problems(path)[1]]


def check_labels(path: str | os.PathLike) -> list[Problem]:
    """Problems of one reference CSV, one per bad line."""
    path = Path(path)
    try:
        errors = label_file_errors(path, kind="reference")
    except OSError as exc:
        return [Problem(path, None, f"unreadable label file ({exc})")]
    problems = []
    for e in errors:
        # LabelFileError's text is "file[:line]: message"; keep just the message.
        prefix = f"{e.path}:{e.line}: " if e.line is not None else f"{e.path}: "
        text = str(e)
        problems.append(Problem(Path(e.path), e.line, text[len(prefix) :] if text.startswith(prefix) else text))
    return problems


def check_dataset(root: str | os.PathLike, splits: Iterable[str] | None = None, progress: bool = True) -> CheckReport:
    """Check `splits` (default: every split folder under stereo_dev/ or metadata_dev/).

    Returns a CheckReport; it never raises for bad data, only collects.
    """
    root = Path(root)
    splits = available_splits(root) if splits is None else list(splits)
    report = CheckReport(root=root, splits=splits)
    if not splits:
        report.problems.append(Problem(root, None, "no split folders under stereo_dev/ or metadata_dev/"))
        return report
    clips, layout_problems = dataset_problems(root, splits)
    report.problems.extend(Problem(path, None, what) for path, what in layout_problems)
    for split in splits:
        wav_dir, csv_dir = split_folders(root, split)
        report.n_clips[split] = sum(c.split == split for c in clips)
        # Check every file present, paired or not.
        wavs = sorted(files_by_stem(wav_dir, ".wav").values()) if wav_dir.is_dir() else []
        csvs = sorted(files_by_stem(csv_dir, ".csv").values()) if csv_dir.is_dir() else []
        report.n_audio[split], report.n_labels[split] = len(wavs), len(csvs)
        for path in tqdm(wavs, desc=f"{split} audio", unit="file", disable=not progress):
            report.problems.extend(check_audio(path))
        for path in tqdm(csvs, desc=f"{split} labels", unit="file", disable=not progress):
            report.problems.extend(check_labels(path))
    return report
