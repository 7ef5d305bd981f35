"""RCC encoder: residual CNN + conformer over time, one token per frequency band and frame.

(B, C_in, T=251, F=64) -> (B, L=50, 4, d) with the paper's pooling
(5,2), (1,2), (1,2), (1,2): time 251 -> 50 label frames, frequency 64 -> 4 bands.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from textseld.constants import N_MELS
from textseld.models.config import ModelConfig
from textseld.models.conformer import ConformerStack


class ResidualBlock(nn.Module):
    """main = conv3x3-BN-ReLU-conv3x3-BN-ReLU, shortcut = conv1x1-BN, (main + shortcut)/sqrt(2), avg-pool.

    (B, c_in, T, F) -> (B, c_out, T // pool_t, F // pool_f).
    """

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.pool = tuple(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (self.main(x) + self.shortcut(x)) / math.sqrt(2.0)
        return F.avg_pool2d(y, self.pool)


class RCCEncoder(nn.Module):
    """Band-token encoder for one input stream.

    forward(x (B, in_channels, T, F)) -> (B, L, n_bands, d_model), where
    L = T // prod(pool_t) (floor at every stage) and n_bands = F // prod(pool_f).
    """

    def __init__(self, in_channels: int, cfg: ModelConfig, n_mels: int = N_MELS) -> None:
        super().__init__()
        # One learned normaliser per (input channel, mel band): the spatial
        # features of different channels have unrelated scales per band.
        self.input_norm = nn.BatchNorm1d(in_channels * n_mels)
        self.in_channels, self.n_mels = in_channels, n_mels
        blocks, c = [], in_channels
        for c_out, pool in zip(cfg.rcc_channels, cfg.rcc_pools):
            blocks.append(ResidualBlock(c, c_out, pool))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.n_bands = n_mels
        for _, pool_f in cfg.rcc_pools:
            self.n_bands //= pool_f
        if self.n_bands < 1:
            raise ValueError(f"rcc_pools reduce {n_mels} mel bands to zero bands")
        # Only needed when the CNN's last width differs from the conformer's.
        self.to_model = nn.Identity() if c == cfg.d_model else nn.Linear(c, cfg.d_model)
        self.conformer = ConformerStack(
            cfg.rcc_conformer_blocks, cfg.d_model, cfg.n_heads, cfg.ffn_mult, cfg.conv_kernel, cfg.dropout
        )
        self.d_model = cfg.d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        if c != self.in_channels or f != self.n_mels:
            raise ValueError(f"RCCEncoder expects (B, {self.in_channels}, T, {self.n_mels}), got {tuple(x.shape)}")
        x = self.input_norm(x.permute(0, 1, 3, 2).reshape(b, c * f, t))  # (B, C*F, T)
        x = x.reshape(b, c, f, t).permute(0, 1, 3, 2)  # (B, C, T, F)
        x = self.blocks(x)  # (B, c_last, L, n_bands)
        _, _, frames, bands = x.shape
        x = x.permute(0, 3, 2, 1).reshape(b * bands, frames, -1)  # (B*bands, L, c_last)
        x = self.conformer(self.to_model(x))  # over time, per band
        return x.reshape(b, bands, frames, self.d_model).transpose(1, 2)  # (B, L, bands, d)
