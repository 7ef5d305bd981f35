"""CUDA feature-extraction throughput over many clips, with agreement checks (one device run).

Steps, in order (each later step is skipped once the elapsed time passes --budget-s):
1. environment: torch, CUDA device, driver, compute capability, CPU cores;
2. clips: N distinct stereo clips rendered in memory by the real synthetic-data generator
   (`textseld synthesize-dataset`'s scenes, rooms and 16-bit quantisation, formant speech; clip i is
   fold3 clip i of dev-train-synth for --seed), in a pool of spawned processes;
3. agreement: `compute_features` on the device for a batch of 4 clips vs the CPU path one
   clip at a time (max |difference| per feature key; dB keys limit 1e-3 dB, ivy 1e-5), and
   WPE on the device vs `nara_wpe.wpe.wpe` (float64) on the same STFT of w for 2 clips
   (relative output-power error, limit 1e-4) - the STFT is the extractor's own
   (`spectral.stft` of each channel, mid = (L + R) / 2 of the two STFTs, as extract.py);
4. the CPU path on this machine (all cores, torch.set_num_threads) over --cpu-clips clips:
   the same-machine baseline (before the device variants: short, and the ratio needs it);
5. throughput: `compute_features(..., device)` over all N clips per batch size, after one
   warm-up batch of that size, timed from host arrays to CPU float32 outputs (the function
   returns CPU tensors; `torch.cuda.synchronize()` before each clock read); peak GPU memory;
   a variant stops early (flagged partial) after --variant-cap-s; the device/CPU ratio;
6. extras: host->device copy+cast orders, WPE alone per clips_per_chunk, and `textseld synthesize-dataset`
   + `textseld extract-features --device cuda` end to end on --e2e-clips clips.

Writes OUT/bench_features_cuda.json (all numbers) and OUT/bench_features_cuda.log; the
summary table is printed last. Exit status: 1 when an agreement check is out of tolerance
or a variant failed, 3 when --require-cuda and CUDA is unavailable (both after writing the
results), else 0.

Without CUDA it says so and runs the same steps on the CPU with at most --cpu-only-clips
clips (to test the script here; with --require-cuda it then exits 3). Neither this script
nor the feature code imports librosa (not installed on the lent GPU machines).

    PYTHONPATH=src python3 benchmarks/bench_features_cuda.py --clips 1000 --out OUT [--require-cuda]
    PYTHONPATH=src .venv/bin/python benchmarks/bench_features_cuda.py --device cpu --clips 8 --out /tmp/b
"""

# Spawned clip workers re-import this module as __mp_main__: its top level stays light
# (stdlib + numpy); torch and the feature code are imported inside functions.
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import inspect
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DB_KEYS = ("logmel_lr", "ild", "direct", "reverb", "src", "doa", "dist")  # doa holds ivy too: ivy has its own limit
KEPT = ("src", "doa", "dist")  # the features that are packed (tokenizer inputs)
TOL_DB = 1e-3
TOL_IVY = 1e-5
TOL_WPE = 1e-4


# ----------------------------------------------------------------------------- output


