"""The compiled CPU kernel for WPE's correlation matrices (`wpe_corr.c`), built and chosen on first use.

`textseld.features.wpe` builds, for every (clip, bin) row and iteration, R's upper triangle and P
from the row's STFT y and weights w. In torch that is a dense float64 matrix product per row over
stored lag products; the C kernel computes only R's triangle and makes the lag products in cache.
How fast it is depends on the CPU: its inner loop keeps lags x rows of accumulators in vector
registers, and a tiling that fits AVX-512's 32 registers spills on an AVX2-only CPU (measured 27x
slower there, BENCHMARKS.md). So the kernel is compiled in several tilings (`TILINGS`: vector width x
rows x lags) and, once per CPU type, each tiling and the torch product are timed on the same block
of rows in alternating rounds; the fastest is used. Where the torch product wins, `load()` returns
None and the torch path runs (the kernel never makes extraction slower than it). The measurement is
kept next to the builds (`wpe_corr-choice-*.json`) and logged.

TEXTSELD_WPE_KERNEL: unset or "auto" = the measured choice; "0" = never the kernel; "1" = the
fastest compiled tiling even where the torch product measured faster.

The libraries are compiled with the machine's C compiler (`$CC`, else cc / gcc / clang) for the CPU
they run on (-march=native where accepted) into a cache folder ($TEXTSELD_CACHE, else
$XDG_CACHE_HOME/textseld, else ~/.cache/textseld), named by a hash of the source, the compiler,
the flags and the CPU's model and feature flags: cluster nodes of different CPU types sharing a
home folder each get their own builds and their own measurement. Files are written to a temporary
name and renamed, and one process at a time builds and measures (a lock file): parallel jobs wait
for the first one's choice.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("wpe_corr.c")
# gnu11, not c11: strict ISO mode turns off fused multiply-add contraction (1.4x slower here)
# -fno-math-errno: sqrt inlined (its argument is checked positive first)
FLAG_SETS = (
    ["-O3", "-march=native", "-std=gnu11", "-ffp-contract=fast", "-fno-math-errno"],
    ["-O3", "-std=gnu11", "-ffp-contract=fast", "-fno-math-errno"],
)
ENV_SWITCH = "TEXTSELD_WPE_KERNEL"  # "0" = never the kernel, "1" = always (fastest tiling), "auto"
# extra compiler flags, e.g. "-mno-avx512f" to reproduce an AVX2-only CPU's build on an AVX-512 one
# (benchmarks/bench_features.py --emulate-avx2); part of the build's and the measurement's name
CFLAGS_ENV = "TEXTSELD_WPE_CFLAGS"
# (doubles per vector, vectors of rows, lags) of wpe_corr.c. The 512-bit ones suit AVX-512's 32
# registers, the 256-bit ones AVX2's 16; each was the fastest on some CPU of BENCHMARKS.md, and
# (8, 2, 4) is the tiling of the first kernel, kept as a reference.
TILINGS = ((8, 1, 4), (8, 1, 6), (8, 2, 4), (4, 1, 4), (4, 2, 3), (4, 2, 4), (2, 2, 2))
# the block timed to choose: one block of wpe() rows at the settings of docs/METHOD.md section 2
# (T = 251 frames of a clip)
BENCH_ROWS, BENCH_T, BENCH_TAPS, BENCH_DELAY = 32, 251, 60, 5
BENCH_ROUNDS, BENCH_CALLS = 5, 3

# reference(y_re, y_im, w, taps, delay, calls) -> a function computing the same correlations `calls`
# times by the torch product, all set-up included (wpe.py passes its own)
Reference = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, int, int], Callable[[], None]]
# solve_reference(r_upper, p, calls) -> a function solving R g = P `calls` times in torch (wpe.py's)
SolveReference = Callable[[torch.Tensor, torch.Tensor, int], Callable[[], None]]


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


def cpu_model() -> str:
    """The CPU's model name (for logs and benchmark records)."""
    for line in _cpu_signature().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def find_compiler() -> str | None:
    """$CC, else the first of cc, gcc, clang on PATH."""
    if os.environ.get("CC"):
        return os.environ["CC"]
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def tiling_name(tiling: tuple[int, int, int] | None) -> str:
    """ "v8r1l4" for (8, 1, 4); "default" for the source's own choice (None)."""
    return "default" if tiling is None else "v{}r{}l{}".format(*tiling)


