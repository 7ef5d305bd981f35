"""`textseld evaluate`: score a folder of DCASE prediction CSVs against the references."""

from __future__ import annotations

import json
import math

from textseld.atomic import write_text_atomic
from textseld.constants import CLASS_NAMES


def _json_safe(value):
    """NaN/inf -> None (JSON null), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _fmt(value: float, scale: float = 1.0, digits: int = 2) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value * scale:.{digits}f}"


def format_report(result: dict) -> str:
    """Human-readable summary: F20°/1 (%), DOAE (°), RDE (%), per class when macro."""
    ci = result.get("ci")
    lines = [f"protocol {result['protocol']}, {result['average']} average, {result['n_clips']} clips scored"]
    for key, label, scale in (("F", "F20°/1 (%)", 100.0), ("DOAE", "DOAE (°)", 1.0), ("RDE", "RDE (%)", 100.0)):
        text = f"{label:<12} {_fmt(result[key], scale)}"
        if ci:
            lo, hi = ci[key]
            text += f"  [{_fmt(lo, scale)}, {_fmt(hi, scale)}] ({100 * ci['level']:.0f}% bootstrap CI)"
        lines.append(text)
    if result["average"] == "macro":
        lines.append(f"{'class':<22} {'F (%)':>7} {'DOAE':>7} {'RDE (%)':>8}")
        cw = result["classwise"]
        for c, name in enumerate(CLASS_NAMES):
            lines.append(
                f"{c:>2} {name:<19} {_fmt(cw['F'][c], 100):>7} {_fmt(cw['DOAE'][c]):>7} {_fmt(cw['RDE'][c], 100):>8}"
            )
    return "\n".join(lines)


def run_evaluate(args) -> int:
    from textseld.metrics.seld import evaluate_dirs

    result = evaluate_dirs(
        args.ref,
        args.pred,
        protocol=args.protocol,
        average=args.average,
        ci=args.ci,
        n_boot=args.n_boot,
        seed=args.seed,
        clip_stats=args.clip_stats,
    )
    print(format_report(result))
    if args.json:
        write_text_atomic(args.json, json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n")
    return 0


def register(sub) -> None:
    """Add `evaluate` to the `textseld` parser."""
    p = sub.add_parser(
        "evaluate",
        help="score DCASE prediction CSVs (F20°/1, DOAE, RDE)",
        description="Score one folder of prediction CSVs (one per clip) against the reference CSVs "
        "under METADATA_DIR (subfolders allowed). Protocol dcase2025 reproduces the official "
        "evaluation code; strict scores all 50 frames of every clip.",
    )
    p.add_argument("--ref", required=True, metavar="METADATA_DIR", help="folder of reference CSVs")
    p.add_argument("--pred", required=True, metavar="PRED_DIR", help="folder of prediction CSVs")
    p.add_argument("--protocol", choices=("dcase2025", "strict"), default="dcase2025")
    p.add_argument("--average", choices=("macro", "micro"), default="macro")
    p.add_argument("--ci", action="store_true", help="add 95%% bootstrap intervals (clips resampled)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", metavar="OUT", help="write the scores as JSON (NaN as null)")
    p.add_argument(
        "--clip-stats",
        action="store_true",
        help="also write each clip's statistics into the JSON (for paired comparisons)",
    )
    p.set_defaults(func=run_evaluate)
