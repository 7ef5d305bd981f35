"""Training configuration: one dataclass, strict construction from dicts.

The workflow's `train` config sections are plain dicts; `TrainConfig.from_dict`
builds the dataclass and rejects unknown keys, so that a typo in a config file
fails loudly instead of silently training with defaults. What a setup trains
with (epochs, batch size, learning rates, schedule, ...) is its recipe's, owned
by textseld.recipes: every recipe states each of those keys, so the defaults
below matter only to direct library use (tests, benchmarks).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from textseld.constants import DISTANCE_LOSSES, HEAD_NAMES, PROTOCOLS

SCHEDULES = ("cosine", "multistep", "constant")
TRAIN_TEMPLATES = ("random", "fixed")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained (docs/METHOD.md section 6).

    `lr` is the single learning rate of pretraining and of the baseline;
    finetuning uses two Adam groups: `lr_pretrained` for the loaded tokenizer
    and `lr_new` for everything added on top (heads). The schedule is a
    per-epoch multiplier of every group's base learning rate.
    """

    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-4
    lr_pretrained: float = 1e-6
    lr_new: float = 1e-4
    # Finetuning only: keep the loaded tokenizer fixed (no gradient, eval mode)
    # instead of training it at lr_pretrained. The step then skips the backward
    # pass through the tokenizer and the text encoder (about 2.3x cheaper on
    # CPU, BENCHMARKS.md). The paper trains it (lr_pretrained 1e-6).
    freeze_tokenizer: bool = False
    # Finetuning: the head's learning rate by head name ("grep", "trep"), in place
    # of lr_new for that head; None or {} = lr_new for every head. A finetuning
    # resolves it for its own head (`for_head`): its config.json records that lr_new.
    lr_new_by_head: dict | None = None
    # Finetuning: which template a training clip is written into. "random": one drawn per
    # clip and step (docs/METHOD.md section 4); "fixed": always the clip's fixed template, the one
    # validation and test use. With a fixed tokenizer too, the text encoder's outputs of every
    # training frame are then fixed: the workflow computes them once (encode_sentences) and
    # the finetuning trains only its head, on all frames of every clip.
    train_templates: str = "random"
    # Finetuning on those cached outputs only: deal every epoch's training frames in a random
    # order across clips into batches (of batch_size x L frames), instead of batching the L
    # frames of batch_size clips (textseld.train.frames). The heads and the loss are per frame.
    shuffle_frames: bool = False
    # Stereo channel-swap augmentation (textseld.train.augment): the probability with which a
    # training clip's left and right channels are swapped and its azimuths negated, drawn per
    # clip and epoch. 0 = off. It acts on the features, so not on cached text-encoder outputs.
    channel_swap: float = 0.0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: dict = field(default_factory=lambda: {"name": "cosine"})
    mae_weight: float = 0.01
    adpit_weight: float = 1.0
    distance_scale: float = 1.0
    # The distance term of the ADPIT loss (textseld.losses.DISTANCE_LOSSES): "mse" (the
    # paper's) or "relative" (squared relative error on active tracks only).
    distance_loss: str = "mse"
    val_batch_size: int | None = None  # None: same as batch_size
    val_protocol: str = "dcase2025"
    num_workers: int = 0
    # Frames per clip sent through the text encoder during training (random
    # subset, seeded); None = all L frames. Evaluation always uses all frames.
    text_frames_per_clip: int | None = None
    deterministic: bool = True
    max_steps_per_epoch: int | None = None
    checkpoint_every_steps: int | None = None  # besides the end of every epoch
    grad_clip: float | None = None
    device: str = "auto"
    # CPU threads for torch (None = torch's default, all cores). Set it to the
    # job's cores: oversubscribed OpenMP threads slow CPU training many-fold.
    torch_threads: int | None = None
    progress: bool = True  # tqdm bars

    # ------------------------------------------------------------------ build
    @classmethod
    def from_dict(cls, values: dict | None) -> TrainConfig:
        """Build from a plain dict (a config section) on top of the defaults above.

        Unknown keys raise ValueError naming the key and listing the valid ones.
        """
        values = dict(values or {})
        names = [f.name for f in dataclasses.fields(cls)]
        if "val_fraction" in values:  # one split for every run: not a per-run setting
            raise ValueError(
                "training config key 'val_fraction': the validation split is shared by every run; "
                "set it once (workflow: train.validation_split.fraction; library: the split "
                "argument, textseld.data.splits.SplitConfig)"
            )
        unknown = [k for k in values if k not in names]
        if unknown:
            raise ValueError(
                f"unknown training config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(names)}"
            )
        cfg = cls(**values)
        cfg.validate()
        return cfg

    @classmethod
    def coerce(cls, value: TrainConfig | dict | None) -> TrainConfig:
        """Accept a ready TrainConfig or a dict section (`from_dict`)."""
        if isinstance(value, TrainConfig):
            value.validate()
            return value
        return cls.from_dict(value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def for_head(self, head: str) -> TrainConfig:
        """This configuration with lr_new set to `head`'s entry of lr_new_by_head (if any)."""
        return dataclasses.replace(self, **section_for_head({"lr_new_by_head": self.lr_new_by_head}, head))

    # --------------------------------------------------------------- validate
    def validate(self) -> None:
        """Raise ValueError naming the offending key."""

        def need(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise ValueError(f"training config key {key!r}: expected {what}, got {getattr(self, key)!r}")

        def pos_int(key: str, optional: bool = False) -> None:
            v = getattr(self, key)
            if optional and v is None:
                return
            need(
                isinstance(v, int) and not isinstance(v, bool) and v > 0,
                key,
                "a positive integer" + (" or null" if optional else ""),
            )

        def nonneg(key: str) -> None:
            v = getattr(self, key)
            need(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
                key,
                "a non-negative number",
            )

        for key in ("epochs", "batch_size"):
            pos_int(key)
        for key in (
            "val_batch_size",
            "text_frames_per_clip",
            "max_steps_per_epoch",
            "checkpoint_every_steps",
            "torch_threads",
        ):
            pos_int(key, optional=True)
        for key in ("lr", "lr_pretrained", "lr_new", "weight_decay", "mae_weight", "adpit_weight"):
            nonneg(key)
        need(
            isinstance(self.distance_scale, (int, float)) and self.distance_scale > 0,
            "distance_scale",
            "a positive number",
        )
        need(self.distance_loss in DISTANCE_LOSSES, "distance_loss", f"one of {', '.join(DISTANCE_LOSSES)}")
        need(isinstance(self.freeze_tokenizer, bool), "freeze_tokenizer", "true or false")
        by_head = self.lr_new_by_head
        need(
            by_head is None
            or (
                isinstance(by_head, dict)
                and all(k in HEAD_NAMES for k in by_head)
                and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                    for v in by_head.values()
                )
            ),
            "lr_new_by_head",
            f"null or a mapping from head names ({', '.join(HEAD_NAMES)}) to non-negative learning rates",
        )
        need(self.train_templates in TRAIN_TEMPLATES, "train_templates", " or ".join(map(repr, TRAIN_TEMPLATES)))
        need(isinstance(self.shuffle_frames, bool), "shuffle_frames", "true or false")
        need(
            isinstance(self.channel_swap, (int, float))
            and not isinstance(self.channel_swap, bool)
            and 0 <= self.channel_swap <= 1,
            "channel_swap",
            "a probability in [0, 1]",
        )
        need(isinstance(self.num_workers, int) and self.num_workers >= 0, "num_workers", "an integer >= 0")
        need(self.optimizer == "adam", "optimizer", "'adam'")
        need(self.device in DEVICES, "device", f"one of {', '.join(DEVICES)}")
        need(self.val_protocol in PROTOCOLS, "val_protocol", " or ".join(map(repr, PROTOCOLS)))
        need(
            self.grad_clip is None or (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0),
            "grad_clip",
            "a positive number or null",
        )
        self._validate_schedule()

    def _validate_schedule(self) -> None:
        s = self.schedule
        if not isinstance(s, dict) or s.get("name") not in SCHEDULES:
            raise ValueError(
                f"training config key 'schedule': expected a mapping with 'name' one of "
                f"{', '.join(SCHEDULES)}, got {s!r}"
            )
        allowed = {
            "cosine": {"name", "min_factor"},
            "multistep": {"name", "milestones", "gamma"},
            "constant": {"name"},
        }[s["name"]]
        unknown = sorted(set(s) - allowed)
        if unknown:
            raise ValueError(
                f"training config key 'schedule': unknown key(s) {', '.join(map(repr, unknown))} for "
                f"schedule {s['name']!r}; valid keys: {', '.join(sorted(allowed))}"
            )
        if s["name"] == "multistep":
            ms = s.get("milestones")
            if not (isinstance(ms, list) and all(isinstance(m, int) and m > 0 for m in ms) and ms == sorted(ms)):
                raise ValueError(
                    f"training config key 'schedule.milestones': expected an increasing "
                    f"list of positive epochs, got {ms!r}"
                )
            gamma = s.get("gamma", 0.1)
            if not (isinstance(gamma, (int, float)) and 0 < gamma <= 1):
                raise ValueError(f"training config key 'schedule.gamma': expected a number in (0, 1], got {gamma!r}")
        if s["name"] == "cosine":
            mf = s.get("min_factor", 0.0)
            if not (isinstance(mf, (int, float)) and 0 <= mf <= 1):
                raise ValueError(f"training config key 'schedule.min_factor': expected a number in [0, 1], got {mf!r}")


def section_for_head(section: dict, head: str) -> dict:
    """A finetuning config section for one head: lr_new resolved from lr_new_by_head, and that
    key left out (the workflow's finetuning parameters: changing one head's rate then leaves
    the other head's finetunings alone)."""
    section = dict(section)
    by_head = section.pop("lr_new_by_head", None) or {}
    if head in by_head:
        section["lr_new"] = by_head[head]
    return section


def lr_factor(schedule: dict, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate during 0-based `epoch` of `epochs`.

    cosine: 0.5 (1 + cos(pi epoch / epochs)), floored at min_factor (as
    torch's CosineAnnealingLR stepped once per epoch, eta_min = 0);
    multistep: gamma ** (number of milestones <= epoch) (as torch's MultiStepLR);
    constant: 1.
    """
    name = schedule["name"]
    if name == "constant":
        return 1.0
    if name == "multistep":
        gamma = float(schedule.get("gamma", 0.1))
        return gamma ** sum(1 for m in schedule["milestones"] if epoch >= m)
    if name == "cosine":
        mf = float(schedule.get("min_factor", 0.0))
        return mf + (1.0 - mf) * 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))
    raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
