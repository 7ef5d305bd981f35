"""`textseld features` (extract one shard) and `textseld pack` (merge shards, statistics)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this stage's subcommands to the `textseld` parser."""
    p = sub.add_parser("features", help="extract features, targets and labels of one shard into HDF5")
    p.add_argument("--data", required=True, help="dataset root (holds stereo_dev/ and metadata_dev/)")
    p.add_argument(
        "--split",
        action="append",
        required=True,
        metavar="NAME",
        help="split folder, e.g. dev-train-synth (repeatable)",
    )
    p.add_argument("--out", required=True, help="output HDF5 shard")
    p.add_argument("--shard", default="0/1", metavar="I/N", help="block I of N of the sorted clips (default 0/1)")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default cpu)")
    p.add_argument("--batch-size", type=int, default=8, help="clips per batch (default 8)")
    p.add_argument("--wpe-taps", type=int, default=60, help="WPE filter taps (default 60, SPEC)")
    p.add_argument("--wpe-delay", type=int, default=5, help="WPE prediction delay in frames (default 5, SPEC)")
    p.add_argument("--wpe-iterations", type=int, default=5, help="WPE iterations (default 5, SPEC)")
    p.set_defaults(func=_features)

    q = sub.add_parser("pack", help="merge feature shards into one file per split; optional statistics")
    q.add_argument("--shards", nargs="+", required=True, metavar="FILE", help="shard files from `features`")
    q.add_argument("--out", required=True, help="packed HDF5 file")
    q.add_argument(
        "--stats-out",
        metavar="STATS.h5",
        help="also write per-channel, per-band mean/std of the packed training file, validation "
        "clips excluded (the split of --val-fraction / --split-seed)",
    )
    q.add_argument("--batch-size", type=int, default=64, help="clips per streamed batch (default 64)")
    from textseld.commands.train import add_split_arguments

    add_split_arguments(q)
    q.set_defaults(func=_pack)


def _features(args) -> int:
    from textseld.features.pipeline import extract_shard, parse_shard

    extract_shard(
        args.data,
        args.split,
        args.out,
        shard=parse_shard(args.shard),
        device=args.device,
        batch_size=args.batch_size,
        wpe={"taps": args.wpe_taps, "delay": args.wpe_delay, "iterations": args.wpe_iterations},
    )
    return 0


def _pack(args) -> int:
    from textseld.data.hdf5 import merge_shards
    from textseld.data.splits import compute_training_stats

    merge_shards(args.shards, args.out, batch_size=args.batch_size)
    if args.stats_out:
        split = {k: v for k, v in (("fraction", args.val_fraction), ("seed", args.split_seed)) if v is not None}
        compute_training_stats(args.out, args.stats_out, split, batch_size=args.batch_size)
    return 0
