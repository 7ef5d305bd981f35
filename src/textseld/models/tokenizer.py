"""Tokenizer: three encoders, multi-feature attention, projections with attentive pooling.

forward(src (B,1,T,F), doa (B,4,T,F), dist (B,2,T,F)) -> three (B, L, D) token
streams (audio, DOA, distance), one vector per 100 ms frame.
"""

from __future__ import annotations

import torch
from torch import nn

from textseld.constants import SOURCES
from textseld.models.beats import BeatsEncoder
from textseld.models.config import ModelConfig
from textseld.models.conformer import ConformerStack
from textseld.models.rcc import RCCEncoder

SRC_CHANNELS, DOA_CHANNELS, DIST_CHANNELS = 1, 4, 2


class AttentivePooling(nn.Module):
    """Softmax-weighted sum over the band-token axis. (B, L, N, D) -> (B, L, D).

    Scores are learned per token from its content; the softmax runs over the
    N tokens (not over a size-1 axis, which would reduce to a plain sum).
    """

    def __init__(self, d: int) -> None:
        super().__init__()
        self.score = nn.Linear(d, 1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, N, D) -> (B, L, N) pooling weights, summing to 1 over N."""
        return self.score(x).squeeze(-1).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights(x).unsqueeze(-1) * x).sum(dim=-2)


class Projection(nn.Module):
    """Linear-GELU-Linear on every band token, then attentive pooling. (B, L, N, d_in) -> (B, L, D)."""

    def __init__(self, d_in: int, d_out: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or d_out
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        self.pool = AttentivePooling(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.mlp(x))


class Tokenizer(nn.Module):
    """E_src (RCC or BEATs), E_doa, E_dist (RCC), multi-feature attention, P_audio/P_doa/P_dist.

    With an RCC source all three streams' band tokens (3 x n_bands per frame)
    go through the fusion conformer; a BEATs source's tokens (width 768)
    bypass it and only DOA and distance tokens (2 x n_bands) are fused.
    """

    def __init__(self, source: str, cfg: ModelConfig) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"unknown source encoder {source!r}; expected one of {', '.join(SOURCES)}")
        self.source = source
        d = cfg.d_model
        beats = BeatsEncoder(cfg) if source == "beats" else None
        self.e_src: nn.Module = beats if beats is not None else RCCEncoder(SRC_CHANNELS, cfg)
        self.e_doa = RCCEncoder(DOA_CHANNELS, cfg)
        self.e_dist = RCCEncoder(DIST_CHANNELS, cfg)
        n_fused = 3 if source == "rcc" else 2
        # one learned segment embedding per fused stream, added to all its band tokens
        self.segment = nn.Parameter(torch.randn(n_fused, d) * 0.02)
        self.fusion = ConformerStack(
            cfg.fusion_conformer_blocks, d, cfg.n_heads, cfg.ffn_mult, cfg.conv_kernel, cfg.dropout
        )
        src_width = d if beats is None else beats.width
        self.p_audio = Projection(src_width, cfg.token_width, cfg.proj_hidden)
        self.p_doa = Projection(d, cfg.token_width, cfg.proj_hidden)
        self.p_dist = Projection(d, cfg.token_width, cfg.proj_hidden)
        self.width = cfg.token_width

    @property
    def weights_info(self) -> dict:
        """Where the source encoder's weights came from (BEATs checkpoint or random init)."""
        return dict(getattr(self.e_src, "weights_info", {}))

    def forward(
        self, src: torch.Tensor, doa: torch.Tensor, dist: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """src (B,1,T,F), doa (B,4,T,F), dist (B,2,T,F) -> audio, doa, dist tokens, each (B, L, D)."""
        t_src, t_doa, t_dist = self.e_src(src), self.e_doa(doa), self.e_dist(dist)  # (B, L, bands, .)
        fused_in = [t_src, t_doa, t_dist] if self.source == "rcc" else [t_doa, t_dist]
        b, frames, bands, d = t_doa.shape
        for x in fused_in:
            if x.shape[:3] != (b, frames, bands):
                raise ValueError(f"encoder outputs disagree on (B, L, bands): {tuple(x.shape)} vs {(b, frames, bands)}")
        tokens = torch.cat([x + self.segment[i] for i, x in enumerate(fused_in)], dim=2)  # (B, L, n*bands, d)
        tokens = self.fusion(tokens.reshape(b * frames, -1, d)).reshape(b, frames, -1, d)
        parts = list(tokens.split(bands, dim=2))
        if self.source == "beats":
            parts = [t_src] + parts
        return self.p_audio(parts[0]), self.p_doa(parts[1]), self.p_dist(parts[2])
