"""`textseld pretrain-tokenizer | finetune | train-baseline | predict`: training and prediction steps.

Each handler calls the same `textseld.train` function as the workflow rule.
`--config FILE` is a YAML or JSON mapping with any of the sections
`models`, `text_encoders`, `train` (the workflow config's sections); the train
section is merged over the step's section (pretrain / finetune / baseline) of the
recipe chosen by --recipe (textseld.recipes; default: paper), except
`train.validation_split` ({fraction, seed}: the one validation split of
every run, also given by --val-fraction / --split-seed; it must be the split the
statistics were computed without, see `textseld feature-stats`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from textseld.commands import add_command, add_threads, given
from textseld.constants import HEAD_NAMES, SOURCES, TEXTS
from textseld.models.config import SIZES
from textseld.recipes import RECIPES
from textseld.train.config import DEVICES

SECTIONS = ("models", "text_encoders", "train")


def load_sections(path: str | None) -> dict:
    """Read a --config file: a mapping whose keys are among SECTIONS."""
    if path is None:
        return {}
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except OSError as exc:
        raise ValueError(f"{p}: cannot read config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML/JSON ({exc})") from None
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = [k for k in data if k not in SECTIONS]
    if unknown:
        raise ValueError(
            f"{p}: unknown section(s) {', '.join(map(repr, unknown))}; valid sections: {', '.join(SECTIONS)}"
        )
    for key, value in data.items():
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{p}: section {key!r} must be a mapping, got {type(value).__name__}")
    return {k: dict(v or {}) for k, v in data.items()}


def _sections(args, kind: str) -> tuple[dict, dict, dict, dict]:
    """(models, text_encoders, train, validation split) sections of the --config file and the options;
    train: the `kind` section of recipe --recipe with the file's train section and the options over it."""
    from textseld.recipes import merge, train_section

    sec = load_sections(args.config)
    model = sec.get("models", {})
    if args.size is not None:
        model["size"] = args.size
    model.setdefault("size", "small")
    train = merge(train_section(args.recipe, kind), sec.get("train", {}))
    for key, value in (
        ("epochs", args.epochs),
        ("device", args.device),
        ("batch_size", args.batch_size),
        ("torch_threads", args.threads),
    ):
        if value is not None:
            train[key] = value
    split = dict(train.pop("validation_split", None) or {})
    for key, value in (("fraction", args.val_fraction), ("seed", args.split_seed)):
        if value is not None:
            split[key] = value
    return model, sec.get("text_encoders", {}), train, split


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--features",
        dest="train_h5",
        required=True,
        metavar="FILE.h5",
        help="packed features of the training split (HDF5)",
    )
    p.add_argument("--stats", required=True, help="normalisation statistics (stats.h5 of the training split)")
    p.add_argument(
        "--out",
        dest="run_dir",
        required=True,
        metavar="RUN_DIR",
        help="run directory to write (resumed if it holds last.pt)",
    )
    p.add_argument(
        "--size",
        choices=SIZES,
        default=None,
        help="model size preset (default: the config's, else small)",
    )
    p.add_argument("--config", default=None, help="YAML/JSON file with sections models, text_encoders, train")
    p.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default="paper",
        help="training recipe (textseld.recipes) whose section for this step the train section is merged over",
    )
    p.add_argument("--seed", type=int, default=0, help="the run's seed (initialisation, batch order)")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="override train.batch_size")
    p.add_argument("--device", choices=DEVICES, default=None, help="override train.device")
    add_threads(p, help="torch CPU threads; overrides train.torch_threads (default: torch's, all cores)")
    add_split_arguments(p)


def add_split_arguments(p: argparse.ArgumentParser) -> None:
    """--val-fraction / --split-seed: the validation split shared by every run and the statistics."""
    p.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="share of training recordings held out for validation (default: 0.1; the same for every run)",
    )
    p.add_argument(
        "--split-seed", type=int, default=None, help="seed of the validation split (default: 0; never the run's --seed)"
    )


def _print(result: dict) -> int:
    print(json.dumps({k: result[k] for k in ("epoch", "F", "DOAE", "RDE") if k in result}))
    return 0


