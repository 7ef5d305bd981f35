"""CLIP text tower (open_clip) as a TextEncoder with placeholder injection.

The architecture comes from open_clip's bundled model config (e.g.
`ViT-B-16`: width 512, 12 layers, 8 heads, context 77), optionally
overridden; weights only from a local file. Tokenizer: open_clip's bundled
BPE (offline), with the placeholders "<src>", "<doa>", "<dist>" added as
special tokens. Their ids (49408..49410) are larger than the end-of-text id,
so the EOT position is taken from the sequence length, never from argmax.

A = text projection of ln_final(EOT state); the hidden states returned at
the placeholders are ln_final outputs too (open_clip's token outputs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from open_clip import get_model_config, get_pretrained_cfg
from open_clip.model import CLIPTextCfg
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import LayerNorm, QuickGELU, TextTransformer
from torch import nn

from textseld.models.text_config import TextEncoderConfig
from textseld.models.text_encoders import TextEncoder, file_info

log = logging.getLogger(__name__)

PLACEHOLDERS = ("<src>", "<doa>", "<dist>")


def clip_text_cfg(config: TextEncoderConfig) -> tuple[CLIPTextCfg, int, bool]:
    """(text tower config, embed_dim E, QuickGELU) of config's open_clip architecture with its overrides."""
    model_cfg = get_model_config(config.clip_arch)
    if model_cfg is None:
        raise ValueError(f"unknown open_clip architecture {config.clip_arch!r} (no bundled model config)")
    text = dict(model_cfg.get("text_cfg", {}))
    text.update(config.clip_text_cfg or {})
    cfg = CLIPTextCfg(**text)
    if cfg.hf_model_name or cfg.embed_cls or cfg.no_causal_mask:
        raise ValueError(f"{config.clip_arch}: only the standard causal CLIP text transformer is supported")
    embed_dim = int(config.clip_embed_dim or model_cfg["embed_dim"])
    quick_gelu = config.clip_quick_gelu
    if quick_gelu is None:
        quick_gelu = bool(model_cfg.get("quick_gelu", False))
        if config.clip_pretrained:
            pcfg = get_pretrained_cfg(config.clip_arch, config.clip_pretrained)
            if not pcfg:
                raise ValueError(
                    f"open_clip knows no pretrained tag {config.clip_pretrained!r} "
                    f"for {config.clip_arch}; set clip_quick_gelu explicitly"
                )
            quick_gelu = quick_gelu or bool(pcfg.get("quick_gelu", False))
    return cfg, embed_dim, quick_gelu


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive: a zip file holding serialized code (`<name>/code/...`)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in name for name in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_clip_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a CLIP checkpoint: .safetensors or a torch state dict (weights_only). A TorchScript
    archive is refused (loading it would execute code from the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if _is_torchscript(path):
        # Loading TorchScript runs code from the file: never done on a user-supplied file.
        raise ValueError(
            f"{path}: a TorchScript archive (like OpenAI's original CLIP .pt files); textseld loads weights "
            f"only as data (safetensors or a torch state dict read with weights_only=True). Fetch the "
            f"weights with `textseld download-pretrained`, or, if you trust this file, convert it once: python -c "
            f"\"import torch; torch.save(torch.jit.load('{path}', map_location='cpu').state_dict(), "
            f"'{path.with_suffix('.state_dict.pt')}')\""
        )
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a safetensors file or a torch state dict ({exc})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return sd


def _text_tower_state(sd: dict[str, Any], wanted: dict[str, torch.Tensor], path) -> dict[str, torch.Tensor]:
    """Pick the text tower's tensors out of a full CLIP state dict (keys with
    or without a `module.` / `text.` prefix)."""
    out = {}
    for key, ref in wanted.items():
        for prefix in ("", "module.", "text.", "module.text."):
            if prefix + key in sd:
                value = sd[prefix + key]
                if tuple(value.shape) != tuple(ref.shape):
                    raise ValueError(
                        f"{path}: {key} has shape {tuple(value.shape)}, "
                        f"the configured architecture expects {tuple(ref.shape)}"
                    )
                out[key] = value
                break
    missing = sorted(set(wanted) - set(out))
    if missing:
        raise ValueError(f"{path}: missing text-tower weights {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return out


class CLIPTextEncoder(TextEncoder):
    kind = "clip"

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        cfg, embed_dim, quick_gelu = clip_text_cfg(config)
        self.tower = TextTransformer(
            context_length=cfg.context_length,
            vocab_size=cfg.vocab_size,
            width=cfg.width,
            heads=cfg.heads,
            layers=cfg.layers,
            mlp_ratio=cfg.mlp_ratio,
            ls_init_value=cfg.ls_init_value,
            output_dim=embed_dim,
            proj_type=cfg.proj_type,
            proj_bias=cfg.proj_bias,
            act_layer=QuickGELU if quick_gelu else nn.GELU,
            norm_layer=LayerNorm,
            block_type=cfg.block_type,
            qk_norm=cfg.qk_norm,
            scaled_cosine_attn=cfg.scaled_cosine_attn,
            scale_heads=cfg.scale_heads,
            scale_attn_inner=cfg.scale_attn_inner,
            scale_attn=cfg.scale_attn,
            scale_fc=cfg.scale_fc,
        )
        self.width = cfg.width
        self.embed_dim = embed_dim if self.tower.text_projection is not None else cfg.width
        self.context_length = cfg.context_length
        self.tokenizer = SimpleTokenizer(
            additional_special_tokens=list(PLACEHOLDERS), context_length=cfg.context_length
        )
        self.placeholders = PLACEHOLDERS
        self.placeholder_ids = tuple(self.tokenizer.encoder[p] for p in PLACEHOLDERS)
        self.pad_id = 0  # open_clip pads with 0; never attended before EOT (causal)
        base_info = {
            "kind": "clip",
            "arch": config.clip_arch,
            "pretrained": config.clip_pretrained,
            "quick_gelu": quick_gelu,
            "width": cfg.width,
            "layers": cfg.layers,
            "heads": cfg.heads,
            "embed_dim": self.embed_dim,
        }
        if config.clip_weights:
            sd = load_clip_state_dict(config.clip_weights)
            wanted = self.tower.state_dict()
            self.tower.load_state_dict(_text_tower_state(sd, wanted, config.clip_weights))
            self.weights_info = {**base_info, **file_info(config.clip_weights)}
        else:
            log.warning("CLIP text tower %s: no weights file, random init", config.clip_arch)
            self.weights_info = {**base_info, "source": "random init"}
        self._init_templates()

    def _word_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def _encode_ids(self, text: str) -> list[int]:
        ids = [self.tokenizer.sot_token_id] + self.tokenizer.encode(text) + [self.tokenizer.eot_token_id]
        if len(ids) > self.context_length:  # same truncation as open_clip: EOT kept last
            ids = ids[: self.context_length]
            ids[-1] = self.tokenizer.eot_token_id
        return ids

    def _embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tower.token_embedding(ids)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (n, S, D) input embeddings; lengths: (n,) incl. SOT/EOT.
        -> A (n, E), hidden (n, S, D). Causal attention: the padding after EOT
        never reaches positions up to EOT, so no padding mask is needed."""
        s = x.shape[1]
        x = x + self.tower.positional_embedding[:s].to(x.dtype)
        x = self.tower.transformer(x, attn_mask=self.tower.attn_mask[:s, :s])
        x = self.tower.ln_final(x)
        eot = x[torch.arange(x.shape[0], device=x.device), lengths.to(x.device) - 1]  # (n, D)
        proj = self.tower.text_projection
        if proj is None:
            a = eot
        elif isinstance(proj, nn.Linear):
            a = proj(eot)
        else:
            a = eot @ proj
        return a, x
