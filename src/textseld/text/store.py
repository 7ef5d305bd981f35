"""The ground-truth text store of one split: one HDF5 file.

Training renders a sentence for any (clip, frame, template) on the fly from
the stored events; validation and test read the fixed per-frame sentences
(one deterministic template per clip). Layout (N clips, M events, L frames):

- `names` (N,) str: clip names, in the order of the packed features file
- `fixed_template` (N,) int16: `fixed_template(name)`
- `events` (M, 4) float64 [frame, class, azimuth deg, distance m] and
  `event_offsets` (N+1,) int64: clip i's events are `events[off[i]:off[i+1]]`
- `fixed_sentences` (N, L) str (gzip): `render_sentence(frame events, fixed_template)`
- attrs: `templates_sha256` (the templates the file was made with),
  `n_frames`, `source` (the features file), `textseld_version`
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from textseld import __version__
from textseld.atomic import atomic_path
from textseld.constants import N_LABEL_FRAMES
from textseld.text.sentences import Event, fixed_template, frame_events, render_sentence
from textseld.text.templates import NO_SOUND, PLURAL_NOUNS, TEMPLATES


class TextStoreError(ValueError):
    """A features or text-store file does not match the expected layout."""


def templates_fingerprint() -> str:
    """SHA-256 of the templates and plural rules: a store made with other
    templates would give sentences inconsistent with on-the-fly rendering."""
    blob = json.dumps([TEMPLATES, NO_SOUND, PLURAL_NOUNS], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _read_names(f: h5py.File, path) -> list[str]:
    if "names" not in f:
        raise TextStoreError(f"{path}: missing dataset 'names'")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in f["names"][()]]


@contextlib.contextmanager
def _reading(path, what: str) -> Iterator[None]:
    """HDF5 failures (unreadable, damaged) as a TextStoreError naming the file."""
    try:
        yield
    except TextStoreError:
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        raise TextStoreError(f"{path}: cannot read {what} (damaged or not an HDF5 file: {exc})") from None


def read_packed_labels(features_path: str | os.PathLike) -> tuple[list[str], list[np.ndarray]]:
    """Clip names and raw label rows (n_i, 6) per clip from a packed features
    HDF5 (datasets `names`, `label_rows`, `label_offsets`)."""
    path = Path(features_path)
    with _reading(path, "the label rows"), h5py.File(path, "r") as f:
        names = _read_names(f, path)
        for key in ("label_rows", "label_offsets"):
            if key not in f:
                raise TextStoreError(f"{path}: missing dataset '{key}'")
        rows = np.asarray(f["label_rows"][()], dtype=np.float64)
        off = np.asarray(f["label_offsets"][()], dtype=np.int64)
    if rows.ndim != 2 or rows.shape[1] != 6:
        raise TextStoreError(f"{path}: 'label_rows' must have shape (M, 6), got {rows.shape}")
    if off.shape != (len(names) + 1,) or off[0] != 0 or off[-1] != len(rows) or np.any(np.diff(off) < 0):
        raise TextStoreError(
            f"{path}: 'label_offsets' must be non-decreasing, shape ({len(names) + 1},), "
            f"from 0 to {len(rows)}; got shape {off.shape}"
        )
    return names, [rows[off[i] : off[i + 1]] for i in range(len(names))]


def build_text_store(
    features_path: str | os.PathLike, out_path: str | os.PathLike, n_frames: int = N_LABEL_FRAMES
) -> Path:
    """Write the text store of one packed features file (atomically)."""
    names, per_clip = read_packed_labels(features_path)
    templates = np.array([fixed_template(n) for n in names], dtype=np.int16)
    events: list[list[float]] = []
    offsets = [0]
    sentences = np.empty((len(names), n_frames), dtype=object)
    for i, rows in enumerate(tqdm(per_clip, desc="texts", unit="clip", disable=len(names) < 100)):
        try:
            frames = frame_events(rows, n_frames)
        except ValueError as exc:
            raise TextStoreError(f"{features_path}: clip {names[i]!r}: {exc}") from None
        for f, evs in enumerate(frames):
            events.extend([float(f), float(c), az, d] for c, az, d in evs)
            sentences[i, f] = render_sentence(evs, int(templates[i]))
        offsets.append(len(events))
    str_dt = h5py.string_dtype("utf-8")
    with atomic_path(out_path, suffix=".h5", remove_stale=True) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("names", data=np.array(names, dtype=object), dtype=str_dt)
            f.create_dataset("fixed_template", data=templates)
            f.create_dataset("events", data=np.asarray(events, dtype=np.float64).reshape(-1, 4))
            f.create_dataset("event_offsets", data=np.asarray(offsets, dtype=np.int64))
            f.create_dataset(
                "fixed_sentences",
                data=sentences.reshape(len(names), n_frames),
                dtype=str_dt,
                compression="gzip" if len(names) else None,
            )
            f.attrs["templates_sha256"] = templates_fingerprint()
            f.attrs["n_frames"] = n_frames
            f.attrs["source"] = str(features_path)
            f.attrs["textseld_version"] = __version__
    return Path(out_path)


class TextStore:
    """Read side of the text store. Names, templates and events are loaded at
    construction (small); fixed sentences are read per clip, through a file
    handle opened lazily in each process (safe with DataLoader workers)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with _reading(self.path, "the text store"), h5py.File(self.path, "r") as f:
            for key in ("names", "fixed_template", "events", "event_offsets", "fixed_sentences"):
                if key not in f:
                    raise TextStoreError(f"{self.path}: missing dataset '{key}' (not a text store?)")
            stored = f.attrs.get("templates_sha256", "")
            if stored != templates_fingerprint():
                raise TextStoreError(
                    f"{self.path}: made with other sentence templates (templates_sha256 {stored!r}); "
                    "rebuild it with `textseld make-texts`"
                )
            self.names = _read_names(f, self.path)
            self.n_frames = int(f.attrs["n_frames"])
            self._templates = np.asarray(f["fixed_template"][()], dtype=np.int64)
            self._events = np.asarray(f["events"][()], dtype=np.float64)
            self._offsets = np.asarray(f["event_offsets"][()], dtype=np.int64)
        self._frames_cache: dict[int, list[list[Event]]] = {}
        self._handle: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.names)

    def _check(self, clip_index: int) -> int:
        i = int(clip_index)
        if not 0 <= i < len(self.names):
            raise IndexError(f"{self.path}: clip index {clip_index} out of range 0..{len(self.names) - 1}")
        return i

    def frames(self, clip_index: int) -> list[list[Event]]:
        """Per-frame event lists (L lists of (class, azimuth deg, distance m))."""
        i = self._check(clip_index)
        cached = self._frames_cache.get(i)
        if cached is None:
            frames: list[list[Event]] = [[] for _ in range(self.n_frames)]
            for f, c, az, d in self._events[self._offsets[i] : self._offsets[i + 1]]:
                frames[int(f)].append((int(c), float(az), float(d)))
            self._frames_cache[i] = cached = frames
        return cached

    def sentence(self, clip_index: int, frame: int, template_id: int) -> str:
        """Render the sentence of one frame with any template (training)."""
        frames = self.frames(clip_index)
        if not 0 <= int(frame) < self.n_frames:
            raise IndexError(f"frame {frame} out of range 0..{self.n_frames - 1}")
        return render_sentence(frames[int(frame)], template_id)

    def sentences(self, clip_index: int, template_id: int) -> list[str]:
        """All L sentences of a clip rendered with one template."""
        return [render_sentence(evs, template_id) for evs in self.frames(clip_index)]

    def fixed_template(self, clip_index: int) -> int:
        return int(self._templates[self._check(clip_index)])

    def fixed_sentences(self, clip_index: int) -> list[str]:
        """The stored L sentences of a clip with its fixed template (validation/test)."""
        i = self._check(clip_index)
        with _reading(self.path, f"the sentences of clip {i}"):
            if self._handle is None or self._pid != os.getpid():
                self._handle = h5py.File(self.path, "r")
                self._pid = os.getpid()
            return list(self._handle["fixed_sentences"].asstr()[i])

    def __getstate__(self):
        # An open h5py handle cannot be pickled into DataLoader workers.
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_pid"] = None
        return state
