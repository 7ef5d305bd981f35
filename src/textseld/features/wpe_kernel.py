"""The compiled CPU kernel for WPE's correlation matrices (`wpe_corr.c`), built on first use.

`textseld.features.wpe` builds, for every (clip, bin) row and iteration, R's upper triangle and P
from the row's STFT y and weights w. In torch that is a dense float64 matrix product per row over
stored lag products; the C kernel computes only R's triangle, makes the lag products in cache and
runs ~2.5x faster per row on the development machine (BENCHMARKS.md). It is optional: where no C
compiler is found, or it fails, or TEXTSELD_WPE_KERNEL=0, `load()` returns None and the torch path
is used (same results within float64 rounding; tests run both).

The library is compiled with the machine's C compiler (`$CC`, else cc / gcc / clang) for the CPU it
runs on (-march=native where accepted) into a cache folder ($TEXTSELD_CACHE, else
$XDG_CACHE_HOME/textseld, else ~/.cache/textseld), named by a hash of the source, the compiler,
the flags and the CPU's model and feature flags: cluster nodes of different CPU types sharing a
home folder each get their own build. Written to a temporary name and renamed (parallel jobs may
build at the same time).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("wpe_corr.c")
# gnu11, not c11: strict ISO mode turns off fused multiply-add contraction (1.4x slower here)
FLAG_SETS = (["-O3", "-march=native", "-std=gnu11", "-ffp-contract=fast"],
             ["-O3", "-std=gnu11", "-ffp-contract=fast"])
ENV_SWITCH = "TEXTSELD_WPE_KERNEL"  # "0" = never use the kernel


def cache_dir() -> Path:
    """Where built kernels are kept."""
    if os.environ.get("TEXTSELD_CACHE"):
        return Path(os.environ["TEXTSELD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "textseld"


def _cpu_signature() -> str:
    """The CPU model and feature flags (Linux), else what platform reports: -march=native builds
    differ between CPU types."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features", "CPU part")]
        return "\n".join(sorted(set(wanted)))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def find_compiler() -> str | None:
    """$CC, else the first of cc, gcc, clang on PATH."""
    if os.environ.get("CC"):
        return os.environ["CC"]
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def build(compiler: str | None = None, folder: Path | None = None) -> Path | None:
    """Compile the kernel (or find it built); the shared library's path, or None if every flag set
    failed (the reason is logged)."""
    compiler = compiler or find_compiler()
    if compiler is None:
        log.info("WPE kernel: no C compiler found (set CC); using torch products")
        return None
    folder = folder or cache_dir()
    source = SOURCE.read_bytes()
    errors = []
    for flags in FLAG_SETS:
        key = hashlib.sha256(b"\0".join([source, compiler.encode(), " ".join(flags).encode(),
                                         _cpu_signature().encode()])).hexdigest()[:16]
        target = folder / f"wpe_corr-{key}.so"
        if target.exists():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=folder)
            os.close(fd)
            proc = subprocess.run([compiler, *flags, "-fPIC", "-shared", "-o", tmp, str(SOURCE)],
                                  capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append(f"{' '.join(flags)}: {exc}")
            continue
        if proc.returncode != 0:
            Path(tmp).unlink(missing_ok=True)
            errors.append(f"{' '.join(flags)}: {proc.stderr.strip()[-500:]}")
            continue
        os.replace(tmp, target)
        log.info("WPE kernel: built %s with %s %s", target, compiler, " ".join(flags))
        return target
    log.warning("WPE kernel: could not compile %s with %s (%s); using torch products", SOURCE, compiler,
                " | ".join(errors))
    return None


@functools.lru_cache(maxsize=1)
def load() -> ctypes.CDLL | None:
    """The kernel library, built on first use; None where it is switched off or cannot be built."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        log.info("WPE kernel: switched off (%s=0); using torch products", ENV_SWITCH)
        return None
    path = build()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        log.warning("WPE kernel: cannot load %s (%s); using torch products", path, exc)
        return None
    lib.wpe_corr.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 5
    lib.wpe_corr.restype = ctypes.c_int
    return lib


def correlations(lib: ctypes.CDLL, y_re: torch.Tensor, y_im: torch.Tensor, w: torch.Tensor, taps: int, delay: int,
                 r_out: torch.Tensor, p_out: torch.Tensor) -> None:
    """R's upper triangle into r_out and P into p_out, for rows of one block (ctypes releases the GIL).

    y_re, y_im, w: (n, T) contiguous float64 CPU; r_out: (n, taps, taps) contiguous complex128 (the
    entries below the diagonal are left as they were); p_out: (n, taps) contiguous complex128:
    R[k, l] = sum_t w[t] y[t - delay - k] conj(y[t - delay - l]), P[k] = sum_t w[t] y[t - delay - k] conj(y[t])."""
    n, t_len = w.shape
    for name, t, dtype, shape in (("y_re", y_re, torch.float64, (n, t_len)), ("y_im", y_im, torch.float64, (n, t_len)),
                                  ("w", w, torch.float64, (n, t_len)), ("r_out", r_out, torch.complex128, (n, taps, taps)),
                                  ("p_out", p_out, torch.complex128, (n, taps))):
        if t.dtype != dtype or tuple(t.shape) != shape or not t.is_contiguous() or t.device.type != "cpu":
            raise ValueError(f"wpe kernel: {name} must be a contiguous CPU {dtype} tensor of shape {shape}, "
                             f"got {t.dtype} {tuple(t.shape)} on {t.device}")
    status = lib.wpe_corr(n, t_len, taps, delay, y_re.data_ptr(), y_im.data_ptr(), w.data_ptr(), r_out.data_ptr(),
                          p_out.data_ptr())
    if status != 0:
        raise RuntimeError(f"wpe kernel failed with status {status} (n={n}, T={t_len}, taps={taps}, delay={delay})")
