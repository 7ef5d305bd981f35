/* WPE correlations of single-channel STFT rows, straight from the signal (textseld.features.wpe_kernel).
 *
 * For each row b (one clip's frequency bin) with signal y (T complex) and weights w (T real):
 *   R[k][k + m] = sum_s w[s + delay + k] z_m[s]    for 0 <= m < taps, 0 <= k < taps - m (upper triangle)
 *   P[k]        = conj(sum_s w[s] z_{delay + k}[s]) for 0 <= k < taps
 * with the lag products z_m[s] = y[s] conj(y[s - m]) (zero for s < m) and w zero past the row's end.
 * That is R = sum_t w_t y~_t y~_t^H and P = sum_t w_t y~_t conj(y_t) with y~_t = [y[t - delay - k]]_k.
 * Entries of R below the diagonal are not written.
 *
 * Why: only R's triangle is computed (half the products of a dense matrix product), the lag products
 * of a few lags at a time are made in L1 cache instead of being stored for the whole chunk, and the
 * inner loop keeps WPE_LAGS lags x (WPE_VEC * WPE_ROWV) rows of accumulators in vector registers.
 *
 * The tiling is set at compile time, so that the accumulators fit the register file of the target:
 *   WPE_VEC   doubles per vector (8 = 512-bit, 4 = 256-bit, 2 = 128-bit)
 *   WPE_ROWV  vectors of rows per tile (rows per tile = WPE_VEC * WPE_ROWV)
 *   WPE_LAGS  lags per group
 * 2 * WPE_LAGS * WPE_ROWV accumulators live in the inner loop (32 registers with AVX-512, 16 with AVX2).
 * wpe_kernel.py builds several tilings and keeps the one measured fastest on the machine; without
 * -D flags the defaults below follow the target's vector width. Vector extensions, not intrinsics:
 * any GCC/Clang target compiles it.
 */
#define _POSIX_C_SOURCE 200112L  /* posix_memalign */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef WPE_VEC
#if defined(__AVX512F__)
#define WPE_VEC 8
#elif defined(__AVX__)
#define WPE_VEC 4
#else
#define WPE_VEC 2
#endif
#endif
#ifndef WPE_ROWV
#define WPE_ROWV 2
#endif
#ifndef WPE_LAGS
#if WPE_VEC >= 8
#define WPE_LAGS 4
#else
#define WPE_LAGS 2
#endif
#endif

#define WPE_ROWS (WPE_VEC * WPE_ROWV)  /* rows of R per tile */

typedef double vd __attribute__((vector_size(8 * WPE_VEC)));

/* The tiling this library was compiled with (wpe_kernel.py checks it against the file's name). */
int wpe_corr_tiling(int *vec, int *rowv, int *lags) {
    *vec = WPE_VEC;
    *rowv = WPE_ROWV;
    *lags = WPE_LAGS;
    return 0;
}

/* y_re, y_im, w: (n, T) row-major float64; r: (n, taps, taps) complex128 (interleaved re, im);
 * p: (n, taps) complex128. Returns 0, -1 for invalid sizes, -2 when out of memory. */
