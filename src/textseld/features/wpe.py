"""Batched single-channel WPE dereverberation in torch (SPEC section 2).

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

Why it is fast: R is Hermitian and R[k, k+m] = sum_s z_m[s] / lambda[s + delay + k] with the
lag products z_m[s] = y[s] conj(y[s - m]), so all of R and P come from ONE real matrix product
(lags x time) @ (time x shifts) per bin, batched over clips and bins, instead of a complex
(taps x time) @ (time x taps) product; the filter is applied by FFT convolution.
Why float64: with float32 accumulation the output power differs from nara_wpe (complex128)
by ~3e-3 relative (R is ill-conditioned); float64 keeps it at ~1e-11.
"""

from __future__ import annotations

import torch

TAPS = 60
DELAY = 5
ITERATIONS = 5
POWER_EPS = 1e-10  # relative to the clip's max power, as nara_wpe._stable_positive_inverse


def _inverse_power(x: torch.Tensor) -> torch.Tensor:
    """1 / max(|x|^2, 1e-10 * per-clip max); ones for an all-zero clip. x: (B, F, T) -> (B, F, T) real."""
    p = x.real.square() + x.imag.square()
    peak = p.amax(dim=(-2, -1), keepdim=True)
    inv = 1.0 / torch.maximum(p, POWER_EPS * peak)
    return torch.where(peak > 0, inv, torch.ones_like(p))


def _index_maps(taps: int, device: torch.device):
    """Flat indices into C (taps lags x [re, im] x taps shifts) that assemble R (taps x taps),
    plus the sign of R's imaginary part (R[k, l] = C[|l - k|, :, min(k, l)], conjugated below
    the diagonal because R is Hermitian)."""
    k = torch.arange(taps, device=device)
    lag = (k[None, :] - k[:, None]).abs()
    first = torch.minimum(k[:, None], k[None, :])
    re_index = ((lag * 2) * taps + first).reshape(-1)
    sign = torch.where(k[None, :] < k[:, None], -1.0, 1.0).reshape(-1).to(torch.float64)
    return re_index, re_index + taps, sign


def _solve(r: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
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


def _lag_products(y: torch.Tensor, n_lags: int) -> torch.Tensor:
    """z_m[s] = y[s] conj(y[s - m]) (zero before the clip start) as real numbers.

    y: (n, T) complex128 -> (n, n_lags, 2, T) float64 [lag, (re, im), time].
    """
    t_len = y.shape[-1]
    shifted = torch.nn.functional.pad(y, (n_lags - 1, 0)).unfold(-1, t_len, 1).flip(1)  # (n, lags, T): y[s-m]
    yr, yi = y.real.unsqueeze(1), y.imag.unsqueeze(1)
    sr, si = shifted.real, shifted.imag
    return torch.stack([yr * sr + yi * si, yi * sr - yr * si], dim=2)


def _wpe_rows(y: torch.Tensor, n_clips: int, taps: int, delay: int, iterations: int, maps) -> torch.Tensor:
    """WPE of whole clips given as rows. y: (n_clips * F, T) complex128 -> same shape."""
    n, t_len = y.shape
    n_lags = delay + taps
    re_index, im_index, sign = maps
    z = _lag_products(y, n_lags)  # fixed over the iterations: only the weights change
    # R needs lag m only at shifts k < taps - m: two blocks skip most of the unused triangle
    half = (taps + 1) // 2
    blocks = ((0, half, taps), (half, taps, taps - half))  # (first lag, end lag, shifts)
    n_fft = 1 << (t_len + n_lags).bit_length()  # linear (not circular) convolution
    y_f = torch.fft.fft(y, n=n_fft)
    c = y.new_zeros((n, taps, 2, taps), dtype=torch.float64)
    x = y
    for _ in range(iterations):
        inv_power = _inverse_power(x.reshape(n_clips, -1, t_len)).reshape(n, t_len)
        # shift columns: column k holds inv_power[s + delay + k] (zero past the clip end)
        padded = torch.nn.functional.pad(inv_power, (0, n_lags))
        cols = padded[:, delay:].unfold(-1, taps, 1)[:, :t_len].contiguous()  # (n, T, taps)
        for lo, hi, width in blocks:
            prod = torch.bmm(z[:, lo:hi].reshape(n, 2 * (hi - lo), t_len), cols[:, :, :width])
            c[:, lo:hi, :, :width] = prod.view(n, hi - lo, 2, width)
        flat = c.view(n, -1)
        r = torch.complex(flat.index_select(1, re_index), flat.index_select(1, im_index) * sign)
        r = r.view(n, taps, taps)
        # P[k] = sum_t inv_power[t] y[t - delay - k] conj(y[t]) = conj(sum_t inv_power[t] z_{delay+k}[t])
        pz = torch.bmm(z[:, delay:delay + taps].reshape(n, 2 * taps, t_len), inv_power.unsqueeze(-1))
        pz = pz.view(n, taps, 2)
        p = torch.complex(pz[..., 0], -pz[..., 1]).unsqueeze(-1)  # (n, taps, 1)
        g = _solve(r, p).squeeze(-1)  # (n, taps)
        # prediction sum_k conj(g[k]) y[t - delay - k] by FFT convolution
        kernel = torch.nn.functional.pad(g.conj(), (delay, 0))  # delays delay .. delay + taps - 1
        x = y - torch.fft.ifft(y_f * torch.fft.fft(kernel, n=n_fft))[:, :t_len]
    return x


def wpe(
    spec: torch.Tensor,
    taps: int = TAPS,
    delay: int = DELAY,
    iterations: int = ITERATIONS,
    clips_per_chunk: int | None = None,
) -> torch.Tensor:
    """Dereverberate a batch of single-channel STFTs.

    spec: (B, F, T) complex (B clips, F bins, T frames), on any device.
    Returns (B, F, T) complex128: per clip b, nara_wpe.wpe.wpe(spec[b][:, None, :], taps,
    delay, iterations)[:, 0]. Clips are processed `clips_per_chunk` at a time (default 1 on
    CPU, 8 on CUDA), all their bins together; memory is ~0.5 MB per (clip, bin) in a chunk.
    """
    if spec.ndim != 3 or not spec.is_complex():
        raise ValueError(f"wpe expects a complex (B, F, T) STFT, got {tuple(spec.shape)} {spec.dtype}")
    if clips_per_chunk is None:
        clips_per_chunk = 8 if spec.device.type == "cuda" else 1
    y = spec.to(torch.complex128)
    b, f, t_len = y.shape
    maps = _index_maps(taps, y.device)
    out = torch.empty_like(y)
    for start in range(0, b, clips_per_chunk):
        chunk = y[start : start + clips_per_chunk]
        rows = _wpe_rows(chunk.reshape(-1, t_len), chunk.shape[0], taps, delay, iterations, maps)
        out[start : start + clips_per_chunk] = rows.reshape(chunk.shape)
    return out
