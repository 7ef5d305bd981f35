"""Scenes: which events happen when and where in one 5 s clip, and their labels.

A scene is sampled from a clip's own random generator: 1-4 events (weighted
towards more, so that far fewer than half the label frames are silent), each
with a class, an onset in [-0.5, 4.5] s (events are cut at the clip edges), a
class-dependent duration, at most 3 events overlapping in any 100 ms frame; a
source at a distance drawn first (0.5-5 m), azimuth over the full circle,
elevation -20..30 degrees (narrowed so the source stays above the floor);
then a room that fits all sources (`room.fit_room`).

How hard the scenes are (events per clip, polyphony, reverberation, background
level, distance range) is a `SceneConfig`; its defaults are the values above,
and the workflow's `data.synthesis.scene` overrides them.

Labels follow the real data: for each event the 100 ms frames whose dry power
is within 30 dB of the event's loudest frame, with gaps of up to 0.5 s
filled; azimuth folded to [-90, 90] (front/back are indistinguishable in
stereo), distance in integer centimetres, `source` counting per class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from textseld.constants import CLIP_SAMPLES, N_CLASSES, N_LABEL_FRAMES, SAMPLE_RATE
from textseld.data.synthesis.dsp import frame_energy
from textseld.data.synthesis.room import MAX_ORDER_CAP, ROOM_Z, SRC_WALL_MARGIN, Room, direction, fit_room
from textseld.data.synthesis.sounds import ACTIVE_DB, DURATION_RANGE, class_sound

PRE_S = 0.5  # timeline starts 0.5 s before the clip (earliest onset): 5 whole label frames
FRAME = SAMPLE_RATE // 10  # samples per 100 ms label frame
PRE_FRAMES = int(round(PRE_S * 10))
PRE = PRE_FRAMES * FRAME
TIMELINE = PRE + CLIP_SAMPLES  # samples of the rendering timeline
ONSET_RANGE = (-0.5, 4.5)  # s
DISTANCE_RANGE = (0.5, 5.0)  # m
ELEVATION_RANGE = (-20.0, 30.0)  # degrees
MIC_HEIGHT = (1.2, 1.8)  # m
RT60_RANGE = (0.2, 0.8)  # s
GAIN_DB = 6.0  # +- source level jitter
SNR_DB = (10.0, 30.0)  # diffuse background
N_EVENTS_P = (0.05, 0.15, 0.3, 0.5)  # probabilities of 1, 2, 3, 4 events
MAX_POLYPHONY = 3
MIN_IN_CLIP_S = 0.3  # every event reaches at least this far into the clip
GAP_FILL_FRAMES = 5  # gaps of up to 0.5 s inside an event are labelled active


@dataclass(frozen=True)
class SceneConfig:
    """How hard the synthetic scenes are. n_events_p: probabilities of 1, 2, ... events
    per clip (sum 1); max_polyphony: events overlapping in one 100 ms frame (1..3,
    the targets hold 3); rt60, snr_db, distance: (low, high) uniform ranges in s,
    dB and m. The defaults are the module constants above."""

    n_events_p: tuple[float, ...] = N_EVENTS_P
    max_polyphony: int = MAX_POLYPHONY
    rt60: tuple[float, float] = RT60_RANGE
    snr_db: tuple[float, float] = SNR_DB
    distance: tuple[float, float] = DISTANCE_RANGE

    def __post_init__(self) -> None:
        def fail(key: str, what: str) -> None:
            raise ValueError(f"scene config key {key!r}: expected {what}, got {getattr(self, key)!r}")

        p = self.n_events_p
        if not (
            isinstance(p, tuple)
            and p
            and all(isinstance(v, (int, float)) and v >= 0 for v in p)
            and abs(sum(p) - 1.0) < 1e-6
        ):
            fail("n_events_p", "a non-empty list of non-negative probabilities summing to 1")
        if not (isinstance(self.max_polyphony, int) and 1 <= self.max_polyphony <= MAX_POLYPHONY):
            fail("max_polyphony", f"an integer in 1..{MAX_POLYPHONY}")
        for key, lo_min, hi_max in (("rt60", 0.1, 2.0), ("snr_db", -20.0, 100.0), ("distance", 0.3, 10.0)):
            v = getattr(self, key)
            if not (
                isinstance(v, tuple)
                and len(v) == 2
                and all(isinstance(x, (int, float)) for x in v)
                and lo_min <= v[0] <= v[1] <= hi_max
            ):
                fail(key, f"[low, high] with {lo_min} <= low <= high <= {hi_max}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SceneConfig:
        """From a plain dict (lists for the tuples); unknown keys raise ValueError naming them."""
        values = dict(values or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(
                f"unknown scene config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(names)}"
            )
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


@dataclass(frozen=True)
class Event:
    """One sound event. onset/duration s; distance m; azimuth deg (-180, 180],
    positive = left of the mic front; elevation deg; gain_db level jitter."""

    class_id: int
    source: int
    onset: float
    duration: float
    distance: float
    azimuth: float
    elevation: float
    gain_db: float

    def frame_span(self) -> tuple[int, int]:
        """Label frames [first, stop) of the rendering timeline the event touches."""
        start = (self.onset + PRE_S) * SAMPLE_RATE
        end = start + self.duration * SAMPLE_RATE
        return int(math.floor(start / FRAME)), int(math.ceil(end / FRAME))


@dataclass(frozen=True)
class Scene:
    """All events of one clip (sorted by onset), their room and the background SNR (dB)."""

    events: tuple[Event, ...]
    room: Room
    snr_db: float


def fold_azimuth(az: float) -> float:
    """Map degrees to [-90, 90] the way the real labels are folded (rear mirrored)."""
    a = (az + 180.0) % 360.0 - 180.0
    if a > 90.0:
        return 180.0 - a
    if a < -90.0:
        return -180.0 - a
    return a


def _frame_counts(spans, n_frames: int) -> np.ndarray:
    counts = np.zeros(n_frames, dtype=np.int64)
    for a, b in spans:
        counts[max(a, 0) : b] += 1
    return counts


def _sample_timing(rng: np.random.Generator, cfg: SceneConfig) -> list[tuple[int, float, float]]:
    """(class, onset, duration) per event, at most cfg.max_polyphony per timeline frame."""
    n_frames = TIMELINE // FRAME + 60  # events may run past the clip end
    wanted = int(rng.choice(len(cfg.n_events_p), p=np.asarray(cfg.n_events_p) / sum(cfg.n_events_p))) + 1
    chosen: list[tuple[int, float, float]] = []
    spans: list[tuple[int, int]] = []
    for _ in range(wanted):
        cls = int(rng.integers(N_CLASSES))
        duration = float(rng.uniform(*DURATION_RANGE[cls]))
        for _try in range(20):
            onset = float(rng.uniform(*ONSET_RANGE))
            if onset + duration < MIN_IN_CLIP_S:
                continue
            ev = Event(cls, 0, onset, duration, 1.0, 0.0, 0.0, 0.0)
            counts = _frame_counts(spans + [ev.frame_span()], n_frames)
            if counts.max() <= cfg.max_polyphony:
                chosen.append((cls, onset, duration))
                spans.append(ev.frame_span())
                break
    return sorted(chosen, key=lambda e: (e[1], e[0]))


def sample_scene(rng: np.random.Generator, max_order_cap: int = MAX_ORDER_CAP, cfg: SceneConfig | None = None) -> Scene:
    """Draw a scene (events, positions, room, SNR) from `rng`; cfg: how hard (default SceneConfig())."""
    cfg = cfg or SceneConfig()
    timing = _sample_timing(rng, cfg)
    mic_z = float(rng.uniform(*MIC_HEIGHT))
    yaw = float(rng.uniform(0.0, 2 * math.pi))
    events, offsets, per_class = [], [], [0] * N_CLASSES
    for cls, onset, duration in timing:
        dist = float(rng.uniform(*cfg.distance))
        az = float(rng.uniform(-180.0, 180.0))
        # Keep the source inside [margin, max height - margin] vertically.
        lo_z, hi_z = SRC_WALL_MARGIN - mic_z, ROOM_Z[1] - SRC_WALL_MARGIN - mic_z
        el_lo = max(ELEVATION_RANGE[0], math.degrees(math.asin(max(-1.0, lo_z / dist))))
        el_hi = min(ELEVATION_RANGE[1], math.degrees(math.asin(min(1.0, hi_z / dist))))
        el = float(rng.uniform(el_lo, el_hi))
        events.append(Event(cls, per_class[cls], onset, duration, dist, az, el, float(rng.uniform(-GAIN_DB, GAIN_DB))))
        per_class[cls] += 1
        offsets.append(dist * direction(yaw + math.radians(az), math.radians(el)))
    room = fit_room(rng, np.asarray(offsets).reshape(-1, 3), mic_z, yaw, float(rng.uniform(*cfg.rt60)), max_order_cap)
    return Scene(tuple(events), room, float(rng.uniform(*cfg.snr_db)))


def dry_signals(
    scene: Scene, rng: np.random.Generator, speech_backend: str = "formant", espeak_exe: str | None = None
) -> list[np.ndarray]:
    """Each event's whole dry signal on the rendering timeline (clip sample 0 at
    index PRE), level jitter applied: float64 arrays of length
    max(TIMELINE, end of event). Rendering uses the first TIMELINE samples;
    labels use all of it (an event's loudest part may lie past the clip end)."""
    out = []
    for ev in scene.events:
        x = class_sound(ev.class_id, ev.duration, rng, SAMPLE_RATE, speech_backend, espeak_exe)
        x *= 10.0 ** (ev.gain_db / 20.0)
        start = int(round((ev.onset + PRE_S) * SAMPLE_RATE))
        line = np.zeros(max(TIMELINE, start + x.size))
        line[start : start + x.size] = x
        out.append(line)
    return out


def event_activity(ev: Event, full: np.ndarray) -> np.ndarray:
    """Active label frames of the clip (N_LABEL_FRAMES,) bool for one event.

    full: the event's whole dry signal placed on a timeline that starts PRE
    samples before the clip (it may run past the clip end); the -30 dB
    threshold is relative to the loudest frame of the whole event."""
    e = frame_energy(full, FRAME)
    active = e > e.max() * 10.0 ** (ACTIVE_DB / 10.0) if e.max() > 0 else np.zeros(e.size, dtype=bool)
    idx = np.flatnonzero(active)
    for a, b in zip(idx[:-1], idx[1:]):
        if 1 < b - a <= GAP_FILL_FRAMES + 1:  # fill gaps of up to GAP_FILL_FRAMES frames
            active[a:b] = True
    clip = np.zeros(N_LABEL_FRAMES, dtype=bool)
    part = active[PRE_FRAMES : PRE_FRAMES + N_LABEL_FRAMES]
    clip[: part.size] = part
    return clip


def label_rows(scene: Scene, full_signals: list[np.ndarray]) -> np.ndarray:
    """DCASE label rows (N, 6) [frame, class, source, azimuth, distance cm, 0]
    from each event's full dry signal (see `event_activity`)."""
    rows = []
    for ev, full in zip(scene.events, full_signals):
        az, dist = round(fold_azimuth(ev.azimuth)), round(ev.distance * 100.0)
        for f in np.flatnonzero(event_activity(ev, full)):
            rows.append((f, ev.class_id, ev.source, az, dist, 0))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6)