class Report:
    """Prints (flushed) and keeps a log file; collects the JSON results."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.t0 = time.perf_counter()
        self.log = open(out / "bench_features_cuda.log", "w", buffering=1)
        self.results: dict = {"skipped": [], "errors": [], "checks": {}}

    def say(self, msg: str = "") -> None:
        line = f"[{self.elapsed():6.1f}s] {msg}" if msg else ""
        print(line, flush=True)
        self.log.write(line + "\n")

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def write_json(self) -> Path:
        path = self.out / "bench_features_cuda.json"
        self.results["elapsed_s"] = round(self.elapsed(), 2)
        path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")
        return path


# ----------------------------------------------------------------------------- clips


def synth_pcm(index: int, seed: int) -> np.ndarray:
    """Audio of clip `index` of dev-train-synth for `seed`, exactly as `textseld synthesize-dataset
    --speech formant` writes it (labels are not needed and draw no random numbers). (N, 2) int16."""
    from textseld.data.synthesis.generator import SPLITS, clip_rng, render_scene, to_stereo_pcm
    from textseld.data.synthesis.scene import dry_signals, sample_scene

    rng = clip_rng(seed, SPLITS[0][2], index)
    scene = sample_scene(rng)
    dry = dry_signals(scene, rng, "formant", None)
    events, bg = render_scene(scene, dry, rng)
    return to_stereo_pcm(events + bg)


def make_clips(n: int, seed: int, workers: int, rep: Report, time_cap_s: float) -> np.ndarray:
    """(m, 2, N) float32 clips = int16 / 32768 (what load_audio returns for the WAV); m = n
    unless rendering passes time_cap_s, then the clips made by then (reported)."""
    from concurrent.futures import ThreadPoolExecutor

    from textseld.constants import CLIP_SAMPLES, N_CHANNELS

    clips = np.empty((n, N_CHANNELS, CLIP_SAMPLES), dtype=np.float32)
    # one BLAS / OpenMP thread per worker process (else 16 processes x 16 threads); set only
    # while the workers start (spawned children read the environment at start)
    single = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    saved = {k: os.environ.get(k) for k in single}
    os.environ.update(single)
    try:
        # spawn, not fork: this process has CUDA and torch thread pools running
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap(functools.partial(synth_pcm, seed=seed), range(n), chunksize=4)
    except OSError as exc:  # e.g. no usable /dev/shm for the pool's semaphores in a container
        rep.say(f"  !! process pool unavailable ({exc}): rendering in {workers} threads instead (slower)")
        pool = ThreadPoolExecutor(workers)
        results = pool.map(functools.partial(synth_pcm, seed=seed), range(n))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    t0 = time.perf_counter()
    made = 0
    with pool:  # leaving it terminates the process pool (a thread pool finishes its queue)
        step = max(1, n // 10)
        for i, pcm in enumerate(results):
            clips[i] = pcm.T.astype(np.float32) / 32768.0
            made = i + 1
            if made % step == 0 or made == n:
                rep.say(f"  clips {made}/{n}")
            if time.perf_counter() - t0 > time_cap_s and made < n:
                rep.say(f"  !! clip rendering passed {time_cap_s:.0f} s: going on with {made} clips")
                if isinstance(pool, ThreadPoolExecutor):
                    pool.shutdown(wait=False, cancel_futures=True)
                break
    return clips[:made]


# ----------------------------------------------------------------------------- measurements


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def environment(device_requested: str, rep: Report) -> dict:
    import torch

    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": np.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "device_requested": device_requested,
    }
    if env["cuda_available"]:
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name,
            capability=f"{props.major}.{props.minor}",
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            sm_count=props.multi_processor_count,
        )
    if shutil.which("nvidia-smi"):
        try:
            env["nvidia_smi"] = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                    "--format=csv,noheader",
                ],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            env["nvidia_smi"] = f"failed: {exc}"
    # which version of the feature code was measured (the tree is copied without .git)
    env["feature_sources_sha256"] = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted((REPO / "src/textseld/features").glob("*.py"))
    }
    for k, v in env.items():
        rep.say(f"  {k}: {v}")
    return env


def max_diffs(a: dict, b: dict) -> dict:
    """Max |a[k] - b[k]| per key (tensors of equal shapes)."""
    return {k: float((a[k].double() - b[k].double()).abs().max()) for k in a}


def check_features(clips: np.ndarray, device: str, rep: Report) -> dict:
    """Device batch of len(clips) vs CPU one clip at a time."""
    import torch

    from textseld.features.extract import compute_features

    got = compute_features(torch.from_numpy(clips), device=device)
    refs = [compute_features(torch.from_numpy(c[None]), device="cpu") for c in clips]
    ref = {k: torch.cat([r[k] for r in refs]) for k in got}
    diffs = max_diffs(got, ref)
    ok = diffs["ivy"] <= TOL_IVY and all(diffs[k] <= TOL_DB for k in DB_KEYS)
    for k, v in diffs.items():
        rep.say(
            f"  {k:9s} max |{device} batch of {len(clips)} - cpu per clip| = {v:.2e}"
            f"{' (ivy, limit 1e-5)' if k == 'ivy' else ' dB (limit 1e-3)'}"
        )
    finite = all(bool(torch.isfinite(v).all()) for v in got.values())
    return {"clips": len(clips), "max_abs_diff": diffs, "finite": finite, "ok": bool(ok and finite)}


def blas_threads(n: int):
    """Limit numpy's BLAS to n threads (threadpoolctl, if installed): nara_wpe's many small
    products gain nothing from threads, and idle-spinning BLAS threads on a busy machine made
    it 10x slower here."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n)


