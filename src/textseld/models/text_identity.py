"""The control "text encoder": the identity (docs/METHOD.md section 5, "The identity control").

A control system has the same pretrained tokenizer, head type and training as a text system,
with the frozen text encoder replaced by the identity. `encode_with_tokens` returns the three
tokens themselves: as the placeholder states (n, 3, D), which TREP reads, and concatenated as
A (n, 3D), which GREP reads. Concatenation, not a mean: the control gets all the information
the text encoder gets. There is no sentence embedding, so an identity run has no alignment
(MAE) term and no ground-truth sentences are encoded for it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from textseld.constants import IDENTITY

# What weights.json and the tables say of the control's text encoder.
NO_TEXT_ENCODER = "identity (no text encoder)"
# What a control run's config.json and provenance.json say of its loss.
NO_ALIGNMENT = "none: the identity control has no sentence embedding to align A with"


class IdentityTextEncoder(nn.Module):
    """The TextEncoder interface the models use, with no text encoder: width D, embed_dim 3D."""

    kind = IDENTITY

    def __init__(self, width: int) -> None:
        super().__init__()
        if int(width) < 1:
            raise ValueError(f"the identity control needs the token width D >= 1, got {width}")
        self.width = int(width)
        self.embed_dim = 3 * self.width
        self.weights_info: dict[str, Any] = {"kind": IDENTITY, "source": NO_TEXT_ENCODER}
        self._locked = False

    def encode_with_tokens(
        self, template_ids, src: torch.Tensor, doa: torch.Tensor, dist: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """template_ids (n,) (ignored: there is no sentence), src, doa, dist (n, D) ->
        A = [src, doa, dist] (n, 3D) and the placeholder states = the tokens (n, 3, D)."""
        tokens = torch.stack([src, doa, dist], dim=1)
        if tokens.dim() != 3 or tokens.shape[-1] != self.width:
            raise ValueError(
                f"expected src/doa/dist of shape (n, {self.width}), got {tuple(src.shape)}, "
                f"{tuple(doa.shape)}, {tuple(dist.shape)}"
            )
        return tokens.flatten(1), tokens

    @staticmethod
    def encoded_from_tokens(tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cached tokens (..., 3, D) -> what `encode_with_tokens` makes of them under any
        template: {"A": (..., 3D), "hidden": (..., 3, D)} (views, no copy)."""
        return {"A": tokens.flatten(-2), "hidden": tokens}

    def embed_sentences(self, sentences, batch_size: int = 512) -> torch.Tensor:
        raise RuntimeError(f"{NO_TEXT_ENCODER}: there is no sentence embedding")

    def template_lengths(self) -> list[int]:
        """No template is tokenized: every template has length 0 here."""
        from textseld.text.templates import TEMPLATES

        return [0] * len(TEMPLATES)

    def lock(self) -> IdentityTextEncoder:  # nothing to freeze: it has no parameters
        self._locked = True
        return super().train(False)

    @property
    def locked(self) -> bool:
        return self._locked

    def train(self, mode: bool = True) -> IdentityTextEncoder:
        return super().train(False)


__all__ = ["NO_ALIGNMENT", "NO_TEXT_ENCODER", "IdentityTextEncoder"]
