"""Conformer block with Transformer-XL relative positional self-attention.

Gulati et al. (2020) block: x + FFN/2, x + MHSA, x + Conv, x + FFN/2, LayerNorm.
Attention scores (Dai et al. 2019): q.k (content, with learned bias u) plus
q.R (position, with learned bias v), where R are projected sinusoidal
embeddings of the relative distances i - j; the "rel-shift" turns the
(L, 2L-1) query x distance matrix into the (L, L) query x key one.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sinusoidal_relative_positions(length: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Sinusoidal embeddings of distances L-1, L-2, ..., -(L-1): (2L-1, dim)."""
    dist = torch.arange(length - 1, -length, -1, device=device, dtype=torch.float32)  # (2L-1,)
    inv_freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = dist[:, None] * inv_freq[None, :]
    emb = torch.zeros(2 * length - 1, dim, device=device, dtype=torch.float32)
    emb[:, 0::2] = torch.sin(angles)
    emb[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return emb.to(dtype or torch.float32)


def rel_shift(x: torch.Tensor) -> torch.Tensor:
    """(..., L, 2L-1) scores over distances [L-1 .. -(L-1)] -> (..., L, L) scores over keys.

    out[..., i, j] = x[..., i, (L-1) - (i - j)], i.e. the entry for distance i - j.
    Done by the pad-and-reshape trick (one zero column, reshape, drop a row)
    instead of a gather, as in Transformer-XL.
    """
    *lead, length, width = x.shape
    padded = F.pad(x, (1, 0))  # (..., L, 2L)
    padded = padded.reshape(*lead, width + 1, length)  # (..., 2L, L)
    return padded[..., 1:, :].reshape(*lead, length, width)[..., :length]


class RelPositionMultiHeadAttention(nn.Module):
    """Multi-head self-attention with relative positions. x: (B, L, d) -> (B, L, d)."""

    def __init__(self, d: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"attention width {d} is not divisible by {heads} heads")
        self.heads, self.dk = heads, d // heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.pos = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d)
        self.bias_u = nn.Parameter(torch.zeros(heads, self.dk))
        self.bias_v = nn.Parameter(torch.zeros(heads, self.dk))
        nn.init.xavier_uniform_(self.bias_u)
        nn.init.xavier_uniform_(self.bias_v)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q = self.q(x).view(b, length, self.heads, self.dk)  # (B, L, H, dk)
        k = self.k(x).view(b, length, self.heads, self.dk).transpose(1, 2)  # (B, H, L, dk)
        v = self.v(x).view(b, length, self.heads, self.dk).transpose(1, 2)
        rel = sinusoidal_relative_positions(length, d, device=x.device, dtype=x.dtype)
        p = self.pos(rel).view(2 * length - 1, self.heads, self.dk).permute(1, 2, 0)  # (H, dk, 2L-1)
        content = torch.matmul((q + self.bias_u).transpose(1, 2), k.transpose(-1, -2))  # (B, H, L, L)
        position = torch.matmul((q + self.bias_v).transpose(1, 2), p)  # (B, H, L, 2L-1)
        scores = (content + rel_shift(position)) / math.sqrt(self.dk)
        attn = self.drop(scores.softmax(dim=-1))
        y = torch.matmul(attn, v).transpose(1, 2).reshape(b, length, d)
        return self.out(y)


class FeedForward(nn.Module):
    """LayerNorm-Linear-SiLU-Dropout-Linear-Dropout. (B, L, d) -> (B, L, d)."""

    def __init__(self, d: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d),
            nn.Linear(d, mult * d),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(mult * d, d),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvModule(nn.Module):
    """LayerNorm, pointwise conv + GLU, depthwise conv, BN, SiLU, pointwise conv, dropout.

    (B, L, d) -> (B, L, d); same padding so sequences of any length keep their length.
    """

    def __init__(self, d: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pointwise_in = nn.Conv1d(d, 2 * d, 1)
        self.depthwise = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pointwise_out = nn.Conv1d(d, d, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x).transpose(1, 2)  # (B, d, L)
        y = F.glu(self.pointwise_in(y), dim=1)
        y = F.silu(self.bn(self.depthwise(y)))
        y = self.pointwise_out(y).transpose(1, 2)  # (B, L, d)
        return self.drop(y)


class ConformerBlock(nn.Module):
    """One conformer block. x: (B, L, d) -> (B, L, d)."""

    def __init__(self, d: int, heads: int = 8, ffn_mult: int = 2, kernel: int = 31, dropout: float = 0.1) -> None:
        super().__init__()
        self.ffn1 = FeedForward(d, ffn_mult, dropout)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = RelPositionMultiHeadAttention(d, heads, dropout)
        self.attn_drop = nn.Dropout(dropout)
        self.conv = ConvModule(d, kernel, dropout)
        self.ffn2 = FeedForward(d, ffn_mult, dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        x = x + self.attn_drop(self.attn(self.attn_norm(x)))
        x = x + self.conv(x)
        x = x + 0.5 * self.ffn2(x)
        return self.norm(x)


class ConformerStack(nn.Sequential):
    """`n` conformer blocks in sequence (n = 0 is the identity). (B, L, d) -> (B, L, d)."""

    def __init__(self, n: int, d: int, heads: int, ffn_mult: int, kernel: int, dropout: float) -> None:
        super().__init__(*[ConformerBlock(d, heads, ffn_mult, kernel, dropout) for _ in range(n)])
