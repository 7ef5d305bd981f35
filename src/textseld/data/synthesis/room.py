"""Shoebox rooms and first-order-ambisonic room impulse responses (W and Y).

A numpy image-source renderer: every image source of reflection order up to
`max_order` (the Sabine estimate, capped at 40) contributes an impulse of
amplitude beta**order / r at delay r / c, and its arrival direction u is
encoded into SN3D first-order gains W = 1 and Y = u . left, where `left` is the
microphone's +90 degree axis. Stereo is then L = W + Y, R = W - Y (docs/METHOD.md section 1),
so a source on the left (positive azimuth) is louder in L. The same
construction with pyroomacoustics' CardioidFamily microphones (p=1 for W, p=0
pointing left for Y) agrees with it (tested); this one is used because it is
deterministic without global random state and several times faster.

Coordinates: metres, room corner at the origin, z up. Azimuth is measured in
the horizontal plane counter-clockwise from the microphone's front (yaw), so
positive azimuth = left; elevation is up from the horizontal plane.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

SPEED_OF_SOUND = 343.0  # m/s
MAX_ORDER_CAP = 40  # keeps a clip near 0.1 s; order 30 under-estimates long RT60s
HIGHPASS_HZ = 50.0  # frequency-independent reflections pile up a DC offset
ROOM_X, ROOM_Y, ROOM_Z = (4.0, 12.0), (3.5, 10.0), (2.5, 4.0)  # shoebox size ranges, m
MIC_WALL_MARGIN = 1.0  # microphone distance to every wall, m
SRC_WALL_MARGIN = 0.3  # source distance to every wall, floor and ceiling, m


@dataclass(frozen=True)
class Room:
    """A shoebox room with one coincident FOA microphone.

    dims (3,) m; rt60 s (Sabine target); mic (3,) m; yaw: microphone front
    direction, radians counter-clockwise from +x; max_order: image-source order."""

    dims: tuple[float, float, float]
    rt60: float
    mic: tuple[float, float, float]
    yaw: float
    max_order: int

    @property
    def beta(self) -> float:
        """Wall reflection amplitude sqrt(1 - alpha) for the Sabine absorption alpha."""
        return math.sqrt(1.0 - sabine_absorption(self.dims, self.rt60))

    def source_position(self, distance: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
        """Room coordinates (3,) of a source at (distance m, azimuth, elevation) from the mic."""
        return np.asarray(self.mic) + distance * direction(
            self.yaw + math.radians(azimuth_deg), math.radians(elevation_deg)
        )


def direction(azimuth_rad: float, elevation_rad: float) -> np.ndarray:
    """Unit vector (3,) for a room-frame azimuth and elevation."""
    ce = math.cos(elevation_rad)
    return np.array([ce * math.cos(azimuth_rad), ce * math.sin(azimuth_rad), math.sin(elevation_rad)])


def sabine_absorption(dims, rt60: float) -> float:
    """Uniform energy absorption coefficient giving `rt60` by Sabine's formula."""
    lx, ly, lz = dims
    volume, surface = lx * ly * lz, 2 * (lx * ly + lx * lz + ly * lz)
    alpha = 24 * math.log(10) * volume / (SPEED_OF_SOUND * surface * rt60)
    if not 0.0 < alpha < 1.0:
        raise ValueError(
            f"RT60 {rt60:.2f} s is unreachable in a {lx:.1f}x{ly:.1f}x{lz:.1f} m room (absorption {alpha:.2f})"
        )
    return alpha


def sabine_order(dims, rt60: float, cap: int = MAX_ORDER_CAP) -> int:
    """Image-source order whose images cover c * RT60 of propagation (the usual
    Sabine-based estimate, as in pyroomacoustics' inverse_sabine), capped."""
    lx, ly, lz = dims
    pair = min(a * b / math.hypot(a, b) for a, b in ((lx, ly), (lx, lz), (ly, lz)))
    return int(min(max(math.ceil(SPEED_OF_SOUND * rt60 / pair - 1), 1), cap))


