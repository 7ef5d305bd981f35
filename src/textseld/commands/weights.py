"""`textseld download-pretrained` (network, run once) and `textseld verify-weights`."""

from __future__ import annotations

import argparse
import logging

from textseld.commands import add_command
from textseld.constants import BERT_REPO, CLIP_ARCH, CLIP_TAG

log = logging.getLogger(__name__)


def _none(value: str) -> str | None:
    return None if value.lower() in ("", "none", "skip") else value


def run_fetch(args: argparse.Namespace) -> int:
    from textseld.models.pretrained import fetch_weights

    path = fetch_weights(
        out_dir=args.out, clip_arch=args.clip_arch, clip_tag=args.clip_weights, bert=args.bert, beats=args.beats
    )
    log.info("wrote %s", path)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from textseld.models.pretrained import verify_manifest

    problems = verify_manifest(args.dir)
    for p in problems:
        print(p)
    return 1 if problems else 0


def register(sub) -> None:
    """Add `download-pretrained` (rule download_pretrained) and `verify-weights` to the `textseld` parser."""
    p = add_command(
        sub,
        "download-pretrained",
        help="download pre-trained weights into a local folder (needs network)",
        description="Download the CLIP text tower, BERT and BEATs weights once; "
        "record SHA-256 checksums in OUT/manifest.json. Pass 'none' to skip an item.",
    )
    p.add_argument("--out", required=True, help="target folder")
    p.add_argument("--clip-arch", type=_none, default=CLIP_ARCH, help="open_clip architecture")
    p.add_argument("--clip-weights", default=CLIP_TAG, help="open_clip pretrained tag")
    p.add_argument(
        "--bert",
        type=_none,
        default=BERT_REPO,
        help="Hugging Face repo id of the BERT",
    )
    p.add_argument("--beats", type=_none, default=None, help="URL or local path of the BEATs checkpoint")
    p.set_defaults(func=run_fetch)
    v = add_command(sub, "verify-weights", help="re-hash the files of a weights folder against its manifest")
    v.add_argument("--dir", required=True, help="folder written by download-pretrained")
    v.set_defaults(func=run_verify)
