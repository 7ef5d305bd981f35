"""Render ground-truth sentences from a frame's events (docs/METHOD.md section 4).

An event is `(class_id, azimuth_deg, distance_m)`. Within a frame, events are
ordered by class, then azimuth (then distance, to make the order total).
Numbers: azimuth as an integer with "°" and ASCII "-", distance in metres
rounded to 0.1 (half away from zero) without a trailing ".0", e.g. "3.5 m",
"3 m". With two or more sources the nouns in `PLURAL_NOUNS` take an "s"
("direction" -> "directions") and ", respectively" goes before the final
punctuation mark.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

import numpy as np

from textseld.constants import CLASS_WORDS, N_CLASSES, N_LABEL_FRAMES
from textseld.text.templates import NO_SOUND, PLURAL_NOUNS, TEMPLATES

Event = tuple[int, float, float]  # (class_id, azimuth in degrees, distance in metres)

_PLURAL_RE = re.compile(r"\b(" + "|".join(PLURAL_NOUNS) + r")\b", re.IGNORECASE)


def format_azimuth(azimuth_deg: float) -> str:
    """Integer degrees, half away from zero, ASCII minus: -59.5 -> "-60°"."""
    value = int(Decimal(repr(float(azimuth_deg))).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return f"{value}°"  # int formatting never gives "-0"


def format_distance(distance_m: float) -> str:
    """Metres rounded to 0.1 (half away from zero, on the decimal value as
    written, so 3.05 -> "3.1 m"), a trailing ".0" dropped: 3.0 -> "3 m"."""
    value = Decimal(repr(float(distance_m))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    if text == "-0":
        text = "0"
    return f"{text} m"


def join_words(items: Sequence[str]) -> str:
    """English list: "a"; "a and b"; "a, b, and c" (serial comma)."""
    if not items:
        raise ValueError("join_words needs at least one item")
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f", and {items[-1]}"


def sort_events(events: Iterable[Sequence[float]]) -> list[Event]:
    """Validate and order events by (class, azimuth, distance)."""
    out: list[Event] = []
    for ev in events:
        if len(ev) != 3:
            raise ValueError(f"an event is (class_id, azimuth_deg, distance_m), got {ev!r}")
        cls = int(ev[0])
        if cls != ev[0] or not 0 <= cls < N_CLASSES:
            raise ValueError(f"event class must be an integer in 0..{N_CLASSES - 1}, got {ev[0]!r}")
        out.append((cls, float(ev[1]), float(ev[2])))
    out.sort()
    return out


def _check_template_id(template_id: int) -> int:
    tid = int(template_id)
    if tid != template_id or not 0 <= tid < len(TEMPLATES):
        raise ValueError(f"template_id must be an integer in 0..{len(TEMPLATES) - 1}, got {template_id!r}")
    return tid


def _pluralise(match: re.Match) -> str:
    return match.group(0) + "s"


def render_sentence(events: Iterable[Sequence[float]], template_id: int) -> str:
    """The ground-truth sentence of one frame.

    events: iterable of (class_id, azimuth_deg, distance_m), any order.
    template_id: 0..49; a frame without events gets NO_SOUND[template_id % 10].
    """
    tid = _check_template_id(template_id)
    evs = sort_events(events)
    if not evs:
        return NO_SOUND[tid % len(NO_SOUND)]
    src = join_words([CLASS_WORDS[c] for c, _, _ in evs])
    doa = join_words([format_azimuth(a) for _, a, _ in evs])
    dist = join_words([format_distance(d) for _, _, d in evs])
    template = TEMPLATES[tid]
    if len(evs) == 1:
        return template.format(src=src, doa=doa, dist=dist)
    # Plural rules act on the template only, never on the filled-in words.
    template = _PLURAL_RE.sub(_pluralise, template)
    text = template.format(src=src, doa=doa, dist=dist)
    if text[-1] in ".!?":
        return text[:-1] + ", respectively" + text[-1]
    return text + ", respectively"


def frame_events(rows: np.ndarray, n_frames: int = N_LABEL_FRAMES) -> list[list[Event]]:
    """Group DCASE label rows (N, 6) [frame, class, source, azimuth deg,
    distance cm, onscreen] into `n_frames` lists of (class, azimuth deg,
    distance m), each ordered by class then azimuth."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        return [[] for _ in range(n_frames)]
    if rows.ndim != 2 or rows.shape[1] != 6:
        raise ValueError(f"label rows must have shape (N, 6), got {rows.shape}")
    frames: list[list[Event]] = [[] for _ in range(n_frames)]
    for frame, cls, _source, az, dist_cm, _onscreen in rows:
        f = int(frame)
        if f != frame or not 0 <= f < n_frames:
            raise ValueError(f"label frame must be an integer in 0..{n_frames - 1}, got {frame:g}")
        frames[f].append((int(cls), float(az), float(dist_cm) / 100.0))
    return [sort_events(evs) for evs in frames]


def fixed_template(clip_name: str) -> int:
    """Deterministic template id of a clip for validation/test: the first 8
    bytes of SHA-256 of the UTF-8 name modulo the number of templates (stable
    across processes and Python versions, unlike the salted built-in hash)."""
    digest = hashlib.sha256(str(clip_name).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % len(TEMPLATES)
