"""`textseld extract-features` (one shard), `pack-features` (merge shards) and `feature-stats`."""

from __future__ import annotations

from textseld.commands import add_command, add_threads, given
from textseld.constants import WPE_DELAY, WPE_ITERATIONS, WPE_TAPS


def register(sub) -> None:
    """Add this stage's subcommands to the `textseld` parser."""
    p = add_command(
        sub,
        "extract-features",
        help="extract features, targets and labels of one shard into HDF5",
    )
    p.add_argument("--data", required=True, help="dataset root (holds stereo_dev/ and metadata_dev/)")
    p.add_argument(
        "--split",
        action="append",
        required=True,
        metavar="NAME",
        help="split folder, e.g. dev-train-synth (repeatable)",
    )
    p.add_argument("--out", required=True, help="output HDF5 shard")
    p.add_argument("--shard", default="0/1", metavar="I/N", help="block I of N of the sorted clips")
    p.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    p.add_argument("--batch-size", type=int, default=None, help="clips per batch (default: the library function's)")
    p.add_argument("--wpe-taps", type=int, default=WPE_TAPS, help="WPE filter taps")
    p.add_argument("--wpe-delay", type=int, default=WPE_DELAY, help="WPE prediction delay in frames")
    p.add_argument("--wpe-iterations", type=int, default=WPE_ITERATIONS, help="WPE iterations")
    add_threads(p)
    p.set_defaults(func=_features)

    from textseld.commands.train import add_split_arguments

    q = add_command(
        sub,
        "pack-features",
        help="merge feature shards into one packed file per split, sorted by clip name",
        description="Merge the shards written by extract-features into one packed HDF5 file, "
        "sorted by clip name (its statistics: feature-stats).",
    )
    q.add_argument("--shards", nargs="+", required=True, metavar="FILE", help="shard files from extract-features")
    q.add_argument("--out", required=True, help="packed HDF5 file")
    q.add_argument(
        "--batch-size", type=int, default=None, help="clips per streamed batch (default: the library function's)"
    )
    q.set_defaults(func=_pack)

    s = add_command(
        sub,
        "feature-stats",
        help="per-channel, per-band mean/std of a packed training file, validation clips excluded",
        description="Normalisation statistics (mean/std per channel and mel band) of the training "
        "part of a packed training file: the clips that the validation split of --val-fraction / "
        "--split-seed does not hold out. The split is recorded in the output so that a run can "
        "check it trains on the same split.",
    )
    s.add_argument("--features", required=True, help="packed training features (HDF5)")
    s.add_argument("--out", required=True, metavar="STATS.h5", help="statistics file (HDF5)")
    s.add_argument(
        "--batch-size", type=int, default=None, help="clips per streamed batch (default: the library function's)"
    )
    add_split_arguments(s)
    s.set_defaults(func=_stats)


def _features(args) -> int:
    from textseld.features.pipeline import extract_shard, parse_shard

    extract_shard(
        root=args.data,
        splits=args.split,
        out=args.out,
        shard=parse_shard(args.shard),
        device=args.device,
        **given(args, "batch_size"),
        wpe={"taps": args.wpe_taps, "delay": args.wpe_delay, "iterations": args.wpe_iterations},
        threads=args.threads,
    )
    return 0


def _split(args) -> dict:
    return {k: v for k, v in (("fraction", args.val_fraction), ("seed", args.split_seed)) if v is not None}


def _pack(args) -> int:
    from textseld.data.hdf5 import merge_shards

    merge_shards(shards=args.shards, out=args.out, **given(args, "batch_size"))
    return 0


def _stats(args) -> int:
    from textseld.data.splits import compute_training_stats

    compute_training_stats(packed=args.features, out=args.out, split=_split(args), **given(args, "batch_size"))
    return 0
