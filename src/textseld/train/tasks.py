"""What one training step computes, per kind of run (the loop's `Task`s).

- `AudioTask`: baseline and tokenizer pretraining: ADPIT on all frames.
- `TextTask`: finetuning with a frozen text encoder: one template per clip
  per step drawn at random (from the loop's seeded generator; with
  templates "fixed" the clip's own fixed template instead, and a batch may
  then carry the text encoder's cached outputs of all its frames), optionally a
  random subset of `text_frames_per_clip` label frames per clip sent through
  the text encoder; loss = mae_weight * MAE(A, GT sentence embedding) +
  adpit_weight * ADPIT on those frames (ADPIT only when nothing before A is
  trained: with a fixed tokenizer the MAE term is a constant without
  gradient; never for the identity control, which has no sentence
  embedding). Evaluation uses the clip's fixed template (derived from its
  name) and all frames.

Distances: packed targets are in metres; the network learns metres *
distance_scale; `predict` returns metres again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from textseld.constants import N_CLASSES, N_LABEL_FRAMES, N_TRACKS
from textseld.train.config import TRAIN_TEMPLATES


def _device_of(batch: dict) -> torch.device:
    """The device of a text model's input batch: its cached outputs', tokens' or features'."""
    for key in ("A", "tokens", "src"):
        if key in batch:
            return batch[key].device
    raise KeyError(f"a text model's batch needs 'src' features or cached 'A' / 'tokens'; it has {sorted(batch)}")


def unscale_output_distance(out: torch.Tensor, scale: float) -> torch.Tensor:
    """out (B, L, K*3*C) with the d value of every track divided by `scale` (back to metres)."""
    if scale == 1.0:
        return out
    shape = out.shape
    view = out.reshape(*shape[:-1], N_TRACKS, 3, N_CLASSES)
    factor = torch.ones(3, 1, dtype=out.dtype, device=out.device)
    factor[2] = 1.0 / scale
    return (view * factor).reshape(shape)


def _model_output(result) -> tuple[torch.Tensor, dict]:
    """Models return (out, aux); tolerate a bare output tensor."""
    if isinstance(result, tuple):
        return result[0], result[1]
    return result, {}


def run_audio_model(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    """Pretraining model or baseline on a batch dict -> (out (B, L, K*3*C), aux)."""
    forward_batch = getattr(model, "forward_batch", None)
    return _model_output(forward_batch(batch) if forward_batch is not None else model(batch))


class AudioTask:
    """ADPIT on the network output of every frame (baseline, pretraining)."""

    def __init__(
        self, model: nn.Module, distance_scale: float = 1.0, adpit_weight: float = 1.0, distance_loss: str = "mse"
    ):
        from textseld.losses import adpit_loss

        self.model = model
        self.distance_scale = float(distance_scale)
        self.adpit_weight = float(adpit_weight)
        self.distance_loss = distance_loss
        self._adpit = adpit_loss

    def losses(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        out, _ = run_audio_model(self.model, batch)
        adpit = self._adpit(out, batch["target"], self.distance_scale, self.distance_loss)
        return {"loss": self.adpit_weight * adpit, "adpit": adpit.detach()}

    def predict(self, batch: dict) -> torch.Tensor:
        out, _ = run_audio_model(self.model, batch)
        return unscale_output_distance(out, self.distance_scale)


def fixed_template_ids(names: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """(B,) long: the deterministic per-clip template used at validation/test time."""
    from textseld.text.sentences import fixed_template

    return torch.tensor([fixed_template(n) for n in names], dtype=torch.long, device=device)


class TextTask:
    """Finetuning step with a frozen text encoder (see module docstring).

    sentence(clip_index, frame, template_id) -> str gives the ground-truth
    sentence (a TextStore's `.sentence`); gt_embed(list[str]) -> (n, D)
    embeds them without gradient (a GroundTruthCache's `.embed`). Both may
    be None for a task that only predicts, or that has no alignment term
    (alignment=False: the identity control, whose loss is ADPIT only).
    """

    def __init__(
        self,
        model: nn.Module,
        sentence: Callable[[int, int, int], str] | None,
        gt_embed: Callable[[list[str]], torch.Tensor] | None,
        n_templates: int,
        mae_weight: float = 0.01,
        adpit_weight: float = 1.0,
        distance_scale: float = 1.0,
        frames_per_clip: int | None = None,
        templates: str = "random",
        distance_loss: str = "mse",
        alignment: bool = True,
    ):
        from textseld.losses import adpit_loss, embedding_mae

        self.model = model
        self.sentence = sentence
        self.gt_embed = gt_embed
        self.n_templates = int(n_templates)
        self.mae_weight = float(mae_weight)
        self.adpit_weight = float(adpit_weight)
        self.distance_scale = float(distance_scale)
        self.distance_loss = distance_loss
        self.frames_per_clip = frames_per_clip if frames_per_clip and frames_per_clip < N_LABEL_FRAMES else None
        if templates not in TRAIN_TEMPLATES:
            raise ValueError(f"templates: expected one of {TRAIN_TEMPLATES}, got {templates!r}")
        self.templates = templates
        self.alignment = bool(alignment)
        self._adpit, self._mae = adpit_loss, embedding_mae

    def draw(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Random template per clip (B,) and, if configured, sorted random frames (B, n)."""
        tids = torch.randint(0, self.n_templates, (batch_size,), generator=generator)
        if self.frames_per_clip is None:
            return tids, None
        frames = (
            torch.stack(
                [torch.randperm(N_LABEL_FRAMES, generator=generator)[: self.frames_per_clip] for _ in range(batch_size)]
            )
            .sort(dim=1)
            .values
        )
        return tids, frames

    def losses(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        cached = "A" in batch
        if cached and self.templates != "fixed":
            raise RuntimeError(
                "cached fixed-template encodings train only with fixed training templates "
                "(train_templates: fixed); this task draws random templates"
            )
        if self.alignment and (self.sentence is None or self.gt_embed is None):
            raise RuntimeError("this TextTask was built for prediction only (no texts / ground-truth embedder)")
        device = batch["target"].device
        bsz = batch["target"].shape[0]
        # Drawn in every case, also when fixed templates (and cached outputs, which hold every
        # frame) discard the draw: the generator's stream then stays that of the random-template
        # path, which the tests compare against step for step. The draw costs microseconds.
        tids, frames = self.draw(bsz, generator)
        template_ids: torch.Tensor | None = tids
        if self.templates == "fixed":  # each clip's own template; cached encodings hold every frame
            # cached outputs were computed under those templates: the model applies none (and a
            # batch of frames dealt across clips, textseld.train.frames, has no clip names)
            template_ids = None if cached else fixed_template_ids(batch["name"])
            frames = None if cached else frames
        target = batch["target"]
        frames_dev = None
        if frames is not None:
            frames_dev = frames.to(device)
            idx = frames_dev.reshape(bsz, -1, *([1] * (target.dim() - 2)))
            target = torch.gather(target, 1, idx.expand(-1, -1, *target.shape[2:]))
        ids_dev = None if template_ids is None else template_ids.to(device)
        out, aux = _model_output(self.model(batch, ids_dev, frames_dev))
        adpit = self._adpit(out, target, self.distance_scale, self.distance_loss)
        if not self.alignment:
            # the identity control (textseld.models.text_identity): no sentence embedding, so
            # no alignment term, whatever is trained before A; no sentence is embedded
            return {"loss": self.adpit_weight * adpit, "adpit": adpit.detach()}
        if not aux["A"].requires_grad:
            # A depends on no trainable parameter (fixed tokenizer, frozen text encoder): the
            # MAE term is a constant that adds no gradient, so its ground-truth sentences are
            # not embedded; the log records no "mae" for such a step.
            return {"loss": self.adpit_weight * adpit, "adpit": adpit.detach()}
        assert self.sentence is not None and self.gt_embed is not None  # checked above, with the alignment term
        frame_lists = frames.tolist() if frames is not None else [list(range(N_LABEL_FRAMES))] * bsz
        clip_indices = [int(i) for i in batch["index"]]
        # the templates the audio path used: the drawn ones, or each clip's fixed one
        used = (tids if template_ids is None else template_ids).tolist()
        sentences = [self.sentence(ci, f, int(t)) for ci, t, fl in zip(clip_indices, used, frame_lists) for f in fl]
        gt = self.gt_embed(sentences).to(device=device, dtype=aux["A"].dtype)
        mae = self._mae(aux["A"], gt.reshape(aux["A"].shape))
        loss = self.mae_weight * mae + self.adpit_weight * adpit
        return {"loss": loss, "adpit": adpit.detach(), "mae": mae.detach()}

    def predict(self, batch: dict) -> torch.Tensor:
        device = _device_of(batch)
        out, _ = _model_output(self.model(batch, fixed_template_ids(batch["name"], device)))
        return unscale_output_distance(out, self.distance_scale)
