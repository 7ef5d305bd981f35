"""Clips per second of the batched torch extractor vs a per-clip librosa + nara_wpe reference.

Same clips, same run, same thread count; extractor and reference alternate over --repeats
rounds (the machine is shared and its speed drifts), and the median of the rounds' ratios is
reported; both are warmed up first (the reference's first call alone is ~30 % slower). The
reference is the plain per-clip computation
of docs/METHOD.md section 2 written in tests/test_features.py (float64, which our outputs match to
< 1e-3 dB); a float32 variant of the reference (librosa's default dtype for float32 audio,
nara_wpe in complex64) is timed too, as the cheapest per-clip baseline. numpy's BLAS gets the
same thread count as torch (threadpoolctl): unlimited OpenBLAS threads on a loaded 2-core
machine made the reference 10-30x slower and erratic. WPE agreement (relative error in output
power vs nara_wpe on the same STFT, tolerance 1e-4) is reported for the first clips.

    .venv/bin/python benchmarks/bench_features.py [--clips 8] [--batch-size 8] [--threads 2] [--repeats 3]
        [--device cpu] [--no-kernel] [--emulate-avx2]

--emulate-avx2 reproduces an AVX2-only CPU on an AVX-512 machine: torch's own kernels
(ATEN_CPU_CAPABILITY=avx2), MKL (MKL_ENABLE_INSTRUCTIONS=AVX2), oneDNN (ONEDNN_MAX_CPU_ISA=AVX2)
and the WPE kernel's build (-mno-avx512f) are limited to AVX2 (numpy's OpenBLAS in the reference
is not: OPENBLAS_CORETYPE=Haswell limits it too). The CPU model, its vector flags and the WPE
kernel's per-tiling measurement are printed with the results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_features_cuda import blas_threads
from test_features import reference_features, synth_clip
from textseld.features import wpe_kernel
from textseld.features.extract import compute_features
from textseld.features.wpe import _torch_reference, _torch_solve_reference, wpe

AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    wpe_kernel.CFLAGS_ENV: "-mno-avx512f",
}


def cpu_line() -> str:
    """The CPU model and its vector extensions (as /proc/cpuinfo names them)."""
    flags = set()
    for line in wpe_kernel._cpu_signature().splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    vector = sorted(f for f in flags if f.startswith(("avx", "fma", "sse4", "neon", "asimd", "sve")))
    return f"{wpe_kernel.cpu_model()}, {os.cpu_count()} CPUs, vector flags: {' '.join(vector)}"


def wpe_agreement(clips: np.ndarray, n: int = 2) -> float:
    """Worst relative output-power error of our WPE vs nara_wpe.wpe.wpe on the librosa STFT of w."""
    import librosa
    from nara_wpe.wpe import wpe as nara_wpe

    worst = 0.0
    for c in clips[:n].astype(np.float64):
        x = c / np.abs(c).max()
        sw = librosa.stft(
            (x[0] + x[1]) / 2,
            n_fft=1024,
            hop_length=480,
            win_length=960,
            window="hann",
            center=True,
            pad_mode="constant",
        )
        ref = nara_wpe(sw[:, None, :], taps=60, delay=5, iterations=5)[:, 0]
        got = wpe(torch.from_numpy(sw)[None])[0].numpy()
        p, q = np.abs(got) ** 2, np.abs(ref) ** 2
        worst = max(worst, float(np.abs(p - q).sum() / q.sum()))
    return worst


def float32_reference(clips: np.ndarray) -> None:
    """The reference's steps with librosa / nara_wpe in single precision (timed only)."""
    import librosa
    from nara_wpe.wpe import wpe as nara_wpe

    kw = dict(n_fft=1024, hop_length=480, win_length=960, window="hann", center=True, pad_mode="constant")
    fb = librosa.filters.mel(sr=24000, n_fft=1024, n_mels=64)
    for c in clips:
        x = c / np.abs(c).max()
        sl, sr = librosa.stft(x[0], **kw), librosa.stft(x[1], **kw)
        sw, sy = (sl + sr) / 2, (sl - sr) / 2
        mel = [fb @ np.abs(s) ** 2 for s in (sl, sr)]
        _ = fb @ (np.real(sy * np.conj(sw)) / (np.abs(sw) ** 2 + np.abs(sy) ** 2 + 1e-8))
        direct = nara_wpe(sw[:, None, :], taps=60, delay=5, iterations=5)[:, 0]
        w = (x[0] + x[1]) / 2
        resid = w - librosa.istft(direct, hop_length=480, win_length=960, n_fft=1024, length=len(w))
        _ = [
            10 * np.log10(np.maximum(m, 1e-10))
            for m in (*mel, fb @ np.abs(direct) ** 2, fb @ np.abs(librosa.stft(resid, **kw)) ** 2)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of extractor then reference")
    parser.add_argument("--skip-reference", action="store_true", help="time only the batched extractor")
    parser.add_argument("--no-kernel", action="store_true", help="WPE without the compiled kernel (torch product)")
    parser.add_argument("--emulate-avx2", action="store_true", help="limit torch, MKL and the WPE kernel to AVX2")
    args = parser.parse_args()
    if args.emulate_avx2 and os.environ.get(wpe_kernel.CFLAGS_ENV) != AVX2_ENV[wpe_kernel.CFLAGS_ENV]:
        # these are read when torch and MKL load: run again with them set
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ENV})
    print(
        f"CPU: {cpu_line()}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
        + (f"; emulating AVX2 ({' '.join(f'{k}={v}' for k, v in AVX2_ENV.items())})" if args.emulate_avx2 else "")
    )
    torch.set_num_threads(args.threads)
    print(f"command: python {' '.join(sys.argv)}  (torch threads {args.threads})")
    rng = np.random.default_rng(0)
    clips = np.stack([synth_clip(rng, *rng.uniform(0.2, 1.0, 2)) for _ in range(args.clips)])

    if args.no_kernel:
        os.environ[wpe_kernel.ENV_SWITCH] = "0"
    compute_features(torch.from_numpy(clips[:1]), device=args.device)  # warm-up (filterbank, allocator, kernel build)
    kernel = wpe_kernel.load(_torch_reference, _torch_solve_reference) if args.device == "cpu" else None
    if args.device == "cpu" and not args.no_kernel:
        found = wpe_kernel.choose(_torch_reference, solve_reference=_torch_solve_reference)
        print(
            "WPE kernel measurement (us per row and iteration, single thread): correlations "
            + ", ".join(f"{k} {v:g}" for k, v in sorted(found["us_per_row"].items(), key=lambda kv: kv[1]))
            + "; solve "
            + ", ".join(f"{k} {v:g}" for k, v in found["solve_us_per_row"].items())
            + f"; chosen: {found['choice']}, solve in {found['solve']}"
        )
    print(f"WPE correlations: {'compiled kernel ' + str(kernel._name) if kernel is not None else 'torch product'}")

    def batched() -> tuple[float, dict]:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        got = {k: [] for k in ("logmel_lr", "ild", "ivy", "direct", "reverb", "src")}
        for start in range(0, len(clips), args.batch_size):
            out = compute_features(torch.from_numpy(clips[start : start + args.batch_size]), device=args.device)
            for k in got:
                got[k].append(out[k].numpy())
        return time.perf_counter() - t, {k: np.concatenate(v) for k, v in got.items()}

    if args.skip_reference:
        batched_s, _ = batched()
        print(
            f"batched torch extractor ({args.device}, batch {args.batch_size}): {batched_s:7.2f} s, "
            f"{len(clips) / batched_s:7.3f} clips/s"
        )
        return

    with blas_threads(args.threads):
        reference_features(clips[0])  # warm-up: the first call pays imports, caches and numba compilation
    # the machine is shared: extractor and reference alternate, and the ratio of each round is kept
    ratios, worst = [], 0.0
    for r in range(args.repeats):
        batched_s, got = batched()
        with blas_threads(args.threads):
            t = time.perf_counter()
            refs = [reference_features(c) for c in clips]
            ref_s = time.perf_counter() - t
        worst = max(
            [worst]
            + [
                float(np.abs(got[k][b] - refs[b][k]).max())
                for b in range(len(clips))
                for k in ("logmel_lr", "ild", "direct", "reverb", "src")
            ]
        )
        ratios.append(ref_s / batched_s)
        print(
            f"round {r + 1}: batched torch extractor ({args.device}, batch {args.batch_size}) "
            f"{len(clips) / batched_s:6.3f} clips/s; per-clip librosa + nara_wpe float64 "
            f"{len(clips) / ref_s:6.3f} clips/s; speed-up {ratios[-1]:.2f}x"
        )
    print(f"max |difference| to the float64 reference: {worst:.2e} dB (tolerance 1e-3)")

    with blas_threads(args.threads):
        t = time.perf_counter()
        float32_reference(clips)
        ref32_s = time.perf_counter() - t
    print(
        f"per-clip librosa + nara_wpe, float32: {ref32_s:7.2f} s, {len(clips) / ref32_s:7.3f} clips/s "
        f"({ref32_s / batched_s:.2f}x slower than the last batched round)"
    )
    print(
        f"speed-up of the batched extractor vs the float64 reference: median {np.median(ratios):.2f}x, "
        f"range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} rounds"
    )
    print(
        f"WPE vs nara_wpe (float64) on the same STFT, first {min(2, len(clips))} clips: "
        f"relative output-power error {wpe_agreement(clips):.1e} (tolerance 1e-4)"
    )


if __name__ == "__main__":
    main()