def _pretrain(args) -> int:
    from textseld.train.runs import pretrain

    model, _, train, split = _sections(args, "pretrain")
    return _print(
        pretrain(
            run_dir=args.run_dir,
            train_h5=args.train_h5,
            stats_h5=args.stats,
            source=args.source,
            model_cfg=model,
            train_cfg=train,
            seed=args.seed,
            split=split,
        )
    )


def _finetune(args) -> int:
    from textseld.train.runs import finetune

    model, text, train, split = _sections(args, "finetune")
    return _print(
        finetune(
            run_dir=args.run_dir,
            train_h5=args.train_h5,
            stats_h5=args.stats,
            texts=args.texts,
            pretrained_dir=args.pretrained,
            source=args.source,
            text=args.text,
            head=args.head,
            model_cfg=model,
            text_cfg=text,
            train_cfg=train,
            seed=args.seed,
            split=split,
            tokens=args.tokens,
            encoded=args.encoded,
            encoded_train=args.encoded_train,
        )
    )


def _encode_tokens(args) -> int:
    from textseld.train.encode import encode_tokens

    path = encode_tokens(
        pretrained_dir=args.pretrained,
        features_h5=args.features,
        stats_h5=args.stats,
        out=args.out,
        threads=args.threads,
        device=args.device,
        **given(args, "batch_size"),
    )
    print(f"wrote the tokens of {args.features} to {path}")
    return 0


def _encode_sentences(args) -> int:
    from textseld.train.encode import encode_sentences

    sec = load_sections(args.config)
    split = dict(sec.get("train", {}).get("validation_split") or {})
    for key, value in (("fraction", args.val_fraction), ("seed", args.split_seed)):
        if value is not None:
            split[key] = value
    if args.out is None and args.train_out is None and args.test_out is None:
        raise ValueError("nothing to write: give --out and/or --train-out (with --features), and/or --test-out")
    for flag, value, needs, needed in (
        ("--features", args.features, "--out or --train-out", args.out or args.train_out),
        ("--test-features", args.test_features, "--test-out", args.test_out),
    ):
        if bool(value) != bool(needed):
            raise ValueError(f"{flag} is read for {needs}, and only for it: give them together")
    paths = encode_sentences(
        pretrained_dir=args.pretrained,
        text=args.text,
        text_cfg=sec.get("text_encoders", {}),
        stats_h5=args.stats,
        train_h5=args.features,
        split=split,
        validation_out=args.out,
        test_h5=args.test_features,
        test_out=args.test_out,
        train_out=args.train_out,
        threads=args.threads,
        device=args.device,
        **given(args, "batch_size"),
    )
    print("wrote " + " and ".join(str(p) for p in paths))
    return 0


def _baseline(args) -> int:
    from textseld.train.runs import train_baseline

    model, _, train, split = _sections(args, "baseline")
    return _print(
        train_baseline(
            run_dir=args.run_dir,
            train_h5=args.train_h5,
            stats_h5=args.stats,
            model_cfg=model,
            train_cfg=train,
            seed=args.seed,
            split=split,
        )
    )


def _predict(args) -> int:
    from textseld.train.predict import predict_audio, predict_split

    if (args.features is None) == (not args.audio):
        raise ValueError("give either --features (a packed split) or --audio WAV files, not both")
    if args.features is not None:
        paths = predict_split(
            run_dir=args.run_dir,
            features_h5=args.features,
            stats_h5=args.stats,
            out_dir=args.out,
            checkpoint=args.checkpoint,
            device=args.device,
            threads=args.threads,
        )
    else:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        paths = predict_audio(
            run_dir=args.run_dir,
            audio=args.audio,
            out_dir=args.out,
            checkpoint=args.checkpoint,
            stats_h5=args.stats,
            device=args.device,
        )
    print(f"wrote {len(paths)} prediction file(s) to {args.out}")
    return 0