def _key(*parts: str | bytes) -> str:
    return hashlib.sha256(b"\0".join(p if isinstance(p, bytes) else p.encode() for p in parts)).hexdigest()[:16]


def build(
    compiler: str | None = None, folder: Path | None = None, tiling: tuple[int, int, int] | None = None
) -> Path | None:
    """Compile the kernel in one tiling (None: the source's default for the target), or find it built;
    the shared library's path, or None if every flag set failed (the reason is logged)."""
    compiler = compiler or find_compiler()
    if compiler is None:
        log.info("WPE kernel: no C compiler found (set CC); using torch products")
        return None
    folder = folder or cache_dir()
    source = SOURCE.read_bytes()
    defines = [] if tiling is None else [f"-DWPE_{k}={v}" for k, v in zip(("VEC", "ROWV", "LAGS"), tiling)]
    defines += os.environ.get(CFLAGS_ENV, "").split()
    errors = []
    for flags in FLAG_SETS:
        flags = [*flags, *defines]
        target = (
            folder / f"wpe_corr-{tiling_name(tiling)}-{_key(source, compiler, ' '.join(flags), _cpu_signature())}.so"
        )
        if target.exists():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=folder)
            os.close(fd)
            proc = subprocess.run(
                [compiler, *flags, "-fPIC", "-shared", "-o", tmp, str(SOURCE), "-lm"],
                capture_output=True,
                text=True,
                timeout=120,
            )
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
    log.warning(
        "WPE kernel: could not compile %s with %s (%s); using torch products", SOURCE, compiler, " | ".join(errors)
    )
    return None


def _open(path: Path) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        log.warning("WPE kernel: cannot load %s (%s); using torch products", path, exc)
        return None
    lib.wpe_corr.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 5
    lib.wpe_corr.restype = ctypes.c_int
    lib.wpe_solve.argtypes = [ctypes.c_int] * 2 + [ctypes.c_void_p] * 4
    lib.wpe_solve.restype = ctypes.c_int
    return lib


def _bench_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed block of rows shaped like wpe()'s: y_re, y_im, w (BENCH_ROWS, BENCH_T) float64."""
    gen = torch.Generator().manual_seed(0)
    shape = (BENCH_ROWS, BENCH_T)
    y_re, y_im = (
        torch.randn(shape, generator=gen, dtype=torch.float64),
        torch.randn(shape, generator=gen, dtype=torch.float64),
    )
    return y_re, y_im, 1.0 / (y_re**2 + y_im**2 + 1e-3)


def _kernel_call(lib: ctypes.CDLL, y_re, y_im, w, calls: int) -> Callable[[], None]:
    r = torch.empty(BENCH_ROWS, BENCH_TAPS, BENCH_TAPS, dtype=torch.complex128)
    p = torch.empty(BENCH_ROWS, BENCH_TAPS, dtype=torch.complex128)

    def run() -> None:
        for _ in range(calls):
            correlations(lib, y_re, y_im, w, BENCH_TAPS, BENCH_DELAY, r, p)

    return run


def _solve_call(lib: ctypes.CDLL, r: torch.Tensor, p: torch.Tensor, calls: int) -> Callable[[], None]:
    g = torch.empty_like(p)
    info = torch.empty(p.shape[0], dtype=torch.int32)

    def run() -> None:
        for _ in range(calls):
            solve(lib, r, p, g, info)

    return run


def measure(candidates: dict[str, Callable[[], None]], rounds: int = BENCH_ROUNDS) -> dict[str, float]:
    """Median seconds per call of each candidate: one warm-up call each, then `rounds` rounds that
    call every candidate once in turn (drifts of a shared machine hit all of them alike)."""
    for fn in candidates.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


