"""The compiled WPE correlation kernel: exact R / P against a direct sum, both paths of wpe() agree,
and a missing compiler falls back to the torch product."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from textseld.features import wpe_kernel
from textseld.features.wpe import wpe

KERNEL = wpe_kernel.load()
needs_kernel = pytest.mark.skipif(KERNEL is None, reason="no C compiler: the kernel cannot be built here")


def direct_correlations(y: np.ndarray, w: np.ndarray, taps: int, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """R (n, taps, taps) and P (n, taps) by their definition: y~_t = [y[t - delay - k]]_k."""
    n, t_len = y.shape
    shifted = np.zeros((n, t_len, taps), complex)
    for k in range(taps):
        lag = delay + k
        if lag < t_len:
            shifted[:, lag:, k] = y[:, : t_len - lag]
    r = np.einsum("bt,btk,btl->bkl", w, shifted, shifted.conj())
    p = np.einsum("bt,btk,bt->bk", w, shifted, y.conj())
    return r, p


@pytest.fixture(scope="module")
def tilings():
    """Every tiling the chooser may pick, built for this CPU: {name: library}."""
    libs = {}
    for tiling in wpe_kernel.TILINGS:
        path = wpe_kernel.build(tiling=tiling)
        assert path is not None, tiling
        libs[wpe_kernel.tiling_name(tiling)] = wpe_kernel._open(path)
    return libs


@needs_kernel
@pytest.mark.parametrize("tiling", [wpe_kernel.tiling_name(t) for t in wpe_kernel.TILINGS])
@pytest.mark.parametrize(
    "n,t_len,taps,delay", [(3, 251, 60, 5), (2, 40, 7, 0), (2, 9, 12, 3), (1, 5, 1, 0), (4, 100, 17, 2), (1, 3, 4, 6)]
)
def test_kernel_matches_the_definition(tilings, tiling, n, t_len, taps, delay):
    rng = np.random.default_rng(taps * 100 + t_len)
    y = rng.standard_normal((n, t_len)) + 1j * rng.standard_normal((n, t_len))
    w = rng.random((n, t_len)) * 10.0 ** rng.uniform(-3, 3, (n, t_len))  # weights over six decades
    r_out = torch.full((n, taps, taps), complex(np.nan, np.nan), dtype=torch.complex128)
    p_out = torch.full((n, taps), complex(np.nan, np.nan), dtype=torch.complex128)
    yt = torch.from_numpy(y)
    wpe_kernel.correlations(
        tilings[tiling], yt.real.contiguous(), yt.imag.contiguous(), torch.from_numpy(w), taps, delay, r_out, p_out
    )
    r_ref, p_ref = direct_correlations(y, w, taps, delay)
    upper = np.triu(np.ones((taps, taps), bool))
    got = r_out.numpy()
    assert np.isfinite(got[:, upper]).all()  # every upper entry written
    scale = max(np.abs(r_ref).max(), 1e-300)
    np.testing.assert_allclose(got[:, upper], r_ref[:, upper], rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(p_out.numpy(), p_ref, rtol=0, atol=1e-13 * max(np.abs(p_ref).max(), 1e-300))
    assert np.isnan(got[:, ~upper]).all()  # below the diagonal nothing is written


@needs_kernel
def test_kernel_rejects_wrong_buffers():
    y = torch.zeros(2, 10, dtype=torch.float64)
    with pytest.raises(ValueError, match="r_out"):
        wpe_kernel.correlations(
            KERNEL,
            y,
            y,
            y,
            3,
            1,
            torch.zeros(2, 3, 4, dtype=torch.complex128),
            torch.zeros(2, 3, dtype=torch.complex128),
        )


@needs_kernel
def test_both_paths_of_wpe_agree_with_nara_wpe():
    from nara_wpe.wpe import wpe as nara_wpe

    rng = np.random.default_rng(11)
    spec = rng.standard_normal((2, 24, 120)) + 1j * rng.standard_normal((2, 24, 120))
    spec *= rng.uniform(1e-3, 10, (2, 24, 1))
    y = torch.from_numpy(spec)
    torch_path = wpe(y, cpu_kernel=False).numpy()
    kernel_path = wpe(y, cpu_kernel=True).numpy()

    def rel_power(a, b):
        p, q = np.abs(a) ** 2, np.abs(b) ** 2
        return float(np.abs(p - q).sum() / q.sum())

    for b in range(2):
        ref = nara_wpe(spec[b][:, None, :], taps=60, delay=5, iterations=5)[:, 0]
        assert rel_power(kernel_path[b], ref) < 1e-4  # the tolerance of issue 3
        assert rel_power(torch_path[b], ref) < 1e-4
    # 60 taps on 120 frames of white noise: nearly singular R, so float64 summation order shows (3.6e-8)
    assert rel_power(kernel_path, torch_path) < 1e-6


def test_no_compiler_falls_back_to_torch(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="textseld.features.wpe_kernel"):
        assert wpe_kernel.build(compiler=str(tmp_path / "no-such-cc"), folder=tmp_path / "cache") is None
    assert "could not compile" in caplog.text
    assert not list((tmp_path / "cache").glob("*.so"))  # nothing half-written is left


def test_switched_off_kernel_is_an_error_only_when_required(monkeypatch):
    monkeypatch.setenv(wpe_kernel.ENV_SWITCH, "0")
    wpe_kernel.load.cache_clear()
    try:
        assert wpe_kernel.load() is None
        y = torch.from_numpy(np.random.default_rng(3).standard_normal((1, 6, 30)) + 0j)
        assert wpe(y, taps=3, delay=1, iterations=1).shape == (1, 6, 30)  # torch path
        with pytest.raises(RuntimeError, match="kernel is not available"):
            wpe(y, taps=3, delay=1, iterations=1, cpu_kernel=True)
    finally:
        monkeypatch.delenv(wpe_kernel.ENV_SWITCH)
        wpe_kernel.load.cache_clear()


@needs_kernel
def test_build_is_cached_by_source_and_cpu(tmp_path):
    first = wpe_kernel.build(folder=tmp_path)
    assert first is not None and first.exists()
    mtime = first.stat().st_mtime_ns
    assert wpe_kernel.build(folder=tmp_path) == first and first.stat().st_mtime_ns == mtime  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left
    other = wpe_kernel.build(folder=tmp_path, tiling=(4, 1, 4))
    assert other is not None and other != first  # each tiling its own build


@needs_kernel
def test_choice_is_measured_once_per_cpu_and_kept(tmp_path):
    from textseld.features.wpe import _torch_reference

    found = wpe_kernel.choose(_torch_reference, folder=tmp_path)
    names = {wpe_kernel.tiling_name(t) for t in wpe_kernel.TILINGS}
    assert set(found["us_per_row"]) == names | {"torch"}
    assert all(t > 0 for t in found["us_per_row"].values())
    assert found["choice"] == min(found["us_per_row"], key=found["us_per_row"].get)
    assert found["fastest_kernel"] in names
    record = next(tmp_path.glob("wpe_corr-choice-*.json"))
    mtime = record.stat().st_mtime_ns
    assert wpe_kernel.choose(_torch_reference, folder=tmp_path) == found and record.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.tmp"))


@needs_kernel
def test_torch_product_is_used_where_it_measures_faster(tmp_path, monkeypatch):
    """A reference that costs nothing beats every tiling: wpe() must then take the torch path by default,
    and still build the kernel when it is required (cpu_kernel=True, or the switch set to 1)."""
    monkeypatch.setenv("TEXTSELD_CACHE", str(tmp_path))
    wpe_kernel.load.cache_clear()

    def free_reference(*args):
        return lambda: None

    try:
        assert wpe_kernel.load(free_reference) is None
        assert wpe_kernel.load() is not None  # kernels only: the fastest tiling
        monkeypatch.setenv(wpe_kernel.ENV_SWITCH, "1")
        wpe_kernel.load.cache_clear()
        assert wpe_kernel.load(free_reference) is not None
    finally:
        wpe_kernel.load.cache_clear()


@needs_kernel
def test_kernel_solve_matches_numpy_and_flags_what_it_cannot_solve():
    rng = np.random.default_rng(5)
    n, taps = 6, 13
    a = rng.standard_normal((n, taps, 40)) + 1j * rng.standard_normal((n, taps, 40))
    r = a @ a.conj().transpose(0, 2, 1)  # positive definite
    r[1] -= 1.5 * np.trace(r[1]).real / taps * np.eye(taps)  # indefinite
    r[2] = 0  # a silent bin
    r[3, 4, :] = r[3, :, 4] = 0  # exactly singular
    r[4, 0, 0] = np.nan
    p = rng.standard_normal((n, taps)) + 1j * rng.standard_normal((n, taps))
    upper_only = r.copy()
    upper_only[:, np.tril_indices(taps, -1)[0], np.tril_indices(taps, -1)[1]] = np.nan  # must not be read
    g = torch.full((n, taps), complex(7, 7), dtype=torch.complex128)
    info = torch.full((n,), -1, dtype=torch.int32)
    wpe_kernel.solve(KERNEL, torch.from_numpy(upper_only), torch.from_numpy(p), g, info)
    for b in (0, 5):
        assert info[b] == 0
        np.testing.assert_allclose(g[b].numpy(), np.linalg.solve(r[b], p[b]), rtol=1e-10, atol=1e-12)
    assert all(info[b] > 0 for b in (1, 2, 3, 4))  # left to the caller's fallback, not written
    assert torch.all(g[1:5] == complex(7, 7))


@needs_kernel
def test_wpe_with_the_kernel_solve_falls_back_where_cholesky_fails():
    """A silent bin (R = 0: Cholesky fails at the first pivot) goes through the fallback, as in the torch
    path; the other bins are solved by the kernel and agree with the torch path."""
    rng = np.random.default_rng(8)
    spec = rng.standard_normal((1, 5, 90)) + 1j * rng.standard_normal((1, 5, 90))
    spec[0, 1] = 0
    y = torch.from_numpy(spec)
    got = wpe(y, taps=20, delay=2, iterations=2, cpu_kernel=True).numpy()
    ref = wpe(y, taps=20, delay=2, iterations=2, cpu_kernel=False).numpy()
    assert np.all(got[0, 1] == 0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-8 * np.abs(ref).max())
