"""Losses: multi-ACCDOA ADPIT with distance (docs/METHOD.md section 6) and the embedding MAE.

ADPIT (Shimada et al. 2022): per (clip, frame, class) the targets live in
6 slots [A0 | B0 B1 | C0 C1 C2] (1, 2 or 3 same-class events). The 3 output
tracks are compared with 13 candidate track assignments -- A0A0A0, the 6
arrangements of B0, B1 over 3 tracks with one duplicated, the 6 permutations
of C0, C1, C2 -- and the best candidate is kept. Each candidate is padded with
the sum of the other groups' targets: exactly one group is non-zero at an
active (frame, class), so the padding makes every candidate of an inactive
group equal to the active group's first arrangement instead of all zeros
(which would reward predicting silence).
"""

from __future__ import annotations

import torch

from textseld.constants import DISTANCE_LOSSES, N_ADPIT_SLOTS, N_CLASSES, N_TRACKS

# slot index per output track for each of the 13 candidates
_A = [(0, 0, 0)]
_B = [(1, 1, 2), (1, 2, 1), (1, 2, 2), (2, 1, 1), (2, 1, 2), (2, 2, 1)]
_C = [(3, 4, 5), (3, 5, 4), (4, 3, 5), (4, 5, 3), (5, 3, 4), (5, 4, 3)]
CANDIDATES = _A + _B + _C
_GROUP = [0] * len(_A) + [1] * len(_B) + [2] * len(_C)
_FIRST = [_A[0], _B[0], _C[0]]  # the arrangement each group contributes as padding


def adpit_loss(
    pred: torch.Tensor, target: torch.Tensor, distance_scale: float = 1.0, distance_loss: str = "mse"
) -> torch.Tensor:
    """ADPIT. pred: (B, L, K*3*C) after the output activation; target: (B, L, 6, 4, C) -> scalar.

    target[..., s, :, c] = [activity, x, y, distance in metres]; the distance is
    multiplied by `distance_scale` (predictions are then in scaled units).
    Per candidate the squared error runs over the 9 values [x, y, d] x 3 tracks against
    activity-weighted targets; min over candidates; mean over B, L and C.
    distance_loss "mse" (the paper's, docs/METHOD.md section 6): the distance's squared
    error against the activity-weighted target, so an inactive track is pulled to 0.
    "relative": on the tracks the candidate makes active, the squared relative error
    ((d - d_ref) / d_ref)^2, the quantity the metric's RDE averages; no distance term
    on inactive tracks, whose distance the decoder never reads (docs/METHOD.md section 6).
    """
    if distance_loss not in DISTANCE_LOSSES:
        raise ValueError(f"distance_loss: expected one of {', '.join(DISTANCE_LOSSES)}, got {distance_loss!r}")
    b, frames = pred.shape[:2]
    if target.shape[2:] != (N_ADPIT_SLOTS, 4, N_CLASSES) or target.shape[:2] != (b, frames):
        raise ValueError(f"ADPIT target must be (B={b}, L={frames}, 6, 4, {N_CLASSES}), got {tuple(target.shape)}")
    if pred.shape[-1] != N_TRACKS * 3 * N_CLASSES:
        raise ValueError(f"ADPIT prediction must be (B, L, {N_TRACKS * 3 * N_CLASSES}), got {tuple(pred.shape)}")
    values = target[..., 1:, :].clone()  # (B, L, 6, 3, C)
    if distance_scale != 1.0:
        values[..., 2, :] = values[..., 2, :] * distance_scale
    # activity-weighted values, and (for "relative") the activity itself as a 4th value
    slots = target[..., :1, :] * values
    if distance_loss == "relative":
        slots = torch.cat([slots, target[..., :1, :]], dim=-2)  # (B, L, 6, 4, C)
    out = pred.reshape(b, frames, N_TRACKS, 3, N_CLASSES)

    def arrange(idx: tuple[int, int, int]) -> torch.Tensor:
        return slots[:, :, list(idx)]  # (B, L, 3 tracks, 3 or 4, C)

    group_first = [arrange(i) for i in _FIRST]
    losses = []
    for idx, g in zip(CANDIDATES, _GROUP):
        pad = sum(group_first[o] for o in range(3) if o != g)
        tgt = arrange(idx) + pad
        if distance_loss == "mse":
            err = (out - tgt) ** 2
        else:
            active, ref = tgt[..., 3, :], tgt[..., 2, :]
            rel = active * ((out[..., 2, :] - ref) / ref.clamp_min(_MIN_REF)) ** 2
            err = torch.cat([(out[..., :2, :] - tgt[..., :2, :]) ** 2, rel.unsqueeze(-2)], dim=-2)
        losses.append(err.mean(dim=(2, 3)))  # (B, L, C)
    return torch.stack(losses).min(dim=0).values.mean()


_MIN_REF = 1e-3  # a relative error's reference floor (scaled units): inactive tracks have 0


def embedding_mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between embeddings of equal shape (..., D) -> scalar."""
    if a.shape != b.shape:
        raise ValueError(f"embedding_mae needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return (a - b).abs().mean()
