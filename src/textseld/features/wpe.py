"""Batched single-channel WPE dereverberation in torch (docs/METHOD.md section 2).

Computes, for every clip of a batch, exactly what `nara_wpe.wpe.wpe`
(= wpe_v7, psd_context=0, statistics_mode="full") computes on that clip's STFT
of shape (F, D=1, T):

    X = Y
    repeat `iterations` times:
        lambda[f, t] = max(|X[f, t]|^2, 1e-10 * max_{f', t'} |X|^2)  (per clip; 1 if the clip is all zero)
        R[f] = sum_t y~_t y~_t^H / lambda[f, t],  P[f] = sum_t y~_t conj(y[f, t]) / lambda[f, t]
        G[f] = solve(R[f], P[f])          (least squares / minimum norm when R[f] is singular)
        X[f, t] = y[f, t] - G[f]^H y~_t
    with y~_t = [y[f, t - delay - k]]_{k < taps} (zeros before the clip start).

Why it is fast (CPU, float64):
- R is Hermitian and R[k, k+m] = sum_s w[s + delay + k] z_m[s] with the lag products
  z_m[s] = y[s] conj(y[s - m]) and w = 1 / lambda.
- On CPU, a small compiled kernel (wpe_corr.c, built on first use by wpe_kernel.py) computes
  exactly R's upper triangle and P per row from y and w, making the lag products of a few lags
  at a time in cache, and solves R g = P by its own Cholesky. It is built in several register
  tilings; once per CPU type each tiling, the torch product and both solves are timed and the
  fastest are used (the torch path where it wins). Without a C compiler (or with
  TEXTSELD_WPE_KERNEL=0) the torch product and torch's solves are used. BENCHMARKS.md has the
  figures per CPU type.
- The torch product (CUDA, or CPU without the kernel): R's upper triangle and P come from ONE
  real product per bin, (1 + taps shifts of w) x time @ time x (delay + taps lags, re/im),
  over lag products stored for the chunk, instead of a complex (taps x T) @ (T x taps) product;
  R is gathered from it. Products covering only the triangle were slower with MKL (smaller
  products run less efficiently).
- Cholesky (R is Hermitian positive semi-definite) + two triangular solves: about half
  the time of LU; bins where Cholesky fails take nara_wpe's path (LU, then least squares).
- Rows (clip, bin) go in blocks through `torch.get_num_threads()` single-threaded worker
  threads (a persistent pool whose scratch buffers outlive the call): the many small products
  and factorisations do not parallelise inside one op.
- Iterations stay the outer loop: the power floor needs the whole clip's peak.
- The filter is applied by FFT convolution (length 320: 2^6 * 5 >= T + delay + taps - 1).
Why float64: with float32 accumulation the output power differs from nara_wpe (complex128)
by ~3e-3 relative (R is ill-conditioned); float64 keeps it at ~1e-14.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from textseld.constants import WPE_DELAY, WPE_ITERATIONS, WPE_TAPS
from textseld.features import wpe_kernel

POWER_EPS = 1e-10  # relative to the clip's max power, as nara_wpe._stable_positive_inverse
ROWS_PER_BLOCK = 32  # rows per block on CPU: fewer Python calls; larger blocks gained nothing


def _inverse_power(p: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """1 / max(p, 1e-10 * peak); ones where peak == 0 (an all-zero clip), as nara_wpe.
    p: (..., T) power |X|^2, peak: broadcastable to p -> (..., T)."""
    inv = 1.0 / torch.maximum(p, POWER_EPS * peak)
    return torch.where(peak > 0, inv, torch.ones_like(p))


def _power(x: torch.Tensor) -> torch.Tensor:
    return x.real.square() + x.imag.square()


def _fallback_solve(r: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """solve(R, P) per row, minimum-norm least squares where R is singular (as nara_wpe)."""
    g, info = torch.linalg.solve_ex(r, p)
    bad = info != 0
    if bool(bad.any()):
        g = g.clone()
        # an all-zero R (silent bin) has the minimum-norm solution 0; LAPACK's eigh/SVD are
        # very slow on exactly zero matrices, so only the other singular ones go to pinv
        zero = r.flatten(1).abs().amax(dim=1) == 0
        g[bad & zero] = 0
        rest = bad & ~zero
        if bool(rest.any()):
            g[rest] = torch.linalg.pinv(r[rest], hermitian=True) @ p[rest]
    return g


def _hermitian_solve(r_upper: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Solve R g = p for Hermitian R given by its upper triangle (the rest of r_upper is ignored).

    r_upper: (n, taps, taps) complex128, p: (n, taps, 1) -> g (n, taps, 1).
    Cholesky R = U^H U where R is positive definite; LU, then the pseudo-inverse, elsewhere.
    """
    u, info = torch.linalg.cholesky_ex(r_upper, upper=True)
    # two triangular solves with U itself (several times faster than cholesky_solve for these small
    # matrices): U^H v = p as v^H U = p^H (left=False), so that U^H, a conjugated view, is never copied
    v = torch.linalg.solve_triangular(u, p.mH, upper=True, left=False).mH
    g = torch.linalg.solve_triangular(u, v, upper=True)
    bad = info != 0
    if bool(bad.any()):
        rb = r_upper[bad].triu()
        rb = rb + rb.triu(1).mH
        g[bad] = _fallback_solve(rb, p[bad])
    return g