class _Lock:
    """An exclusive lock on a file of the cache folder (parallel jobs build and measure once)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> _Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _built(folder: Path) -> Iterator[tuple[str, Path]]:
    for tiling in TILINGS:
        path = build(folder=folder, tiling=tiling)
        if path is not None:
            yield tiling_name(tiling), path


def _us_per_row(calls: dict) -> dict[str, float]:
    """Microseconds per row of the bench block of each of `calls` (`measure`d single-threaded,
    as wpe()'s workers run), rounded to 0.01."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seconds = measure(calls)
    finally:
        torch.set_num_threads(threads)
    return {name: round(s / (BENCH_CALLS * BENCH_ROWS) * 1e6, 2) for name, s in seconds.items()}


def choose(
    reference: Reference | None = None, folder: Path | None = None, solve_reference: SolveReference | None = None
) -> dict:
    """Build every tiling and time each, and the torch product where `reference` is given, on the
    same block (single-threaded, as wpe()'s workers run); then the kernel's Cholesky solve of that
    block's R g = P against `solve_reference` (torch's). {"cpu", "us_per_row": {name: us},
    "fastest_kernel": name or None, "choice": name or "torch", "solve_us_per_row": {"kernel", "torch"},
    "solve": "kernel" or "torch", "libraries": {name: path}}. Read from the cache where this CPU type
    (and source, compiler, torch version, references given) was measured before."""
    folder = folder or cache_dir()
    compiler = find_compiler() or ""
    key = _key(
        SOURCE.read_bytes(),
        compiler,
        _cpu_signature(),
        repr(TILINGS),
        torch.__version__,
        os.environ.get(CFLAGS_ENV, ""),
        torch.backends.cpu.get_cpu_capability(),
        "with-torch" if reference is not None else "kernels-only",
        "solve-with-torch" if solve_reference is not None else "solve-kernel-only",
    )
    record = folder / f"wpe_corr-choice-{key}.json"
    with _Lock(folder / "wpe_corr.lock"):
        if record.exists():
            try:
                found = json.loads(record.read_text())
                if all(Path(p).exists() for p in found["libraries"].values()):
                    return found
            except (OSError, ValueError, KeyError):
                pass  # unreadable or stale: measure again
        paths = dict(_built(folder))
        libs = {name: lib for name, path in paths.items() if (lib := _open(path)) is not None}
        y_re, y_im, w = _bench_problem()
        candidates = {name: _kernel_call(lib, y_re, y_im, w, BENCH_CALLS) for name, lib in libs.items()}
        if reference is not None:
            candidates["torch"] = reference(y_re, y_im, w, BENCH_TAPS, BENCH_DELAY, BENCH_CALLS)
        us = _us_per_row(candidates)
        kernels = [name for name in us if name != "torch"]
        fastest = min(kernels, key=us.__getitem__) if kernels else None
        solve_us = {}
        if fastest is not None:  # the solve on the block's own R and P (positive definite: T > taps)
            r = torch.empty(BENCH_ROWS, BENCH_TAPS, BENCH_TAPS, dtype=torch.complex128)
            p = torch.empty(BENCH_ROWS, BENCH_TAPS, dtype=torch.complex128)
            correlations(libs[fastest], y_re, y_im, w, BENCH_TAPS, BENCH_DELAY, r, p)
            solvers = {"kernel": _solve_call(libs[fastest], r, p, BENCH_CALLS)}
            if solve_reference is not None:
                solvers["torch"] = solve_reference(r, p, BENCH_CALLS)
            solve_us = _us_per_row(solvers)
        found = {
            "cpu": cpu_model(),
            "compiler": compiler,
            "us_per_row": us,
            "fastest_kernel": fastest,
            "choice": min(us, key=us.__getitem__) if us else "torch",
            "solve_us_per_row": solve_us,
            "solve": min(solve_us, key=solve_us.__getitem__) if solve_us else "torch",
            "libraries": {name: str(paths[name]) for name in libs},
        }
        fd, tmp = tempfile.mkstemp(prefix=record.name + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w") as fh:
            json.dump(found, fh, indent=1)
        os.replace(tmp, record)
        log.info(
            "WPE kernel: measured on %s (us per row and iteration): correlations %s; using %s; solve %s; using %s",
            found["cpu"],
            ", ".join(f"{k} {v:g}" for k, v in sorted(us.items(), key=lambda kv: kv[1])),
            found["choice"],
            solve_us,
            found["solve"],
        )
        return found


@functools.lru_cache(maxsize=4)
def load(reference: Reference | None = None, solve_reference: SolveReference | None = None) -> ctypes.CDLL | None:
    """The kernel library to use, built and chosen on first use (`choose`); None where it is switched
    off, cannot be built, or (with `reference`) the torch product measured faster on this CPU. The
    library's `solve_in_c` says whether its Cholesky solve measured faster than `solve_reference`
    (always True without one)."""
    switch = os.environ.get(ENV_SWITCH, "auto")
    if switch == "0":
        log.info("WPE kernel: switched off (%s=0); using torch products", ENV_SWITCH)
        return None
    if find_compiler() is None:
        log.info("WPE kernel: no C compiler found (set CC); using torch products")
        return None
    try:
        found = choose(reference if switch != "1" else None, solve_reference=solve_reference)
    except OSError as exc:
        log.warning("WPE kernel: cannot build or measure in %s (%s); using torch products", cache_dir(), exc)
        return None
    name = found["fastest_kernel"] if switch == "1" else found["choice"]
    if name is None:
        return None
    if name == "torch":
        log.info(
            "WPE kernel: the torch product measured faster on %s (%s); using it", found["cpu"], found["us_per_row"]
        )
        return None
    lib = _open(Path(found["libraries"][name]))
    if lib is not None:
        setattr(lib, "solve_in_c", found.get("solve") == "kernel" or solve_reference is None)  # noqa: B010 (CDLL attribute)
        log.info("WPE kernel: %s (%s), solve in %s", name, found["libraries"][name], "C" if lib.solve_in_c else "torch")
    return lib


def correlations(
    lib: ctypes.CDLL,
    y_re: torch.Tensor,
    y_im: torch.Tensor,
    w: torch.Tensor,
    taps: int,
    delay: int,
    r_out: torch.Tensor,
    p_out: torch.Tensor,
) -> None:
    """R's upper triangle into r_out and P into p_out, for rows of one block (ctypes releases the GIL).

    y_re, y_im, w: (n, T) contiguous float64 CPU; r_out: (n, taps, taps) contiguous complex128 (the
    entries below the diagonal are left as they were); p_out: (n, taps) contiguous complex128:
    R[k, l] = sum_t w[t] y[t - delay - k] conj(y[t - delay - l]), P[k] = sum_t w[t] y[t - delay - k] conj(y[t])."""
    n, t_len = w.shape
    for name, t, dtype, shape in (
        ("y_re", y_re, torch.float64, (n, t_len)),
        ("y_im", y_im, torch.float64, (n, t_len)),
        ("w", w, torch.float64, (n, t_len)),
        ("r_out", r_out, torch.complex128, (n, taps, taps)),
        ("p_out", p_out, torch.complex128, (n, taps)),
    ):
        if t.dtype != dtype or tuple(t.shape) != shape or not t.is_contiguous() or t.device.type != "cpu":
            raise ValueError(
                f"wpe kernel: {name} must be a contiguous CPU {dtype} tensor of shape {shape}, "
                f"got {t.dtype} {tuple(t.shape)} on {t.device}"
            )
    status = lib.wpe_corr(
        n, t_len, taps, delay, y_re.data_ptr(), y_im.data_ptr(), w.data_ptr(), r_out.data_ptr(), p_out.data_ptr()
    )
    if status != 0:
        raise RuntimeError(f"wpe kernel failed with status {status} (n={n}, T={t_len}, taps={taps}, delay={delay})")


def solve(
    lib: ctypes.CDLL, r_upper: torch.Tensor, p: torch.Tensor, g_out: torch.Tensor, info_out: torch.Tensor
) -> None:
    """g_out = R^-1 P per row by Cholesky, for Hermitian R given by its upper triangle (ctypes releases the GIL).

    r_upper: (n, taps, taps) contiguous complex128 (below the diagonal not read); p, g_out: (n, taps)
    contiguous complex128; info_out: (n,) int32, set to 0 where solved and to k + 1 where the k-th
    pivot was not positive (R not positive definite to rounding): those rows of g_out are not written."""
    n, taps = p.shape
    for name, t, dtype, shape in (
        ("r_upper", r_upper, torch.complex128, (n, taps, taps)),
        ("p", p, torch.complex128, (n, taps)),
        ("g_out", g_out, torch.complex128, (n, taps)),
        ("info_out", info_out, torch.int32, (n,)),
    ):
        if t.dtype != dtype or tuple(t.shape) != shape or not t.is_contiguous() or t.device.type != "cpu":
            raise ValueError(
                f"wpe kernel: {name} must be a contiguous CPU {dtype} tensor of shape {shape}, "
                f"got {t.dtype} {tuple(t.shape)} on {t.device}"
            )
    status = lib.wpe_solve(n, taps, r_upper.data_ptr(), p.data_ptr(), g_out.data_ptr(), info_out.data_ptr())
    if status != 0:
        raise RuntimeError(f"wpe kernel solve failed with status {status} (n={n}, taps={taps})")
