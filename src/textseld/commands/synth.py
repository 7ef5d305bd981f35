"""`textseld synthesize-dataset`: write the embedded synthetic dataset (DCASE2025 layout)."""

from __future__ import annotations

import argparse
import json

from textseld.commands import add_command, add_threads
from textseld.constants import SPEECH_BACKENDS


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def register(sub) -> None:
    """Add `synthesize-dataset` (rule synthesize_dataset) to the `textseld` parser."""
    p = add_command(
        sub,
        "synthesize-dataset",
        help="synthesise a small stereo SELD dataset in the DCASE2025 format",
        description=(
            "Simulate stereo SELD clips (13 procedural sound classes, shoebox rooms rendered "
            "with first-order-ambisonic image sources, L = W + Y, R = W - Y) and write them as "
            "OUT/stereo_dev/{dev-train-synth,dev-test-synth}/*.wav (24 kHz, 16-bit, 5 s) with "
            "labels in OUT/metadata_dev/<split>/*.csv, plus OUT/synth_summary.json. The output "
            "depends only on --seed and the clip counts, not on --threads."
        ),
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="dataset root to write (created if missing); earlier synthetic clips there are replaced",
    )
    p.add_argument(
        "--train-clips",
        type=_non_negative,
        required=True,
        metavar="N",
        help="number of training clips (fold3, split dev-train-synth)",
    )
    p.add_argument(
        "--test-clips",
        type=_non_negative,
        required=True,
        metavar="M",
        help="number of test clips (fold4, split dev-test-synth)",
    )
    p.add_argument(
        "--seed",
        type=_non_negative,
        required=True,
        metavar="S",
        help="base random seed; each clip derives its own seed from (S, split, index)",
    )
    add_threads(
        p,
        dest="workers",
        type=_non_negative,
        default=1,
        help="worker processes (0 = all CPU cores); does not change the output",
    )
    p.add_argument(
        "--speech",
        choices=SPEECH_BACKENDS,
        default="auto",
        help="speech voices: espeak-ng if on PATH (auto), the built-in "
        "formant synthesiser (formant), or require espeak-ng (espeak)",
    )
    p.add_argument(
        "--scene",
        type=_scene,
        default=None,
        metavar="JSON",
        help="how hard the scenes are, as a JSON object of SceneConfig keys, e.g. "
        '\'{"max_polyphony": 2, "rt60": [0.2, 0.4]}\' (default: the built-in ranges)',
    )
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=_run)


def _scene(text: str):
    from textseld.data.synthesis.scene import SceneConfig

    try:
        return SceneConfig.from_dict(json.loads(text))
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise argparse.ArgumentTypeError(f"--scene: {exc}") from None


def _run(args) -> int:
    from textseld.data.synthesis import synthesize_dataset

    summary = synthesize_dataset(
        out=args.out,
        train_clips=args.train_clips,
        test_clips=args.test_clips,
        seed=args.seed,
        workers=args.workers,
        progress=not args.no_progress,
        speech_backend=args.speech,
        scene=args.scene,
    )
    print(json.dumps({k: summary[k] for k in ("root", "seconds", "seconds_per_clip", "speech_backend")}))
    for split, info in summary["splits"].items():
        print(
            f"{split}: {info['clips']} clips, {info['events']} events, "
            f"silent frames {info['silent_frame_fraction']:.1%}, max polyphony {info['max_polyphony']}"
        )
    return 0
