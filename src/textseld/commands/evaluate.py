"""`textseld evaluate`: score a folder of DCASE prediction CSVs against the references."""

from __future__ import annotations

from textseld.commands import add_command, given
from textseld.constants import AVERAGES, PROTOCOLS


def run_evaluate(args) -> int:
    from textseld.metrics.evaluate import evaluate, format_report

    result = evaluate(
        refs=args.ref,
        predictions=args.pred,
        out=args.out,
        protocol=args.protocol,
        average=args.average,
        ci=args.ci,
        clip_stats=args.clip_stats,
        **given(args, "n_boot", "seed"),
    )
    print(format_report(result))
    return 0


def register(sub) -> None:
    """Add `evaluate` to the `textseld` parser."""
    p = add_command(
        sub,
        "evaluate",
        help="score DCASE prediction CSVs (F20°/1, DOAE, RDE)",
        description="Score one folder of prediction CSVs (one per clip) against the reference CSVs "
        "under METADATA_DIR (subfolders allowed). Protocol dcase2025 reproduces the official "
        "evaluation code; strict scores all 50 frames of every clip.",
    )
    p.add_argument("--ref", required=True, metavar="METADATA_DIR", help="folder of reference CSVs")
    p.add_argument("--pred", required=True, metavar="PRED_DIR", help="folder of prediction CSVs")
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=PROTOCOLS[0],
        help="dcase2025: the official evaluation code's; strict: all 50 frames of every clip",
    )
    p.add_argument("--average", choices=AVERAGES, default=AVERAGES[0], help="class averaging")
    p.add_argument("--ci", action="store_true", help="add 95%% bootstrap intervals (clips resampled)")
    p.add_argument("--n-boot", type=int, default=None, help="bootstrap replicates (default: the library function's)")
    p.add_argument("--seed", type=int, default=None, help="bootstrap seed (default: the library function's)")
    p.add_argument(
        "--out",
        metavar="FILE.json",
        help="write the scores as JSON (NaN as null)",
    )
    p.add_argument(
        "--clip-stats",
        action="store_true",
        help="also write each clip's statistics into the JSON (for paired comparisons)",
    )
    p.set_defaults(func=run_evaluate)