def fit_room(
    rng: np.random.Generator,
    offsets: np.ndarray,
    mic_z: float,
    yaw: float,
    rt60: float,
    max_order_cap: int = MAX_ORDER_CAP,
) -> Room:
    """Sample a shoebox that contains the microphone (>= 1 m from the walls, at
    height mic_z) and every source at its room-frame offset from the mic
    (offsets (n, 3) m; >= 0.3 m from every surface). Sizes are uniform in the
    default ranges, raised where the sources need more room."""
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 3)
    dims, mic = [], []
    for axis, (lo, hi) in enumerate((ROOM_X, ROOM_Y)):
        below = max(MIC_WALL_MARGIN, float(np.max(-offsets[:, axis], initial=0.0)) + SRC_WALL_MARGIN)
        above = max(MIC_WALL_MARGIN, float(np.max(offsets[:, axis], initial=0.0)) + SRC_WALL_MARGIN)
        need = below + above
        length = rng.uniform(max(lo, need), max(hi, need))
        dims.append(length)
        mic.append(rng.uniform(below, length - above))
    top = mic_z + float(np.max(offsets[:, 2], initial=0.0)) + SRC_WALL_MARGIN
    if mic_z + float(np.min(offsets[:, 2], initial=0.0)) < SRC_WALL_MARGIN - 1e-9:
        raise ValueError(f"a source lies below the floor margin (mic height {mic_z:.2f} m)")
    dims.append(rng.uniform(max(ROOM_Z[0], top), max(ROOM_Z[1], top)))
    mic.append(mic_z)
    dims_t = (float(dims[0]), float(dims[1]), float(dims[2]))
    mic_t = (float(mic[0]), float(mic[1]), float(mic[2]))
    return Room(dims_t, float(rt60), mic_t, float(yaw), sabine_order(dims_t, rt60, max_order_cap))


@functools.lru_cache(maxsize=8)
def _lattice(order: int) -> tuple[np.ndarray, np.ndarray]:
    """All integer image indices (m, 3) with |nx|+|ny|+|nz| <= order, and their
    reflection counts (m,)."""
    r = np.arange(-order, order + 1)
    nx, ny, nz = np.meshgrid(r, r, r, indexing="ij")
    refl = np.abs(nx) + np.abs(ny) + np.abs(nz)
    keep = refl <= order
    idx = np.stack([nx[keep], ny[keep], nz[keep]], axis=1)
    idx.setflags(write=False)
    counts = refl[keep]
    counts.setflags(write=False)
    return idx, counts


def image_sources(dims, src, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Image positions (m, 3) of a source at `src` in a shoebox of size `dims`,
    and their reflection orders (m,). Along each axis of length L, index n maps
    the source coordinate s to n*L + s (n even) or n*L + L - s (n odd)."""
    idx, counts = _lattice(order)
    dims = np.asarray(dims, dtype=np.float64)
    src = np.asarray(src, dtype=np.float64)
    odd = (idx & 1).astype(bool)
    pos = idx * dims + np.where(odd, dims - src, src)
    return pos, counts


def render_rirs(room: Room, src, sr: int, order: int | None = None) -> np.ndarray:
    """FOA impulse responses (2, n) [W, Y] from a source at room position `src`
    to the microphone, high-passed at 50 Hz. The direct path has amplitude 1/r
    (r in m): responses are not normalised, so level falls with distance."""
    order = room.max_order if order is None else order
    pos, counts = image_sources(room.dims, src, order)
    rel = pos - np.asarray(room.mic)
    r = np.sqrt(np.einsum("ij,ij->i", rel, rel))
    r = np.maximum(r, 0.05)  # a source on the mic itself is excluded by fit_room; guard anyway
    gain = room.beta**counts / r
    left = np.array([math.cos(room.yaw + math.pi / 2), math.sin(room.yaw + math.pi / 2), 0.0])
    y_gain = gain * (rel @ left) / r
    # Nearest-sample delays (error <= 0.5 sample, 7 mm): unlike linear
    # interpolation this keeps every image's energy (W and Y share the delays,
    # so there is no inter-channel time difference either way).
    i0 = np.rint(r * (sr / SPEED_OF_SOUND)).astype(np.int64)
    n = int(i0.max()) + 1
    rirs = np.stack([np.bincount(i0, gain, minlength=n), np.bincount(i0, y_gain, minlength=n)])
    sos = signal.butter(2, HIGHPASS_HZ, btype="highpass", fs=sr, output="sos")
    return signal.sosfilt(sos, rirs, axis=1)