int wpe_corr(int n, int T, int taps, int delay, const double *y_re, const double *y_im, const double *w,
             double *r, double *p) {
    const int n_lags = delay + taps;
    if (n < 0 || T < 1 || taps < 1 || delay < 0) return -1;
    const long stride = T + 2 * WPE_ROWS;  /* one lag's products, padded */
    const long pad = n_lags + 2 * WPE_ROWS + 64;  /* zeros after w: a tile reads up to WPE_ROWS - 1 past */
    double *scratch = NULL;  /* per call: the calling threads share nothing */
    if (posix_memalign((void **)&scratch, 64, sizeof(double) * (2 * WPE_LAGS * stride + T + pad)))
        return -2;
    double *const zr = scratch;                      /* lag q of the group at zr + q * stride */
    double *const zi = scratch + WPE_LAGS * stride;
    double *const wp = scratch + 2 * WPE_LAGS * stride;
    for (int b = 0; b < n; b++) {
        const double *restrict yr = y_re + (long)b * T, *restrict yi = y_im + (long)b * T;
        double *rb = r + (long)b * taps * taps * 2, *pb = p + (long)b * taps * 2;
        memcpy(wp, w + (long)b * T, sizeof(double) * T);
        memset(wp + T, 0, sizeof(double) * pad);  /* w is zero past the end */
        for (int m = 0; m < n_lags; m += WPE_LAGS) {
            int mm[WPE_LAGS];  /* the group's lags; past the last lag, repeats of m (not stored) */
            for (int q = 0; q < WPE_LAGS; q++) mm[q] = m + q < n_lags ? m + q : m;
            for (int q = 0; q < WPE_LAGS; q++) {
                const int mq = mm[q];
                double *restrict zrq = zr + q * stride, *restrict ziq = zi + q * stride;
                const int lead = mq < T ? mq : T;
                for (int s = 0; s < lead; s++) { zrq[s] = 0; ziq[s] = 0; }
                const double *restrict ar = yr + mq, *restrict ai = yi + mq;  /* y[s], s = u + mq */
                double *restrict outr = zrq + mq, *restrict outi = ziq + mq;
                for (int u = 0; u < T - mq; u++) {  /* y[s] conj(y[s - mq]) */
                    outr[u] = ar[u] * yr[u] + ai[u] * yi[u];
                    outi[u] = ai[u] * yr[u] - ar[u] * yi[u];
                }
            }
            for (int q = 0; q < WPE_LAGS; q++) {  /* P[mq - delay] = conj(sum_s w[s] z_mq[s]) */
                const int mq = mm[q];
                if ((q > 0 && mq == m) || mq < delay) continue;
                const double *zrq = zr + q * stride, *ziq = zi + q * stride;
                vd sr = {0}, si = {0};
                int s = 0;
                for (; s + WPE_VEC <= T; s += WPE_VEC) {
                    vd wv, xr, xi;
                    memcpy(&wv, wp + s, sizeof(vd));
                    memcpy(&xr, zrq + s, sizeof(vd));
                    memcpy(&xi, ziq + s, sizeof(vd));
                    sr += wv * xr;
                    si += wv * xi;
                }
                double tr = 0, ti = 0;
                for (int j = 0; j < WPE_VEC; j++) { tr += sr[j]; ti += si[j]; }
                for (; s < T; s++) { tr += wp[s] * zrq[s]; ti += wp[s] * ziq[s]; }
                pb[(mq - delay) * 2] = tr;
                pb[(mq - delay) * 2 + 1] = -ti;
            }
            if (m >= taps) continue;
            const int rows = taps - m;  /* rows needed by the group's first lag (the others need fewer) */
            for (int k0 = 0; k0 < rows; k0 += WPE_ROWS) {
                vd acc_r[WPE_LAGS][WPE_ROWV], acc_i[WPE_LAGS][WPE_ROWV];
#pragma GCC unroll 16
                for (int q = 0; q < WPE_LAGS; q++)
#pragma GCC unroll 16
                    for (int v = 0; v < WPE_ROWV; v++) {
                        acc_r[q][v] = (vd){0};
                        acc_i[q][v] = (vd){0};
                    }
                const double *wk = wp + delay + k0;  /* wk[s + j] = w[s + delay + k0 + j] */
                const int end = T - delay - k0;      /* past it every w of the tile's rows is zero */
                const double *restrict z_r = zr, *restrict z_i = zi;
                for (int s = m; s < end; s++) {  /* 2 * LAGS * ROWV fused multiply-adds per ROWV loads of w */
                    vd wv[WPE_ROWV];
#pragma GCC unroll 16
                    for (int v = 0; v < WPE_ROWV; v++) memcpy(&wv[v], wk + s + v * WPE_VEC, sizeof(vd));
#pragma GCC unroll 16
                    for (int q = 0; q < WPE_LAGS; q++) {
                        const double xr = z_r[q * stride + s], xi = z_i[q * stride + s];
#pragma GCC unroll 16
                        for (int v = 0; v < WPE_ROWV; v++) {
                            acc_r[q][v] += wv[v] * xr;
                            acc_i[q][v] += wv[v] * xi;
                        }
                    }
                }
                for (int q = 0; q < WPE_LAGS; q++) {
                    const int mq = mm[q];
                    if ((q > 0 && mq == m) || mq >= taps) continue;
                    for (int j = 0; j < WPE_ROWS; j++) {
                        const int k = k0 + j;
                        if (k >= taps - mq) break;
                        const long at = ((long)k * taps + k + mq) * 2;
                        rb[at] = acc_r[q][j / WPE_VEC][j % WPE_VEC];
                        rb[at + 1] = acc_i[q][j / WPE_VEC][j % WPE_VEC];
                    }
                }
            }
        }
    }
    free(scratch);
    return 0;
}

/* Solve R g = P per row for a Hermitian R given by its upper triangle (as wpe_corr writes it): Cholesky
 * R = U^H U, then U^H v = P and U g = v. R is copied into split real and imaginary arrays, so that the
 * inner loops (a rank-1 update of the trailing triangle, row-wise) vectorise; torch's batched LAPACK
 * calls spent ~2x the correlations' time on these 60 x 60 systems, one call per matrix.
 * r: (n, taps, taps) complex128 (entries below the diagonal are not read), p: (n, taps) complex128,
 * g: (n, taps) complex128 output; info: (n,) int, 0 where solved, else k + 1 for the first pivot k that
 * is not positive (R is not positive definite to rounding, or not finite): g's row is then not written
 * and the caller solves it another way (LU, least squares). Returns 0, -1 for invalid sizes, -2 when
 * out of memory. */
