"""Output heads and the multi-ACCDOA output activation.

All heads emit K*3*C numbers per frame, laid out as (K tracks, [x, y, d], C
classes) like the DCASE baseline; `accdoa_activation` applies tanh to x, y
and the distance activation (ModelConfig.distance_activation: ReLU, docs/METHOD.md
section 3, or softplus) to d.
"""

from __future__ import annotations

import torch
from torch import nn

from textseld.constants import N_CLASSES, N_TRACKS
from textseld.models.config import DISTANCE_ACTIVATIONS

OUT_DIM = N_TRACKS * 3 * N_CLASSES  # 117


def _distance(v: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return torch.relu(v)
    if activation == "softplus":
        return nn.functional.softplus(v)
    raise ValueError(f"distance_activation: expected one of {', '.join(DISTANCE_ACTIVATIONS)}, got {activation!r}")


def accdoa_activation(x: torch.Tensor, distance: str = "relu") -> torch.Tensor:
    """(..., K*3*C) raw -> (..., K*3*C) with tanh on x, y and `distance` (relu | softplus) on d."""
    v = x.reshape(*x.shape[:-1], N_TRACKS, 3, N_CLASSES)
    v = torch.cat([torch.tanh(v[..., :2, :]), _distance(v[..., 2:, :], distance)], dim=-2)
    return v.reshape(x.shape)


def distance_values(out: torch.Tensor) -> torch.Tensor:
    """(..., K*3*C) output -> (..., K*C): the distance value of every (track, class) unit."""
    return out.reshape(*out.shape[:-1], N_TRACKS, 3, N_CLASSES)[..., 2, :].flatten(-2)


def live_distance_units(out: torch.Tensor) -> torch.Tensor:
    """(..., K*3*C) activated output -> (K*C,) bool: the distance units not exactly 0 on some frame.

    A ReLU unit outputs exactly 0 where its pre-activation is <= 0 and gets no gradient there;
    one that is 0 on every frame of a split is dead on it. Softplus is never exactly 0.
    """
    d = distance_values(out.detach())
    return (d != 0).reshape(-1, d.shape[-1]).any(dim=0)


class GrepHead(nn.Module):
    """GREP: Linear(E, D)-GELU-Linear(D, K*3*C) on the audio-driven embedding A. (N, E) -> (N, K*3*C).

    E is the size of A (the text encoder's embed_dim; equal to D in the paper setup).
    """

    def __init__(self, d: int, a_dim: int | None = None, distance_activation: str = "relu") -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(a_dim or d, d), nn.GELU(), nn.Linear(d, OUT_DIM))
        self.distance_activation = distance_activation

    def forward(self, a: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        return accdoa_activation(self.net(a), self.distance_activation)


class TrepHead(nn.Module):
    """TREP: Linear(3D, K*3*C) on the last hidden states at the 3 placeholders. hidden (N, 3, D) -> (N, K*3*C)."""

    def __init__(self, d: int, a_dim: int | None = None, distance_activation: str = "relu") -> None:
        super().__init__()
        self.net = nn.Linear(3 * d, OUT_DIM)
        self.distance_activation = distance_activation

    def forward(self, a: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        if hidden is None:
            raise ValueError("the TREP head needs the placeholder hidden states (N, 3, D)")
        return accdoa_activation(self.net(hidden.flatten(-2)), self.distance_activation)


class PretrainHead(nn.Module):
    """Pretraining head: Linear(3D, K*3*C) on the three token streams. (..., 3D) -> (..., K*3*C)."""

    def __init__(self, d: int, distance_activation: str = "relu") -> None:
        super().__init__()
        self.net = nn.Linear(3 * d, OUT_DIM)
        self.distance_activation = distance_activation

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return accdoa_activation(self.net(tokens), self.distance_activation)