def register(sub) -> None:
    """Add this stage's subcommands to the `textseld` parser."""
    p = add_command(
        sub,
        "pretrain-tokenizer",
        help="pretrain a tokenizer (source encoder + DOA/distance encoders), ADPIT",
    )
    p.add_argument("--source", required=True, choices=SOURCES, help="source encoder")
    _common(p)
    p.set_defaults(func=_pretrain)

    p = add_command(sub, "finetune", help="finetune tokenizer + frozen text encoder + head")
    p.add_argument("--source", required=True, choices=SOURCES, help="source encoder")
    p.add_argument("--text", required=True, choices=TEXTS, help="frozen text encoder")
    p.add_argument("--head", required=True, choices=HEAD_NAMES, help="output head")
    p.add_argument(
        "--texts",
        default=None,
        help="text store (HDF5) of the training split, from make-texts (required but for --text identity)",
    )
    p.add_argument("--pretrained", required=True, metavar="RUN_DIR", help="run directory of the matching pretraining")
    p.add_argument(
        "--tokens",
        default=None,
        help="the fixed tokenizer's tokens of --features, from encode-tokens (needs freeze_tokenizer)",
    )
    p.add_argument(
        "--encoded",
        default=None,
        help="the validation clips' text-encoder outputs, from encode-sentences --out (needs freeze_tokenizer)",
    )
    p.add_argument(
        "--encoded-train",
        default=None,
        help="the training clips' text-encoder outputs, from encode-sentences --train-out "
        "(needs freeze_tokenizer and train_templates: fixed)",
    )
    _common(p)
    p.set_defaults(func=_finetune)

    p = add_command(
        sub, "encode-tokens", help="store a pretrained tokenizer's tokens of a packed split (for fixed-tokenizer runs)"
    )
    p.add_argument("--pretrained", required=True, metavar="RUN_DIR", help="run directory of the pretraining")
    p.add_argument("--features", required=True, help="packed features of the split (HDF5)")
    p.add_argument("--stats", required=True, help="stats.h5 of the training split")
    p.add_argument("--out", required=True, help="token file to write (HDF5)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="clips per forward pass (default: the library function's)"
    )
    p.add_argument("--device", choices=DEVICES, default="cpu", help="torch device")
    add_threads(p)
    p.set_defaults(func=_encode_tokens)

    p = add_command(
        sub,
        "encode-sentences",
        help="store the frozen text encoder's fixed-template outputs of the validation, test and/or "
        "training clips (for fixed-tokenizer runs; each part its own file, at least one)",
    )
    p.add_argument("--pretrained", required=True, metavar="RUN_DIR", help="run directory of the pretraining")
    p.add_argument("--text", required=True, choices=TEXTS, help="frozen text encoder")
    p.add_argument(
        "--features", default=None, help="packed features of the training split (its validation and training clips)"
    )
    p.add_argument("--stats", required=True, help="stats.h5 of the training split")
    p.add_argument("--out", default=None, help="file to write for the validation clips (HDF5)")
    p.add_argument("--test-features", default=None, help="packed features of the test split")
    p.add_argument("--test-out", default=None, help="file to write for the test clips (HDF5)")
    p.add_argument(
        "--train-out",
        default=None,
        help="file to write for the training clips (HDF5; for finetunings with train_templates: fixed)",
    )
    p.add_argument("--config", default=None, help="YAML/JSON with a text_encoders section (and train.validation_split)")
    p.add_argument("--val-fraction", type=float, default=None, help="validation fraction (default: the split's)")
    p.add_argument("--split-seed", type=int, default=None, help="validation split seed (default: the split's)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="clips per forward pass (default: the library function's)"
    )
    p.add_argument("--device", choices=DEVICES, default="cpu", help="torch device")
    add_threads(p)
    p.set_defaults(func=_encode_sentences)

    p = add_command(sub, "train-baseline", help="train the DCASE2025 audio-only baseline")
    _common(p)
    p.set_defaults(func=_baseline)

    p = add_command(sub, "predict", help="write DCASE CSVs with a trained run")
    p.add_argument("--run-dir", required=True, help="run directory to predict with (config.json + best.pt)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the CSV files")
    p.add_argument("--features", default=None, help="packed features of a split (HDF5)")
    p.add_argument("--audio", nargs="*", default=[], help="stereo WAV files (any length / sample rate)")
    p.add_argument("--stats", default=None, help="stats.h5 (default: the statistics the run trained with)")
    p.add_argument("--checkpoint", default="best", help="best, last or a checkpoint file")
    p.add_argument("--device", choices=DEVICES, default=None, help="torch device (default: the run's)")
    add_threads(p)
    p.set_defaults(func=_predict)
