"""Finetuning step time: cached ground truth + padding to longest vs the naive path.

Same model (`small` RCC-BERT-GREP, BERT = the bundled MiniLM), same batch,
same run. (CLIP in the epoch timings: the ViT-B-16 text tower, random init
when no weights file is configured: same cost as the real weights.) Both
paths run the full training step (tokenizer, frozen text encoder with
injected tokens, head, MAE + ADPIT, backward, Adam step); they
differ only in how text is handled:

- real:  GroundTruthCache (no_grad, de-duplicated, kept across steps),
         sequences padded to the longest in the batch;
- naive: ground-truth sentences embedded anew every step (still no_grad),
         every sequence (templates and sentences) padded to 77 tokens, as
         the published code does.

Then the wall time of one small finetuning epoch on ~200 clips (25 steps of
8) with all frames and with `text_frames_per_clip`, and of pretraining /
baseline steps, to estimate the default grid (2 pretrainings, 8 finetunings,
1 baseline) on this machine.

    .venv/bin/python benchmarks/bench_finetune_step.py [--steps 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from textseld.constants import N_CLASSES, N_FEAT_FRAMES, N_LABEL_FRAMES, N_MELS
from textseld.data.targets import build_targets

PAD_TO = 77


def synthetic_labels(n: int, seed: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """Clips with 0-3 events of 1-4 s each (like the synthetic dataset)."""
    rng = np.random.default_rng(seed)
    names, rows = [], []
    for i in range(n):
        names.append(f"fold3_room{1 + i % 4}_mix{i // 4 + 1:03d}_deg000_start{i:04d}")
        r = []
        for src in range(int(rng.integers(0, 4))):
            cls, az, dist = int(rng.integers(N_CLASSES)), int(rng.integers(-90, 91)), int(rng.integers(50, 500))
            start = int(rng.integers(0, 40))
            r += [[f, cls, src, az, dist, 0] for f in range(start, min(start + int(rng.integers(10, 40)), 50))]
        rows.append(np.asarray(sorted(r), dtype=np.float64).reshape(-1, 6))
    return names, rows


def make_store(folder: Path, names, rows):
    from textseld.text.store import TextStore, build_text_store

    packed = folder / "labels.h5"
    with h5py.File(packed, "w") as f:
        f.create_dataset("names", data=np.array(names, dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset("label_rows", data=np.concatenate(rows).reshape(-1, 6))
        f.create_dataset("label_offsets", data=np.concatenate([[0], np.cumsum([len(r) for r in rows])]))
    return TextStore(build_text_store(packed, folder / "texts.h5"))


def make_batch(indices, rows, names, seed=0):
    g = torch.Generator().manual_seed(seed)
    b = len(indices)
    return {
        "src": torch.randn(b, 1, N_FEAT_FRAMES, N_MELS, generator=g),
        "doa": torch.randn(b, 4, N_FEAT_FRAMES, N_MELS, generator=g),
        "dist": torch.randn(b, 2, N_FEAT_FRAMES, N_MELS, generator=g),
        "target": torch.from_numpy(np.stack([build_targets(rows[i]) for i in indices])),
        "index": torch.tensor(indices),
        "name": [names[i] for i in indices],
    }


def pad_templates_to(encoder, length: int) -> None:
    """Make encode_with_tokens pad every template to `length` tokens (naive path)."""
    table = encoder._tpl_ids
    padded = torch.full((table.shape[0], length), encoder.pad_id, dtype=table.dtype, device=table.device)
    padded[:, : table.shape[1]] = table
    encoder._tpl_ids = padded
    encoder._template_lengths = [length] * table.shape[0]


def naive_gt(encoder):
    """Embed sentences anew each call, every sequence padded to PAD_TO tokens."""

    def embed(sentences):
        with torch.no_grad():
            seqs = [encoder._encode_ids(s) for s in sentences]
            ids = torch.full((len(seqs), PAD_TO), encoder.pad_id, dtype=torch.long)
            for i, q in enumerate(seqs):
                ids[i, : len(q)] = torch.tensor(q)
            a, _ = encoder._run(encoder._embed_ids(ids), torch.tensor([len(q) for q in seqs]))
            return a

    return embed


def build(text_cfg, size="small", source="rcc", text="bert"):
    from textseld.models.config import ModelConfig
    from textseld.models.factory import build_model, build_text_encoder

    torch.manual_seed(0)
    enc = build_text_encoder(text, text_cfg)
    enc.lock()
    model = build_model(source, text, "grep", ModelConfig.from_size(size, token_width=enc.width), text_encoder=enc)
    return model, enc


def time_steps(task, optimizer, batches, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    task.model.train()
    times = []
    for i in range(steps):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        losses = task.losses(batch, gen)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4, help="timed steps per path (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--frames", type=int, default=10, help="text_frames_per_clip for the subsampled epoch")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("command:", "python " + " ".join([sys.argv[0]] + (argv or sys.argv[1:])))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")

    from textseld.models.text_config import TextEncoderConfig
    from textseld.models.text_encoders import GroundTruthCache
    from textseld.recipes import train_section
    from textseld.text.templates import TEMPLATES
    from textseld.train.config import TrainConfig
    from textseld.train.runs import make_optimizer
    from textseld.train.tasks import TextTask

    names, rows = synthetic_labels(args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp), names, rows)
        batches = [make_batch(list(range(8 * k, 8 * k + 8)), rows, names, seed=k) for k in range(args.clips // 8)]
        cfg = TrainConfig.from_dict(train_section("paper", "finetune"))

        # Steps of the compared paths are interleaved (A, B, A, B, ...) so that
        # load from other processes on this shared machine hits both alike.
        def setup(path, frames=None, source="rcc", text="bert"):
            model, enc = build(TextEncoderConfig(), source=source, text=text)
            cache = None
            if path == "naive":
                pad_templates_to(enc, PAD_TO)
                gt = naive_gt(enc)
            else:
                cache = GroundTruthCache(enc)
                gt = cache.embed
            task = TextTask(
                model, store.sentence, gt, len(TEMPLATES), cfg.mae_weight, cfg.adpit_weight, frames_per_clip=frames
            )
            opt = make_optimizer(model, cfg, "finetune")
            return {"task": task, "opt": opt, "cache": cache, "gen": torch.Generator().manual_seed(1), "t": []}

        def interleave(runs, steps):
            for r in runs.values():  # warm-up
                time_steps(r["task"], r["opt"], batches[:1], 1)
            for i in range(steps):
                for r in runs.values():
                    batch = batches[1 + i % (len(batches) - 1)]
                    t0 = time.perf_counter()
                    losses = r["task"].losses(batch, r["gen"])
                    r["opt"].zero_grad(set_to_none=True)
                    losses["loss"].backward()
                    r["opt"].step()
                    r["t"].append(time.perf_counter() - t0)
            return {k: float(np.median(r["t"])) for k, r in runs.items()}

        # ---- real vs naive, same batches, same run
        runs = {"real": setup("real"), "naive": setup("naive")}
        med = interleave(runs, args.steps)
        cache = runs["real"]["cache"]
        for path in ("real", "naive"):
            extra = (
                f", GT sentences served without encoding {cache.hits / max(cache.hits + cache.misses, 1):.2f}"
                if path == "real"
                else ""
            )
            print(
                f"{path:5s}: median step {med[path]:.3f} s over {args.steps} steps "
                f"(batch 8 x {N_LABEL_FRAMES} frames){extra}"
            )
        print(f"speed-up real vs naive: {med['naive'] / med['real']:.2f}x")
        del runs

        # ---- one epoch of ~200 clips, real path, all frames vs subsampled frames
        n_steps = len(batches)
        runs = {
            ("rcc", "bert", None): setup("real"),
            ("rcc", "bert", args.frames): setup("real", args.frames),
            ("beats", "bert", args.frames): setup("real", args.frames, "beats"),
            ("rcc", "clip", args.frames): setup("real", args.frames, "rcc", "clip"),
        }
        med = interleave(runs, args.steps)
        for (source, text, frames), per_step in med.items():
            print(
                f"finetune {source}-{text}-grep epoch ({args.clips} clips, {n_steps} steps), "
                f"text_frames_per_clip={frames}: "
                f"{per_step * n_steps:.1f} s ({per_step:.3f} s/step, median of {args.steps})"
            )
        del runs

        # ---- pretraining and baseline steps
        from textseld.models.config import ModelConfig
        from textseld.models.factory import build_baseline, build_model
        from textseld.train.tasks import AudioTask

        small = ModelConfig.from_size("small")
        for label, make in (
            ("pretrain rcc", lambda: build_model("rcc", None, "pretrain", small)),
            (f"pretrain beats ({small.beats_arch})", lambda: build_model("beats", None, "pretrain", small)),
            ("baseline", lambda: build_baseline(small)),
        ):
            torch.manual_seed(0)
            task = AudioTask(make())
            opt = torch.optim.Adam(task.model.parameters(), lr=1e-4)
            time_steps(task, opt, batches[:1], 1)
            t = float(np.median(time_steps(task, opt, batches, args.steps)))
            print(f"{label}: {t:.3f} s/step -> {t * n_steps:.1f} s per epoch of {args.clips} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