class _Block:
    """Fixed per-block data of `_wpe_rows` (a few rows of the chunk): y, its FFT, and either its real
    and imaginary parts (for the compiled kernel) or the lag products (for the torch product)."""

    def __init__(self, y: torch.Tensor, taps: int, delay: int, n_fft: int, z_out: torch.Tensor | None):
        """y: (n, T) complex128; z_out: (n, T, delay + taps) complex128 workspace for the lag products,
        None where the compiled kernel makes them itself."""
        n, t_len = y.shape
        n_lags = delay + taps
        self.y = y
        self.y_f = torch.fft.fft(y, n=n_fft)
        self.z = None
        if z_out is None:
            self.y_re, self.y_im = y.real.contiguous(), y.imag.contiguous()
            return
        # z[b, s, i] = y[s] conj(y[s - m]) with the lag m = n_lags - 1 - i in DEcreasing order
        # (zero before the clip start): a plain sliding window, no flip of this big tensor
        y_past = torch.nn.functional.pad(y, (n_lags - 1, 0)).conj().resolve_conj()
        z = torch.mul(y.unsqueeze(-1), y_past.unfold(-1, n_lags, 1), out=z_out)  # (n, T, lags)
        self.z = torch.view_as_real(z).reshape(n, t_len, 2 * n_lags)  # (n, T, [lag, re/im])


@functools.lru_cache(maxsize=8)
def _upper_index(taps: int, delay: int, device: torch.device) -> torch.Tensor:
    """Flat indices into the product c (1 + taps rows, lags in DEcreasing order) of R[k, l] =
    c[1 + k, lag l - k] for l >= k; below the diagonal (unused by the solver) they repeat the
    diagonal. (taps * taps,) int64."""
    n_lags = delay + taps
    k = torch.arange(taps, device=device)
    lag = (k[None, :] - k[:, None]).clamp(min=0)
    return ((1 + k[:, None]) * n_lags + (n_lags - 1 - lag)).reshape(-1)