def check_wpe(clips: np.ndarray, device: str, rep: Report) -> dict:
    """Our WPE (device and CPU) vs nara_wpe.wpe.wpe on the extractor's STFT of w, per clip."""
    import torch
    from nara_wpe.wpe import wpe as nara_wpe

    from textseld.constants import WPE_DELAY, WPE_ITERATIONS, WPE_TAPS
    from textseld.features import spectral
    from textseld.features import wpe as ours
    from textseld.features.extract import peak_normalise

    x = peak_normalise(torch.from_numpy(clips).double())
    spec_lr = spectral.stft(x)
    spec_w = 0.5 * (spec_lr[:, 0] + spec_lr[:, 1])  # as compute_features: STFT of (l + r) / 2
    got = {device: ours.wpe(spec_w.to(device)).cpu().numpy()}
    if device != "cpu":
        got["cpu"] = ours.wpe(spec_w).numpy()
    errors: dict[str, list[float]] = {k: [] for k in got}
    for b in range(len(clips)):
        with blas_threads(1):
            ref = nara_wpe(spec_w[b].numpy()[:, None, :], taps=WPE_TAPS, delay=WPE_DELAY, iterations=WPE_ITERATIONS)[
                :, 0
            ]
        q = np.abs(ref) ** 2
        for k, out in got.items():
            errors[k].append(float(np.abs(np.abs(out[b]) ** 2 - q).sum() / q.sum()))
    for k, errs in errors.items():
        rep.say(
            f"  WPE on {k} vs nara_wpe: relative output-power error per clip "
            f"{', '.join(f'{e:.1e}' for e in errs)} (limit 1e-4)"
        )
    worst = max(errors[device])
    return {"clips": len(clips), "rel_power_error": errors, "worst_device": worst, "ok": worst < TOL_WPE}


