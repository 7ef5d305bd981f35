"""`textseld plan`: jobs, device-hours, wall time and disk of a workflow config, before it runs."""

from __future__ import annotations

import argparse

from textseld.commands import add_command


def register(sub) -> None:
    """Add `plan` to the `textseld` parser."""
    p = add_command(
        sub,
        "plan",
        help="print the jobs per rule, projected device-hours, wall time on N GPUs and disk of a config",
        description="For the workflow config made of CONFIGFILEs (merged in order, as Snakemake merges "
        "config/config.yaml and --configfile files), print the jobs the workflow plans per rule, the "
        "CPU- and GPU-hours projected from the measured step times in RECORDS (per device type; a "
        "figure without a measurement of its device is printed as missing), the wall time of the "
        "training jobs on N GPUs, and the disk of the features and checkpoints. Run it in the checkout.",
    )
    p.add_argument(
        "--configfile",
        nargs="+",
        required=True,
        metavar="CONFIGFILE",
        help="the workflow's config files in merge order, e.g. config/config.yaml config/paper.yaml",
    )
    p.add_argument("--gpus", type=int, default=1, metavar="N", help="GPUs the training jobs share")
    p.add_argument(
        "--train-clips",
        type=int,
        metavar="N",
        help="training clips of a dataset not downloaded yet (default: the synthesis size, or the "
        "WAV files of the downloaded dataset)",
    )
    p.add_argument("--test-clips", type=int, metavar="N", help="test clips, as --train-clips")
    p.add_argument("--records", default="benchmarks/records", metavar="DIR", help="folder of the measured records")
    p.add_argument("--schema", default="config/schema.yaml", metavar="FILE", help="the config schema (its defaults)")
    p.add_argument(
        "--datasets", default="resources/datasets", metavar="DIR", help="where the workflow puts downloaded datasets"
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from textseld.plan import PlanError, dataset_clips, format_plan, load_config, load_records, plan

    if args.gpus < 1:
        raise PlanError(f"--gpus: expected at least 1, got {args.gpus}")
    for flag, value in (("--train-clips", args.train_clips), ("--test-clips", args.test_clips)):
        if value is not None and value < 1:
            raise PlanError(f"{flag}: expected a positive number of clips, got {value}")
    config = load_config(args.configfile, args.schema)
    train, test, origin = dataset_clips(config, args.datasets)
    if args.train_clips is not None:
        train, origin = args.train_clips, "--train-clips"
    if args.test_clips is not None:
        test = args.test_clips
        origin += ", --test-clips"
    fin = config["train"].get("finetune") or {}
    from textseld.train.config import TrainConfig

    fin_cfg = TrainConfig.from_dict(fin)
    records = load_records(
        args.records,
        models_size=str((config.get("models") or {})["size"]),
        finetune_mode={"freeze_tokenizer": fin_cfg.freeze_tokenizer, "train_templates": fin_cfg.train_templates},
    )
    p = plan(config, records, gpus=args.gpus, train_clips=train, test_clips=test)
    header = f"textseld plan: {' + '.join(args.configfile)}; data {config['data']['source']} (clips: {origin})"
    print(format_plan(p, header=header))
    return 0