def _buffer(workspace: dict, name: str, shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """A reused scratch tensor: fresh multi-MB tensors cost more (the kernel zeroes new pages)
    than the products written into them (hankel: 1.6 ms fresh vs 0.2 ms reused)."""
    buf = workspace.get(name)
    if (
        buf is None
        or buf.shape[1:] != shape[1:]
        or buf.shape[0] < shape[0]
        or buf.dtype != like.dtype
        or buf.device != like.device
    ):
        buf = workspace[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buf[: shape[0]]  # a short last block uses the start of the buffer


def _workspace(scratch: threading.local) -> dict:
    """The calling thread's scratch buffers."""
    if not hasattr(scratch, "buffers"):
        scratch.buffers = {}
    return scratch.buffers


def _torch_correlations(
    block: _Block, w: torch.Tensor, taps: int, delay: int, workspace: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """R's upper triangle (n, taps, taps) and P (n, taps, 1) of one block by a float64 matrix product
    over the stored lag products (the path without the compiled kernel, and on CUDA)."""
    n, t_len = w.shape
    n_lags = delay + taps
    # hankel[b, 0, s] = w[s] (for P); hankel[b, 1 + k, s] = w[s + delay + k] (for R; zero past the clip end)
    hankel = _buffer(workspace, "hankel", (n, 1 + taps, t_len), w)
    hankel[:, 0] = w
    hankel[:, 1:] = torch.nn.functional.pad(w[:, delay:], (0, n_lags)).unfold(-1, t_len, 1)[:, :taps]
    # c[b, 0, m] = sum_s w[s] z_m[s]; c[b, 1 + k, m] = sum_s w[s + delay + k] z_m[s].
    # R only needs m < taps - k (a triangle), but the product is limited by reading z from
    # memory, so one full product is faster than several blocks covering the triangle.
    assert block.z is not None, "the torch product needs the block's lag products"
    c = torch.bmm(hankel, block.z, out=_buffer(workspace, "c", (n, 1 + taps, 2 * n_lags), w))
    c = torch.view_as_complex(c.view(n, (1 + taps) * n_lags, 2))
    # R[k, l] = c[1 + k, lag l - k] for l >= k, gathered into a contiguous (n, taps, taps)
    r_upper = torch.index_select(
        c, 1, _upper_index(taps, delay, c.device), out=_buffer(workspace, "r", (n, taps * taps), c)
    ).view(n, taps, taps)
    # P[k] = sum_t w[t] y[t - delay - k] conj(y[t]) = conj(sum_t w[t] z_{delay + k}[t]) = conj(c[0, lag delay + k])
    p = c[:, :n_lags].flip(-1)[:, delay:].conj().unsqueeze(-1)  # (n, taps, 1)
    return r_upper, p


def _torch_reference(
    y_re: torch.Tensor, y_im: torch.Tensor, w: torch.Tensor, taps: int, delay: int, calls: int
) -> Callable[[], None]:
    """The torch product's side of wpe_kernel.choose: `calls` correlations of one block of rows, with
    the block's lag products made once per call as in _wpe_rows (where they serve every iteration,
    calls = an iteration count)."""
    y = torch.complex(y_re, y_im)
    n, t_len = y.shape
    workspace: dict = {}
    z = _buffer(workspace, "z", (n, t_len, delay + taps), y)

    def run() -> None:
        block = _Block(y, taps, delay, _fft_size(t_len + delay + taps - 1), z)
        for _ in range(calls):
            _torch_correlations(block, w, taps, delay, workspace)

    return run


def _torch_solve_reference(r_upper: torch.Tensor, p: torch.Tensor, calls: int) -> Callable[[], None]:
    """The torch side of the solve in wpe_kernel.choose: `calls` solves of one block's R g = P."""

    def run() -> None:
        for _ in range(calls):
            _hermitian_solve(r_upper, p.unsqueeze(-1))

    return run


def _kernel_solve(kernel: ctypes.CDLL, r_upper: torch.Tensor, p: torch.Tensor, workspace: dict) -> torch.Tensor:
    """R g = P by the kernel's Cholesky; rows whose R is not positive definite go to _hermitian_solve's
    fallbacks (LU, least squares), as in the torch path. r_upper: (n, taps, taps), p: (n, taps) -> (n, taps)."""
    n, taps = p.shape
    g = _buffer(workspace, "g_kernel", (n, taps), p)
    info = workspace.get("info_kernel")
    if info is None or info.shape[0] < n:
        info = workspace["info_kernel"] = torch.empty(max(n, ROWS_PER_BLOCK), dtype=torch.int32)
    info = info[:n]
    wpe_kernel.solve(kernel, r_upper, p, g, info)
    bad = info != 0
    if bool(bad.any()):
        g[bad] = _hermitian_solve(r_upper[bad], p[bad].unsqueeze(-1)).squeeze(-1)
    return g


def _block_step(
    block: _Block, w: torch.Tensor, taps: int, delay: int, n_fft: int, workspace: dict, kernel: ctypes.CDLL | None
) -> torch.Tensor:
    """One WPE iteration on one block given its inverse power w (n, T); returns the new X (n, T).
    workspace: this thread's scratch buffers; kernel: the compiled correlation kernel or None."""
    t_len = w.shape[1]
    if kernel is not None:  # R's upper triangle and P straight from y and w (wpe_kernel.py)
        n = w.shape[0]
        r_upper = _buffer(workspace, "r_kernel", (n, taps, taps), block.y)
        p = _buffer(workspace, "p_kernel", (n, taps), block.y)
        wpe_kernel.correlations(kernel, block.y_re, block.y_im, w.contiguous(), taps, delay, r_upper, p)
        if getattr(kernel, "solve_in_c", False):
            g = _kernel_solve(kernel, r_upper, p, workspace)
        else:
            g = _hermitian_solve(r_upper, p.unsqueeze(-1)).squeeze(-1)
    else:
        r_upper, p = _torch_correlations(block, w, taps, delay, workspace)
        g = _hermitian_solve(r_upper, p).squeeze(-1)  # (n, taps)
    # prediction sum_k conj(g[k]) y[t - delay - k] by FFT convolution
    taps_filter = torch.nn.functional.pad(g.conj(), (delay, 0))  # delays delay .. delay + taps - 1
    return block.y - torch.fft.ifft(block.y_f * torch.fft.fft(taps_filter, n=n_fft))[:, :t_len]


_SCRATCH = threading.local()  # per-thread scratch buffers, kept between calls (see _wpe_rows)
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}  # (process id, workers) -> pool
_POOLS_LOCK = threading.Lock()


def _worker_pool(n_workers: int) -> ThreadPoolExecutor:
    """A persistent pool of n_workers threads, each running single-threaded torch ops: its threads keep
    their scratch buffers between calls (a fresh 134 MB lag-product buffer costs ~30 ms of page faults).
    Keyed by process id too: a forked child has none of its parent's threads and gets its own pool."""
    key = (os.getpid(), n_workers)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(
                n_workers, initializer=torch.set_num_threads, initargs=(1,), thread_name_prefix="wpe"
            )
        pool = _POOLS[key]
    torch.set_num_threads(1)  # MKL's thread count is process-wide: keep the workers single-threaded
    return pool


def _fft_size(n: int) -> int:
    """The smallest m >= n with no prime factor above 5 (a fast FFT length: 320 rather than 512 for 315)."""
    m = max(n, 1)
    while True:
        k = m
        for prime in (2, 3, 5):
            while k % prime == 0:
                k //= prime
        if k == 1:
            return m
        m += 1


def _run(pool: ThreadPoolExecutor | None, fn, *args) -> list:
    return list(pool.map(fn, *args)) if pool is not None else list(map(fn, *args))


def _wpe_rows(
    y: torch.Tensor,
    n_clips: int,
    taps: int,
    delay: int,
    iterations: int,
    rows_per_block: int,
    pool: ThreadPoolExecutor | None,
    scratch: threading.local,
    kernel: ctypes.CDLL | None,
) -> torch.Tensor:
    """WPE of whole clips given as rows. y: (n_clips * F, T) complex128 -> same shape.
    kernel: the compiled correlation kernel (CPU), or None for the torch product.
    scratch: per-thread buffers, kept between calls (a fresh 134 MB lag-product buffer per
    clip costs ~30 ms of page faults, more than filling it).

    Iterations are the outer loop: the power floor of an iteration needs the peak of the whole
    clip. (Running all iterations block by block, with the lag products in the cache, and
    checking the floors afterwards was tried: on the test clips 70 % of the cells sit at the
    floor, so it was never exact.)
    """
    n, t_len = y.shape
    n_fft = _fft_size(t_len + delay + taps - 1)  # the first T outputs of the linear convolution
    x = y
    starts = range(0, n, rows_per_block)
    # lag products for the torch product: written once, read every iteration (the kernel makes its own)
    z = None if kernel is not None else _buffer(_workspace(scratch), "z", (n, t_len, delay + taps), y)
    blocks = _run(
        pool,
        lambda s: _Block(
            y[s : s + rows_per_block], taps, delay, n_fft, None if z is None else z[s : s + rows_per_block]
        ),
        starts,
    )
    for _ in range(iterations):
        p = _power(x)
        peak = p.reshape(n_clips, -1).amax(dim=1).repeat_interleave(n // n_clips).unsqueeze(1)  # (n, 1)
        w = _inverse_power(p, peak)
        x = torch.cat(
            _run(
                pool,
                lambda blk, s, w=w: _block_step(
                    blk, w[s : s + rows_per_block], taps, delay, n_fft, _workspace(scratch), kernel
                ),
                blocks,
                starts,
            )
        )
    return x


def wpe(
    spec: torch.Tensor,
    taps: int = WPE_TAPS,
    delay: int = WPE_DELAY,
    iterations: int = WPE_ITERATIONS,
    clips_per_chunk: int | None = None,
    rows_per_block: int | None = None,
    cpu_kernel: bool | None = None,
) -> torch.Tensor:
    """Dereverberate a batch of single-channel STFTs.

    spec: (B, F, T) complex (B clips, F bins, T frames), on any device.
    Returns (B, F, T) complex128: per clip b, nara_wpe.wpe.wpe(spec[b][:, None, :], taps,
    delay, iterations)[:, 0]. Clips are processed `clips_per_chunk` at a time (default 1 on
    CPU, 8 on CUDA); within a chunk, (clip, bin) rows go `rows_per_block` at a time (default
    32 on CPU, all rows of the chunk on CUDA) through torch.get_num_threads() worker threads
    on CPU. Memory is ~0.4 MB per (clip, bin) of a chunk (a few KB with the kernel).
    cpu_kernel: on CPU, build R and P with the compiled kernel of wpe_kernel.py (None: where it
    can be built, True: required, False: never); off the CPU the torch product is always used.
    """
    if spec.ndim != 3 or not spec.is_complex():
        raise ValueError(f"wpe expects a complex (B, F, T) STFT, got {tuple(spec.shape)} {spec.dtype}")
    on_cpu = spec.device.type == "cpu"
    if clips_per_chunk is None:
        clips_per_chunk = 1 if on_cpu else 8
    y = spec.to(torch.complex128)
    b, f, t_len = y.shape
    if rows_per_block is None:
        rows_per_block = ROWS_PER_BLOCK if on_cpu else clips_per_chunk * f
    out = torch.empty_like(y)
    kernel = None
    if on_cpu and cpu_kernel is not False:  # None: the kernel where it measured faster than the torch product
        kernel = wpe_kernel.load() if cpu_kernel else wpe_kernel.load(_torch_reference, _torch_solve_reference)
    if cpu_kernel and on_cpu and kernel is None:
        raise RuntimeError("wpe(cpu_kernel=True): the compiled WPE kernel is not available (see the log)")
    n_workers = torch.get_num_threads() if on_cpu else 1
    # worker threads run single-threaded ops: a worker's own OpenMP team (its default size is
    # the core count) oversubscribes the cores, and MKL's FFT then becomes ~100x slower
    pool = _worker_pool(n_workers) if n_workers > 1 else None
    starts = range(0, b, clips_per_chunk)

    # per-thread buffers, reused over the chunks and blocks; on CPU also over calls (page faults of
    # fresh buffers cost ~30 ms per clip), on a GPU freed after the call (~2 GB for 8 clips per chunk)
    scratch = _SCRATCH if on_cpu else threading.local()

    def run_chunk(start: int, pool: ThreadPoolExecutor | None) -> None:
        chunk = y[start : start + clips_per_chunk]
        rows = _wpe_rows(
            chunk.reshape(-1, t_len), chunk.shape[0], taps, delay, iterations, rows_per_block, pool, scratch, kernel
        )
        out[start : start + clips_per_chunk] = rows.reshape(chunk.shape)

    try:
        if pool is not None and len(starts) >= n_workers:
            # whole chunks per worker: no barrier between iterations (178 vs 213 ms/clip on 2 cores)
            list(pool.map(lambda s: run_chunk(s, None), starts))
        else:
            for start in starts:
                run_chunk(start, pool)
    finally:
        if pool is not None:
            torch.set_num_threads(n_workers)  # the workers' call also changed process-wide (MKL) settings
    return out
