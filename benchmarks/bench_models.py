"""Training-step cost of the models at a given size on CPU (forward + ADPIT + backward + Adam).

Usage: .venv/bin/python benchmarks/bench_models.py [--size small] [--batch 8] [--steps 3] [--threads 1]

Prints seconds per step for each model and the ratio to the DCASE baseline CRNN
measured in the same run (the text encoder is not included: it is a separate module).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from textseld.losses import adpit_loss
from textseld.models.config import ModelConfig
from textseld.models.factory import build_baseline, build_model


def step_time(model, batch, target, steps: int) -> float:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators
        t0 = time.perf_counter()
        out, _ = model(batch)
        loss = adpit_loss(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="small", choices=("tiny", "small", "paper"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig.from_size(args.size)
    b = args.batch
    batch = dict(src=torch.randn(b, 1, 251, 64), doa=torch.randn(b, 4, 251, 64), dist=torch.randn(b, 2, 251, 64))
    target = torch.zeros(b, 50, 6, 4, 13)
    target[:, :, 0, 0, 3] = 1.0
    target[:, :, 0, 1:, 3] = torch.tensor([0.6, 0.8, 2.0])
    print("command:", " ".join([sys.executable] + sys.argv))
    print(f"size={args.size} batch={b} threads={args.threads} steps={args.steps}")
    models = {
        "baseline": build_baseline(cfg),
        "pretrain-rcc": build_model("rcc", None, "pretrain", cfg),
        "pretrain-beats": build_model("beats", None, "pretrain", cfg),
    }
    ref = None
    for name, model in models.items():
        n = sum(p.numel() for p in model.parameters())
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        t = step_time(model, batch, target, args.steps)
        ref = ref or t
        print(
            f"{name:15s} params={n / 1e6:7.3f}M trainable={n_train / 1e6:7.3f}M "
            f"step={t:7.3f}s  ratio_to_baseline={t / ref:6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
