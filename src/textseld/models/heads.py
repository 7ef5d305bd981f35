"""Output heads and the multi-ACCDOA output activation.

All heads emit K*3*C numbers per frame, laid out as (K tracks, [x, y, d], C
classes) like the DCASE baseline; `accdoa_activation` applies tanh to x, y
and ReLU to d.
"""

from __future__ import annotations

import torch
from torch import nn

from textseld.constants import N_CLASSES, N_TRACKS

OUT_DIM = N_TRACKS * 3 * N_CLASSES  # 117


def accdoa_activation(x: torch.Tensor) -> torch.Tensor:
    """(..., K*3*C) raw -> (..., K*3*C) with tanh on x, y and ReLU on the distance."""
    v = x.reshape(*x.shape[:-1], N_TRACKS, 3, N_CLASSES)
    v = torch.cat([torch.tanh(v[..., :2, :]), torch.relu(v[..., 2:, :])], dim=-2)
    return v.reshape(x.shape)


class GrepHead(nn.Module):
    """GREP: Linear(E, D)-GELU-Linear(D, K*3*C) on the audio-driven embedding A. (N, E) -> (N, K*3*C).

    E is the size of A (the text encoder's embed_dim; equal to D in the paper setup).
    """

    def __init__(self, d: int, a_dim: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(a_dim or d, d), nn.GELU(), nn.Linear(d, OUT_DIM))

    def forward(self, a: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        return accdoa_activation(self.net(a))


class TrepHead(nn.Module):
    """TREP: Linear(3D, K*3*C) on the last hidden states at the 3 placeholders. hidden (N, 3, D) -> (N, K*3*C)."""

    def __init__(self, d: int, a_dim: int | None = None) -> None:
        super().__init__()
        self.net = nn.Linear(3 * d, OUT_DIM)

    def forward(self, a: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        if hidden is None:
            raise ValueError("the TREP head needs the placeholder hidden states (N, 3, D)")
        return accdoa_activation(self.net(hidden.flatten(-2)))


class PretrainHead(nn.Module):
    """Pretraining head: Linear(3D, K*3*C) on the three token streams. (..., 3D) -> (..., K*3*C)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.net = nn.Linear(3 * d, OUT_DIM)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return accdoa_activation(self.net(tokens))