def throughput(
    clips: np.ndarray, device: str, batch_size: int, rep: Report, deadline: float, keep: dict | None
) -> dict:
    """Time compute_features over `clips` in batches (after a warm-up batch). Stops after the
    batch that passes `deadline` (perf_counter time), reporting the clips actually timed.
    keep: None, or a dict that receives the first variant's src/doa/dist (to compare variants)."""
    import torch

    from textseld.features.extract import compute_features

    on_cuda = device.startswith("cuda")
    n = len(clips)
    if on_cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    compute_features(torch.from_numpy(clips[:batch_size]), device=device)  # cuFFT plans, solver handles, allocator
    sync(device)
    warm_s = time.perf_counter() - t
    rep.say(f"  warm-up batch of {min(batch_size, n)}: {warm_s:.2f} s")
    batch_s, done, finite = [], 0, True
    ref = dict(keep) if keep else None  # an earlier variant's outputs: compare with them
    collect = {k: [] for k in KEPT} if keep is not None and not keep else None  # first variant: keep its outputs
    diffs, compared = {k: 0.0 for k in KEPT}, 0
    step = max(1, (n // batch_size) // 5)
    for i, start in enumerate(range(0, n, batch_size)):
        tb = time.perf_counter()
        out = compute_features(torch.from_numpy(clips[start : start + batch_size]), device=device)
        sync(device)
        batch_s.append(time.perf_counter() - tb)
        done = min(n, start + batch_size)
        finite &= all(bool(torch.isfinite(out[k]).all()) for k in KEPT)
        if ref is not None and done <= len(ref[KEPT[0]]):
            compared = done
            for k in KEPT:
                diffs[k] = max(diffs[k], float((out[k] - ref[k][start:done]).abs().max()))
        if collect is not None:
            for k in KEPT:
                collect[k].append(out[k])
        if (i + 1) % step == 0 or done == n:
            rep.say(f"  batch {batch_size}: {done}/{n} clips, {done / sum(batch_s):.2f} clips/s so far")
        if time.perf_counter() > deadline and done < n:
            rep.say(f"  time limit reached (--variant-cap-s or --budget-s): stopped after {done} of {n} clips")
            break
    total = sum(batch_s)  # the calls only, not the checks on their outputs between them
    if collect is not None:
        keep.update({k: torch.cat(v) for k, v in collect.items()})
    res = {
        "device": device,
        "batch_size": batch_size,
        "clips": done,
        "complete": done == n,
        "seconds": round(total, 3),
        "clips_per_s": round(done / total, 3),
        "ms_per_clip": round(1e3 * total / done, 3),
        "warmup_s": round(warm_s, 3),
        "batch_s_median": round(float(np.median(batch_s)), 4),
        "batch_s_min": round(float(np.min(batch_s)), 4),
        "batch_s_max": round(float(np.max(batch_s)), 4),
        "outputs_finite": finite,
    }
    if compared:
        res["max_abs_diff_vs_first_variant"] = diffs  # same clips, other batch composition (dB)
        res["clips_compared_with_first_variant"] = compared
        rep.say(f"  max |difference| vs the first variant's outputs ({compared} clips): {diffs}")
    if on_cuda:
        res["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        res["peak_gpu_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    rep.say(
        f"  => batch {batch_size} on {device}: {res['clips_per_s']:.2f} clips/s, {res['ms_per_clip']:.1f} ms/clip"
        + (f", peak GPU memory {res['peak_gpu_memory_gib']} GiB" if on_cuda else "")
    )
    return res


def h2d_orders(clips: np.ndarray, device: str, rep: Report) -> dict:
    """Host->device copy of a float32 batch: cast to float64 on the host then copy (what
    `x.to(device=..., dtype=float64)` does) vs copy float32 then cast on the device."""
    import torch

    x = torch.from_numpy(clips)
    res = {}
    for name, fn in (
        ("to(device, float64)", lambda: x.to(device=device, dtype=torch.float64)),
        ("to(device).double()", lambda: x.to(device).double()),
    ):
        fn()
        sync(device)
        t = time.perf_counter()
        for _ in range(3):
            fn()
        sync(device)
        res[name] = round((time.perf_counter() - t) / 3 * 1e3 / len(clips), 4)
        rep.say(f"  {name}: {res[name]:.3f} ms/clip (batch {len(clips)})")
    return {"batch": len(clips), "ms_per_clip": res}


def wpe_chunks(clips: np.ndarray, device: str, chunk_sizes: list[int], rep: Report, deadline: float) -> dict:
    """WPE alone on the extractor's STFT of w for these clips, per clips_per_chunk (if wpe() has it)."""
    import torch

    from textseld.features import spectral
    from textseld.features import wpe as ours
    from textseld.features.extract import peak_normalise

    if "clips_per_chunk" not in inspect.signature(ours.wpe).parameters:
        rep.say("  wpe() has no clips_per_chunk parameter: timing its default only")
        chunk_sizes = [None]
    x = peak_normalise(torch.from_numpy(clips).to(device).double())
    spec_lr = spectral.stft(x)
    spec_w = 0.5 * (spec_lr[:, 0] + spec_lr[:, 1])
    res = {}
    for cpc in chunk_sizes:
        if time.perf_counter() > deadline:
            rep.say(f"  time budget reached: skipped clips_per_chunk={cpc}")
            break
        kw = {} if cpc is None else {"clips_per_chunk": cpc}
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        ours.wpe(spec_w[: (cpc or 8)], **kw)  # warm-up
        sync(device)
        t = time.perf_counter()
        ours.wpe(spec_w, **kw)
        sync(device)
        dt = time.perf_counter() - t
        entry = {"ms_per_clip": round(1e3 * dt / len(clips), 3)}
        if device.startswith("cuda"):
            entry["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        res[str(cpc if cpc is not None else "default")] = entry
        rep.say(f"  WPE alone, {len(clips)} clips, clips_per_chunk={cpc or 'default'}: {entry}")
    return {"clips": len(clips), "by_clips_per_chunk": res}


def end_to_end(n: int, device: str, workers: int, work: Path, rep: Report) -> dict:
    """`textseld synthesize-dataset` (a subprocess: this process has CUDA running) then `textseld extract-features`
    in this process, timed, and the packed file checked."""
    import h5py

    from textseld.cli import main as cli

    root = work / "data"
    t = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "textseld",
            "synthesize-dataset",
            "--out",
            str(root),
            "--train-clips",
            str(n),
            "--test-clips",
            "0",
            "--seed",
            "7",
            "--threads",
            str(workers),
            "--speech",
            "formant",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
    )
    synth_s = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"textseld synthesize-dataset failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rep.say(f"  textseld synthesize-dataset {n} clips ({workers} workers): {synth_s:.1f} s")
    out = work / "feat.h5"
    t = time.perf_counter()
    rc = cli(
        [
            "extract-features",
            "--data",
            str(root),
            "--split",
            "dev-train-synth",
            "--out",
            str(out),
            "--device",
            device,
            "--batch-size",
            str(min(n, 64)),
        ]
    )
    feat_s = time.perf_counter() - t
    if rc != 0:
        raise RuntimeError(f"textseld extract-features exited with {rc}")
    with h5py.File(out, "r") as f:
        packed = len(f["names"])
        finite = all(bool(np.isfinite(f[k][...]).all()) for k in ("src", "doa", "dist"))
    rep.say(
        f"  textseld extract-features --device {device}: {feat_s:.1f} s for {packed} clips "
        f"({packed / feat_s:.1f} clips/s incl. WAV reading, targets, HDF5 writing and start-up)"
    )
    return {
        "clips": packed,
        "synth_s": round(synth_s, 2),
        "features_s": round(feat_s, 2),
        "features_clips_per_s": round(packed / feat_s, 2),
        "finite": finite,
        "ok": packed == n and finite,
    }


# ----------------------------------------------------------------------------- main


def summary_lines(r: dict) -> list[str]:
    env = r.get("environment", {})
    lines = [
        f"device {r.get('device')}: {env.get('gpu', 'no GPU')} (capability {env.get('capability', '-')}), "
        f"torch {env.get('torch')}, CUDA {env.get('torch_cuda')}, {env.get('cpu_count')} CPU cores; "
        f"{r.get('clips_made', 0)} clips",
        "| what | clips | clips/s | ms/clip | peak GPU GiB |",
        "|---|---|---|---|---|",
    ]
    for t in r.get("throughput", []):
        lines.append(
            f"| {t['device']} batch {t['batch_size']}{'' if t['complete'] else ' (partial)'} | {t['clips']} | "
            f"{t['clips_per_s']:.2f} | {t['ms_per_clip']:.2f} | {t.get('peak_gpu_memory_gib', '-')} |"
        )
    c = r.get("cpu_baseline")
    if c:
        lines.append(
            f"| cpu {c['threads']} threads, batch {c['batch_size']} | {c['clips']} | {c['clips_per_s']:.2f} | "
            f"{c['ms_per_clip']:.2f} | - |"
        )
    if r.get("speedup_vs_cpu"):
        lines.append(
            f"| best {r['device']} / cpu ({r['speedup_vs_cpu']['best_batch']}) | | "
            f"**{r['speedup_vs_cpu']['ratio']:.2f}x** | | |"
        )
    chk = r["checks"]
    if "features" in chk:
        d = chk["features"]["max_abs_diff"]
        lines.append(
            f"features {r['device']} vs cpu ({chk['features']['clips']} clips): max "
            f"{max(d[k] for k in DB_KEYS):.1e} dB (limit 1e-3), ivy {d['ivy']:.1e} (limit 1e-5): "
            f"{'OK' if chk['features']['ok'] else 'FAIL'}"
        )
    if "wpe" in chk:
        lines.append(
            f"WPE {r['device']} vs nara_wpe ({chk['wpe']['clips']} clips): {chk['wpe']['worst_device']:.1e} "
            f"relative output power (limit 1e-4): {'OK' if chk['wpe']['ok'] else 'FAIL'}"
        )
    if "batch_consistency" in chk:
        bc = chk["batch_consistency"]
        lines.append(
            f"same clips, other batch sizes on {r['device']}: max {bc['max_abs_diff_dB']:.1e} dB "
            f"(limit 1e-3): {'OK' if bc['ok'] else 'FAIL'}"
        )
    if "e2e" in chk:
        e = chk["e2e"]
        lines.append(
            f"CLI synth + features ({e['clips']} clips): synth {e['synth_s']} s, "
            f"features {e['features_s']} s: "
            f"{'OK' if e['ok'] else 'FAIL'}"
        )
    for s in r["skipped"]:
        lines.append(f"skipped: {s}")
    for e in r["errors"]:
        lines.append(f"ERROR: {e}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000, help="distinct clips to time (default 1000)")
    parser.add_argument("--out", required=True, help="folder for the JSON and the log")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--batch-sizes", default="16,64", help="comma-separated batch sizes to time (default 16,64)")
    parser.add_argument("--cpu-clips", type=int, default=32, help="clips for the same-machine CPU baseline")
    parser.add_argument("--cpu-batch-size", type=int, default=16)
    parser.add_argument("--cpu-threads", type=int, default=0, help="torch threads for the CPU path (0 = all cores)")
    parser.add_argument("--check-clips", type=int, default=4, help="clips for the device-vs-cpu feature check")
    parser.add_argument("--wpe-check-clips", type=int, default=2, help="clips for the WPE-vs-nara_wpe check")
    parser.add_argument(
        "--wpe-chunks", default="8,32,64", help="clips_per_chunk values for the WPE-alone timing ('' = skip)"
    )
    parser.add_argument("--e2e-clips", type=int, default=64, help="clips for the CLI synth+features check (0 = skip)")
    parser.add_argument("--workers", type=int, default=0, help="clip-rendering processes (0 = all cores)")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument(
        "--clip-time-cap-s",
        type=float,
        default=90.0,
        help="stop rendering clips after this many seconds and go on with those made",
    )
    parser.add_argument("--budget-s", type=float, default=240.0, help="skip remaining steps after this many seconds")
    parser.add_argument(
        "--variant-cap-s",
        type=float,
        default=90.0,
        help="a throughput variant stops (partial, flagged) after this many seconds",
    )
    parser.add_argument("--require-cuda", action="store_true", help="exit 3 (after writing results) without CUDA")
    parser.add_argument("--cpu-only-clips", type=int, default=8, help="clip cap when CUDA is unavailable")
    args = parser.parse_args()
    rep = Report(Path(args.out))
    try:
        return run(args, rep)
    except Exception:  # e.g. a missing package: still leave the JSON and the log behind
        rep.results["errors"].append(f"crashed: {traceback.format_exc(limit=3)}")
        rep.results["result"] = "FAIL"
        rep.say(f"CRASHED:\n{traceback.format_exc()}")
        rep.write_json()
        rep.say("RESULT: FAIL (crashed, see above)")
        return 1


def run(args: argparse.Namespace, rep: Report) -> int:
    """All steps (see the module docstring); returns the exit status."""
    r = rep.results
    r["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    rep.say(f"command: {r['command']}")
    deadline = time.perf_counter() + args.budget_s
    status = 0

    def device_rate() -> float | None:
        """Best clips/s measured on the device so far (None before the first variant)."""
        return max((t["clips_per_s"] for t in r.get("throughput", [])), default=None)

    def over(step: str, clips_needed: int = 0) -> bool:
        """True (and recorded) when the budget is spent, or when `clips_needed` clips at the
        measured device rate would not fit in what is left of it."""
        left = deadline - time.perf_counter()
        rate = device_rate()
        need = clips_needed / rate if rate and clips_needed else 0.0
        if left <= need:
            why = (
                f"time budget {args.budget_s:.0f} s reached"
                if left <= 0
                else f"~{need:.0f} s for {clips_needed} clips at {rate:.1f} clips/s > the {left:.0f} s left"
            )
            r["skipped"].append(f"{step} ({why})")
            rep.say(f"SKIPPED {step}: {why}")
            return True
        return False

    def attempt(step: str, fn):
        try:
            return fn()
        except Exception as exc:  # record and go on: one failed variant must not lose the others
            r["errors"].append(f"{step}: {type(exc).__name__}: {exc}")
            rep.say(f"ERROR in {step}:\n{traceback.format_exc()}")
            return None

    rep.say("== environment")
    import torch

    env = r["environment"] = environment(args.device, rep)
    device, n = args.device, args.clips
    if device.startswith("cuda") and not env["cuda_available"]:
        rep.say(
            "!! CUDA is NOT available here: running the CPU-only parts with "
            f"{min(n, args.cpu_only_clips)} clips (no CUDA numbers)"
        )
        device, n = "cpu", min(n, args.cpu_only_clips)
        r["cuda_unavailable"] = True
        if args.require_cuda:
            status = 3
    r["device"] = device
    cpu_threads = args.cpu_threads or os.cpu_count() or 1
    torch.set_num_threads(cpu_threads)  # the CPU path in the checks and the baseline uses all cores
    import textseld.features.extract  # noqa: F401  (import errors show here, before the clips)

    rep.say(f"== {n} clips (real synthetic generator, {args.workers or os.cpu_count()} processes)")
    t = time.perf_counter()
    clips = make_clips(n, args.seed, args.workers or os.cpu_count() or 1, rep, args.clip_time_cap_s)
    n = r["clips_made"] = len(clips)
    r["clip_generation_s"] = round(time.perf_counter() - t, 2)
    rep.say(f"  {n} clips in {r['clip_generation_s']} s")

    rep.say(f"== agreement: features on {device} vs cpu")
    chk = attempt("feature check", lambda: check_features(clips[: args.check_clips], device, rep))
    if chk:
        r["checks"]["features"] = chk
    rep.say(f"== agreement: WPE on {device} vs nara_wpe (float64)")
    chk = attempt("WPE check", lambda: check_wpe(clips[: args.wpe_check_clips], device, rep))
    if chk:
        r["checks"]["wpe"] = chk
    rep.write_json()

    if not over("CPU baseline"):
        m = min(args.cpu_clips, n)
        rep.say(f"== CPU baseline: {cpu_threads} threads, batch {args.cpu_batch_size}, {m} clips")
        res = attempt("CPU baseline", lambda: throughput(clips[:m], "cpu", args.cpu_batch_size, rep, deadline, None))
        if res:
            res["threads"] = cpu_threads
            r["cpu_baseline"] = res
    r["throughput"] = []
    keep: dict = {}
    for bs in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
        if over(f"throughput batch {bs}", 2 * bs):  # its warm-up batch and one timed batch
            continue
        rep.say(f"== throughput: compute_features on {device}, batch {bs}, {n} clips")
        # each variant stops after --variant-cap-s: a slow first variant must not starve the others
        cap = min(deadline, time.perf_counter() + args.variant_cap_s)
        res = attempt(f"throughput batch {bs}", lambda bs=bs, cap=cap: throughput(clips, device, bs, rep, cap, keep))
        if res:
            r["throughput"].append(res)
        rep.write_json()

    consistency = [t["max_abs_diff_vs_first_variant"] for t in r["throughput"] if "max_abs_diff_vs_first_variant" in t]
    if consistency:  # the same clips in other batches must give the same features
        worst = max(max(d.values()) for d in consistency)
        r["checks"]["batch_consistency"] = {"max_abs_diff_dB": worst, "ok": worst <= TOL_DB}
    if r.get("cpu_baseline") and r["throughput"]:
        best = max(r["throughput"], key=lambda x: x["clips_per_s"])
        r["speedup_vs_cpu"] = {
            "best_batch": f"batch {best['batch_size']}",
            "ratio": round(best["clips_per_s"] / r["cpu_baseline"]["clips_per_s"], 2),
        }
        rep.say(f"  {device} / cpu: {r['speedup_vs_cpu']['ratio']:.2f}x")
    rep.write_json()

    if device.startswith("cuda") and not over("host->device copy orders"):
        rep.say("== host->device copy + cast of one batch")
        r["h2d"] = attempt("h2d", lambda: h2d_orders(clips[:64], device, rep))
    chunks = [int(c) for c in args.wpe_chunks.split(",") if c.strip()]
    if chunks and not over("WPE chunk timing", 2 * min(n, 64)):
        m = min(n, 64)
        rep.say(f"== WPE alone on {device}, {m} clips")
        r["wpe_alone"] = attempt("WPE chunk timing", lambda: wpe_chunks(clips[:m], device, chunks, rep, deadline))
    rep.write_json()

    if args.e2e_clips > 0 and not over("CLI end to end", 2 * args.e2e_clips):
        cli_steps = f"textseld synthesize-dataset + textseld extract-features --device {device}"
        rep.say(f"== CLI: {cli_steps}, {args.e2e_clips} clips")
        with tempfile.TemporaryDirectory(prefix="textseld_e2e_") as work:
            res = attempt(
                "CLI end to end",
                lambda: end_to_end(args.e2e_clips, device, args.workers or os.cpu_count() or 1, Path(work), rep),
            )
        if res:
            r["checks"]["e2e"] = res

    # what this process imported outside the standard library (the GPU machine lacks some packages)
    r["third_party_modules"] = sorted(
        {m.split(".")[0] for m in sys.modules if not m.startswith("_")} - set(sys.stdlib_module_names)
    )
    failed = [k for k, v in r["checks"].items() if not v.get("ok")]
    bad_out = [f"batch {t['batch_size']}" for t in r["throughput"] if not t["outputs_finite"]]
    if failed or bad_out or r["errors"]:
        status = status or 1
    r["result"] = "PASS" if status == 0 else ("NO CUDA" if status == 3 else "FAIL")
    r["failed_checks"] = failed + [f"non-finite outputs: {b}" for b in bad_out]
    path = rep.write_json()
    rep.say(f"wrote {path} and {rep.log.name}")
    rep.say()
    rep.say("== summary")
    for line in summary_lines(r):
        rep.say(line)
    rep.say(f"RESULT: {r['result']}" + (f" ({', '.join(r['failed_checks'] + r['errors'])})" if status == 1 else ""))
    rep.log.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
