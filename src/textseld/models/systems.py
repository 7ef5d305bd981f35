"""The models of the grid: the tokenizer pretraining model and the text-encoder SELD model.

    PretrainModel(source, cfg)                        tokenizer -> Linear head (ADPIT only)
    SeldTextModel(source, head, cfg, text_encoder)    tokenizer -> frozen text encoder -> GREP/TREP

Both return (output (B, L', K*3*C), aux dict) from `forward(batch, ...)`
where batch = {"src" (B,1,T,F), "doa" (B,4,T,F), "dist" (B,2,T,F), ...}.
`textseld.models.factory` builds them (and the baseline) from names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from textseld.constants import HEAD_NAMES
from textseld.models.config import ModelConfig
from textseld.models.heads import GrepHead, PretrainHead, TrepHead
from textseld.models.tokenizer import Tokenizer

if TYPE_CHECKING:  # the text encoder is built by the caller; no import at run time
    from textseld.models.text_encoders import TextEncoder

_HEAD_CLASSES: dict[str, Callable[[int, int, str], nn.Module]] = {"grep": GrepHead, "trep": TrepHead}
HEADS = {name: _HEAD_CLASSES[name] for name in HEAD_NAMES}  # a head name without its class fails here
_TEXT_PREFIX = "text_encoder."


def _select_frames(x: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
    """x (B, L, ...) -> (B, L', ...) at `frames`: (L',) shared by all clips or (B, L') per clip."""
    if frames is None:
        return x
    frames = frames.to(x.device).long()
    if frames.dim() == 1:
        return x[:, frames]
    if frames.dim() == 2 and frames.shape[0] == x.shape[0]:
        idx = frames.view(*frames.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
        return x.gather(1, idx)
    raise ValueError(f"frames must be (L',) or (B={x.shape[0]}, L'), got {tuple(frames.shape)}")


class PretrainModel(nn.Module):
    """Tokenizer + Linear(3D, K*3*C) on the concatenated token streams (ADPIT only, no text encoder)."""

    def __init__(self, source: str, cfg: ModelConfig) -> None:
        super().__init__()
        self.tokenizer = Tokenizer(source, cfg)
        self.head = PretrainHead(cfg.token_width, cfg.distance_activation)

    def forward(
        self, batch: dict, template_ids: torch.Tensor | None = None, frames: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict]:
        """-> (B, L', K*3*C), aux {"tokens": (B, L', 3, D)}. `template_ids` is ignored (no text)."""
        streams = self.tokenizer(batch["src"], batch["doa"], batch["dist"])
        tokens = _select_frames(torch.stack(streams, dim=2), frames)  # (B, L', 3, D)
        return self.head(tokens.flatten(-2)), {"tokens": tokens}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Pretraining trains everything with one learning rate: all trainable parameters are "new"."""
        return {"pretrained": [], "new": [p for p in self.parameters() if p.requires_grad]}


class SeldTextModel(nn.Module):
    """Tokenizer -> frozen text encoder (placeholders replaced by the tokens) -> GREP/TREP head.

    The text encoder is a submodule (it moves with .to()) but is left out of
    state_dict() and of load_state_dict()'s missing keys: it is frozen and
    rebuilt from its own local weights, so checkpoints do not carry it.
    """

    def __init__(self, source: str, head: str, cfg: ModelConfig, text_encoder: TextEncoder) -> None:
        super().__init__()
        self.tokenizer = Tokenizer(source, cfg)
        self.text_encoder = text_encoder
        # A may be wider/narrower than the tokens (CLIP: text projection size E)
        a_dim = getattr(text_encoder, "embed_dim", None) or text_encoder.width
        self.head = HEADS[head](cfg.token_width, a_dim, cfg.distance_activation)
        self.tokenizer_frozen = False
        self.register_state_dict_post_hook(_drop_text_encoder_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_text_encoder_keys)

    def forward(
        self, batch: dict, template_ids: torch.Tensor | None, frames: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict]:
        """batch tensors + template_ids (B,) [+ frames (L',) or (B, L')] -> (B, L', K*3*C), aux.

        aux = {"A": (B, L', E) audio-driven embeddings (E = text_encoder.embed_dim, = D in the paper),
        "hidden": (B, L', 3, D) placeholder states}. Every frame of a clip uses that clip's template.
        With a fixed tokenizer, cached outputs may stand in for the computation
        (textseld.train.tokens): batch["tokens"] (B, L, 3, D) for the tokenizer's, or batch["A"]
        and batch["hidden"] for everything before the head (all frames, the clips' fixed
        templates: the caller's template_ids, if given, must be those; None is allowed only here).
        """
        if "A" in batch:
            if not self.tokenizer_frozen or frames is not None:
                raise RuntimeError("cached text-encoder outputs stand in for a fixed tokenizer on all frames only")
            a, hidden = batch["A"], batch["hidden"]
        elif template_ids is None:
            raise ValueError("template_ids are needed unless the batch holds cached outputs ('A', 'hidden')")
        else:
            a, hidden = self.encode(batch, template_ids, frames)
        b, n = a.shape[:2]
        out = self.head(a.reshape(b * n, -1), hidden.reshape(b * n, 3, -1))  # (B*L', K*3*C)
        return out.reshape(b, n, -1), {"A": a, "hidden": hidden}

    def encode(
        self, batch: dict, template_ids: torch.Tensor, frames: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything before the head: A (B, L', E) and the placeholder states (B, L', 3, D)."""
        streams = [_select_frames(s, frames) for s in self._streams(batch)]
        b, n, d = streams[0].shape
        ids = torch.as_tensor(template_ids, device=streams[0].device).long().reshape(b)
        flat = [s.reshape(b * n, d) for s in streams]
        a, hidden = self.text_encoder.encode_with_tokens(ids.repeat_interleave(n), *flat)
        return a.reshape(b, n, -1), hidden.reshape(b, n, 3, -1)

    def _streams(self, batch: dict) -> list[torch.Tensor]:
        """The three (B, L, D) token streams: the tokenizer's, or a fixed tokenizer's cached
        ones in batch["tokens"] (B, L, 3, D) (textseld.train.tokens)."""
        if "tokens" not in batch:
            return list(self.tokenizer(batch["src"], batch["doa"], batch["dist"]))
        if not self.tokenizer_frozen:
            raise RuntimeError("cached tokens stand in for a fixed tokenizer; this model trains its tokenizer")
        return list(batch["tokens"].unbind(dim=2))

    def freeze_tokenizer(self) -> SeldTextModel:
        """Keep the (loaded) tokenizer fixed: no gradients, eval mode, also after .train().

        Nothing before the head then needs a gradient, so a training step's
        backward pass stops at the head. Its weights are left out of
        checkpoints like every frozen part: they are the pretrain run's.
        """
        for p in self.tokenizer.parameters():
            p.requires_grad_(False)
        self.tokenizer_frozen = True
        self.tokenizer.eval()
        return self

    def train(self, mode: bool = True) -> SeldTextModel:
        super().train(mode)
        if self.tokenizer_frozen:
            self.tokenizer.eval()
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"pretrained": trainable tokenizer params, "new": head params}; the text encoder is in neither."""
        return {
            "pretrained": [p for p in self.tokenizer.parameters() if p.requires_grad],
            "new": [p for p in self.head.parameters() if p.requires_grad],
        }


def _drop_text_encoder_keys(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + _TEXT_PREFIX)]:
        del state_dict[key]


def _ignore_missing_text_encoder_keys(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith(_TEXT_PREFIX) and f".{_TEXT_PREFIX}" not in k]
