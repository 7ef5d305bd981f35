"""`textseld embed-test-sentences`, `textseld alignment` (the alignment diagnostics) and
`textseld timelines` (reference against prediction over time)."""

from __future__ import annotations

import argparse

from textseld.commands import add_command, add_threads


def register(sub) -> None:
    """Add `embed-test-sentences`, `alignment` and `timelines` to the `textseld` parser."""
    e = add_command(
        sub,
        "embed-test-sentences",
        help="embed every distinct ground-truth sentence of a split with a run's frozen text encoder",
        description="The A of every distinct fixed-template sentence of a text store, by the frozen text "
        "encoder the finetuning RUN_DIR used (built as every run builds it), for the alignment "
        "diagnostics (docs/METHOD.md section 8). Refuses a text choice that embeds no sentence.",
    )
    e.add_argument("--run", required=True, metavar="RUN_DIR", help="a text system's finetuning run directory")
    e.add_argument("--texts", required=True, help="text store of the split (HDF5, `textseld make-texts`)")
    e.add_argument("--out", required=True, help="sentence embeddings to write (HDF5)")
    add_threads(e)
    e.set_defaults(func=_embed)

    a = add_command(
        sub,
        "alignment",
        help="one text run's alignment diagnostics: cosine and retrieval of A from audio on a split",
        description="A from audio against A of each frame's ground-truth sentence (same template): "
        "the mean cosine and the rank of the true sentence among the split's distinct sentences "
        "(R@1, R@10, median rank) with chance levels, as JSON (docs/METHOD.md section 8).",
    )
    a.add_argument("--run", required=True, metavar="RUN_DIR", help="the text system's finetuning run directory")
    a.add_argument("--features", required=True, help="packed features of the split (HDF5)")
    a.add_argument("--stats", required=True, help="stats.h5 of the training split")
    a.add_argument("--texts", required=True, help="text store of the split (HDF5)")
    a.add_argument("--sentences", required=True, help="the split's sentence embeddings (embed-test-sentences)")
    a.add_argument("--encoded", default=None, help="a fixed tokenizer's cached outputs of the split (HDF5)")
    a.add_argument("--out", required=True, help="JSON file to write")
    add_threads(a)
    a.set_defaults(func=_alignment)

    t = add_command(
        sub,
        "timelines",
        help="plot reference against prediction over time for a few clips of one system",
        description="Activity per class, azimuth and distance over time, reference against prediction, "
        "for CLIPS (default: the first N clips by name that hold an event), one column each, as PNG.",
    )
    t.add_argument("--ref", required=True, metavar="METADATA_DIR", help="reference CSVs (searched recursively)")
    t.add_argument("--pred", required=True, metavar="PRED_DIR", help="one prediction CSV per clip")
    t.add_argument("--out", required=True, metavar="FILE.png", help="figure to write (PNG)")
    t.add_argument("--clips", nargs="+", default=None, help="clip names (default: the first N with an event)")
    t.add_argument("--n-clips", type=int, default=3, help="clips to draw when --clips is not given")
    t.add_argument("--title", default=None, help="figure title")
    t.set_defaults(func=_timelines)


def _embed(args: argparse.Namespace) -> int:
    from textseld.metrics.alignment import embed_test_sentences
    from textseld.train.rebuild import run_config

    config = run_config(args.run)
    out = embed_test_sentences(
        text=config["text"], text_cfg=config["text_encoder"], texts_h5=args.texts, out=args.out, threads=args.threads
    )
    print(f"wrote {out}")
    return 0


def _alignment(args: argparse.Namespace) -> int:
    import json

    from textseld.metrics.alignment import run_alignment

    result = run_alignment(
        run_dir=args.run,
        features_h5=args.features,
        stats_h5=args.stats,
        texts_h5=args.texts,
        sentences_h5=args.sentences,
        out=args.out,
        encoded_h5=args.encoded,
        threads=args.threads,
    )
    print(json.dumps(result, indent=2, default=str))
    return 0


def _timelines(args: argparse.Namespace) -> int:
    from textseld.timelines import plot_clip_timelines

    clips = plot_clip_timelines(
        ref_dir=args.ref, pred_dir=args.pred, out=args.out, clips=args.clips, n_clips=args.n_clips, title=args.title
    )
    print(f"wrote {args.out}: {', '.join(clips)}")
    return 0
