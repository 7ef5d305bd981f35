"""`textseld make-texts`: build the ground-truth text store of one packed split."""

from __future__ import annotations

import argparse
import logging

from textseld.commands import add_command

log = logging.getLogger(__name__)


def run_texts(args: argparse.Namespace) -> int:
    from textseld.text.store import TextStore, build_text_store

    out = build_text_store(features_path=args.features, out_path=args.out)
    store = TextStore(out)
    log.info("wrote %s: %d clips x %d frames", out, len(store), store.n_frames)
    return 0


def register(sub) -> None:
    """Add `make-texts` (rule make_texts) to the `textseld` parser."""
    p = add_command(
        sub,
        "make-texts",
        help="build the ground-truth sentence store of a packed features file",
        description="Render the per-frame ground-truth sentences (fixed template per clip) "
        "and store the events needed to render any template during training.",
    )
    p.add_argument("--features", required=True, help="packed features HDF5 (datasets names, label_rows, label_offsets)")
    p.add_argument("--out", required=True, help="output text store (HDF5), written atomically")
    p.set_defaults(func=run_texts)
