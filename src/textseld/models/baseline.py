"""The DCASE2025 stereo SELD baseline CRNN (the results table's "Baseline" row).

forward(batch) -> ((B, L=50, K*3*C=117), {}) like the other models, with
logmel_lr = batch["doa"][:, :2]; `forward_features(logmel_lr (B, 2, T, F))` is
the bare network. Same output format and activation as the text models.
"""

from __future__ import annotations

import torch
from torch import nn

from textseld.constants import N_MELS
from textseld.models.config import ModelConfig
from textseld.models.heads import OUT_DIM, accdoa_activation

IN_CHANNELS = 2


class BaselineCRNN(nn.Module):
    """3 x (conv3x3-BN-ReLU, max-pool, dropout), 2-layer biGRU (directions multiplied), 2 MHSA blocks, 2 linears."""

    def __init__(self, cfg: ModelConfig, n_mels: int = N_MELS) -> None:
        super().__init__()
        blocks, c = [], IN_CHANNELS
        f = n_mels
        for pool in cfg.baseline_pools:
            blocks += [
                nn.Conv2d(c, cfg.baseline_filters, 3, padding=1),
                nn.BatchNorm2d(cfg.baseline_filters),
                nn.ReLU(),
                nn.MaxPool2d(tuple(pool)),
                nn.Dropout2d(cfg.baseline_dropout),
            ]
            c = cfg.baseline_filters
            f //= pool[1]
        if f < 1:
            raise ValueError(f"baseline_pools reduce {n_mels} mel bands to zero")
        self.conv = nn.Sequential(*blocks)
        h = cfg.baseline_rnn
        self.gru = nn.GRU(
            c * f,
            h,
            num_layers=cfg.baseline_rnn_layers,
            batch_first=True,
            dropout=cfg.baseline_dropout if cfg.baseline_rnn_layers > 1 else 0.0,
            bidirectional=True,
        )
        self.attn = nn.ModuleList(
            [
                nn.MultiheadAttention(h, cfg.baseline_heads, dropout=cfg.baseline_dropout, batch_first=True)
                for _ in range(cfg.baseline_attn_blocks)
            ]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(h) for _ in range(cfg.baseline_attn_blocks)])
        self.fc = nn.Sequential(nn.Linear(h, cfg.baseline_fc), nn.Linear(cfg.baseline_fc, OUT_DIM))
        self.in_channels = IN_CHANNELS
        self.distance_activation = cfg.distance_activation

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """logmel_lr (B, 2, T, F) -> (B, L, K*3*C)."""
        if x.dim() != 4 or x.shape[1] != IN_CHANNELS:
            raise ValueError(f"baseline expects logmel_lr (B, 2, T, F), got {tuple(x.shape)}")
        x = self.conv(x)  # (B, c, L, f)
        x = x.transpose(1, 2).flatten(2)  # (B, L, c*f)
        x, _ = self.gru(x)
        x = torch.tanh(x)
        h = x.shape[-1] // 2
        x = x[..., :h] * x[..., h:]  # forward x backward direction
        for attn, norm in zip(self.attn, self.norms):
            x = norm(x + attn(x, x, x, need_weights=False)[0])
        return accdoa_activation(self.fc(x), self.distance_activation)

    def forward(
        self, batch: dict, template_ids: torch.Tensor | None = None, frames: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict]:
        """Batch dict with `doa` (B, 4, T, F) -> ((B, L', K*3*C), {}); the input is doa[:, :2] (log-mel L, R).

        `template_ids` is ignored (no text); `frames` (L',) selects output frames.
        """
        out = self.forward_features(batch["doa"][:, :IN_CHANNELS])
        return (out if frames is None else out[:, torch.as_tensor(frames, device=out.device).long()]), {}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """One learning rate for everything: all parameters are "new"."""
        return {"pretrained": [], "new": [p for p in self.parameters() if p.requires_grad]}