int wpe_solve(int n, int taps, const double *r, const double *p, double *g, int *info) {
    if (n < 0 || taps < 1) return -1;
    const long tt = (long)taps * taps;
    double *scratch = NULL;
    if (posix_memalign((void **)&scratch, 64, sizeof(double) * (2 * tt + 2 * taps + 16))) return -2;
    double *const ur = scratch, *const ui = scratch + tt;  /* U, upper triangle, row-major */
    double *const vr = scratch + 2 * tt, *const vi = vr + taps;
    for (int b = 0; b < n; b++) {
        const double *rb = r + (long)b * tt * 2, *pb = p + (long)b * taps * 2;
        double *gb = g + (long)b * taps * 2;
        for (int k = 0; k < taps; k++)
            for (int j = k; j < taps; j++) {
                ur[k * taps + j] = rb[(k * taps + j) * 2];
                ui[k * taps + j] = rb[(k * taps + j) * 2 + 1];
            }
        info[b] = 0;
        for (int k = 0; k < taps && !info[b]; k++) {  /* row k of U, then the trailing update */
            double *restrict ukr = ur + k * taps, *restrict uki = ui + k * taps;
            const double d = ukr[k];
            if (!(d > 0) || d == 1.0 / 0.0) {  /* also NaN and infinity */
                info[b] = k + 1;
                break;
            }
            const double s = sqrt(d), inv = 1.0 / s;
            ukr[k] = s;
            uki[k] = 0;
            for (int j = k + 1; j < taps; j++) {
                ukr[j] *= inv;
                uki[j] *= inv;
            }
            /* R[i][j] -= conj(U[k][i]) U[k][j] for k < i <= j, four rows i at a time from the first row's
             * diagonal on: each load of U[k][j] serves four rows, and the few entries written left of
             * a row's diagonal (never read: only the upper triangle is) cost less than shorter loops */
            int i = k + 1;
            for (; i + 4 <= taps; i += 4) {
                const double a0r = ukr[i], a0i = uki[i], a1r = ukr[i + 1], a1i = uki[i + 1];
                const double a2r = ukr[i + 2], a2i = uki[i + 2], a3r = ukr[i + 3], a3i = uki[i + 3];
                double *restrict x0r = ur + (long)i * taps, *restrict x0i = ui + (long)i * taps;
                double *restrict x1r = x0r + taps, *restrict x1i = x0i + taps;
                double *restrict x2r = x1r + taps, *restrict x2i = x1i + taps;
                double *restrict x3r = x2r + taps, *restrict x3i = x2i + taps;
                for (int j = i; j < taps; j++) {
                    const double br = ukr[j], bi = uki[j];
                    x0r[j] -= a0r * br + a0i * bi;
                    x0i[j] -= a0r * bi - a0i * br;
                    x1r[j] -= a1r * br + a1i * bi;
                    x1i[j] -= a1r * bi - a1i * br;
                    x2r[j] -= a2r * br + a2i * bi;
                    x2i[j] -= a2r * bi - a2i * br;
                    x3r[j] -= a3r * br + a3i * bi;
                    x3i[j] -= a3r * bi - a3i * br;
                }
            }
            for (; i < taps; i++) {
                const double ar = ukr[i], ai = uki[i];
                double *restrict xr = ur + (long)i * taps, *restrict xi = ui + (long)i * taps;
                for (int j = i; j < taps; j++) {
                    xr[j] -= ar * ukr[j] + ai * uki[j];
                    xi[j] -= ar * uki[j] - ai * ukr[j];
                }
            }
        }
        if (info[b]) continue;
        for (int k = 0; k < taps; k++) {
            vr[k] = pb[2 * k];
            vi[k] = pb[2 * k + 1];
        }
        for (int k = 0; k < taps; k++) {  /* U^H v = P: v[k] /= U[k][k], then v[j] -= conj(U[k][j]) v[k] */
            const double *ukr = ur + k * taps, *uki = ui + k * taps;
            const double inv = 1.0 / ukr[k], xr = vr[k] * inv, xi = vi[k] * inv;
            vr[k] = xr;
            vi[k] = xi;
            for (int j = k + 1; j < taps; j++) {
                vr[j] -= ukr[j] * xr + uki[j] * xi;
                vi[j] -= ukr[j] * xi - uki[j] * xr;
            }
        }
        for (int k = taps - 1; k >= 0; k--) {  /* U g = v, g overwriting v from the end */
            const double *ukr = ur + k * taps, *uki = ui + k * taps;
            double sr = vr[k], si = vi[k];
            for (int j = k + 1; j < taps; j++) {
                sr -= ukr[j] * vr[j] - uki[j] * vi[j];
                si -= ukr[j] * vi[j] + uki[j] * vr[j];
            }
            vr[k] = sr / ukr[k];
            vi[k] = si / ukr[k];
        }
        for (int k = 0; k < taps; k++) {
            gb[2 * k] = vr[k];
            gb[2 * k + 1] = vi[k];
        }
    }
    free(scratch);
    return 0;
}
