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
 * inner loop keeps 4 lags x 16 rows of accumulators in vector registers (16 fused multiply-adds per
 * 2 vector loads). Vector extensions, not intrinsics: any GCC/Clang target compiles it.
 */
#define _POSIX_C_SOURCE 200112L  /* posix_memalign */
#include <stdlib.h>
#include <string.h>

typedef double v8 __attribute__((vector_size(64)));

#define LAG_GROUP 4  /* the inner loop below is written out for 4 */

/* y_re, y_im, w: (n, T) row-major float64; r: (n, taps, taps) complex128 (interleaved re, im);
 * p: (n, taps) complex128. Returns 0, -1 for invalid sizes, -2 when out of memory. */
int wpe_corr(int n, int T, int taps, int delay, const double *y_re, const double *y_im, const double *w,
             double *r, double *p) {
    const int n_lags = delay + taps;
    if (n < 0 || T < 1 || taps < 1 || delay < 0) return -1;
    const long stride = T + 16;  /* one lag's products, padded */
    double *scratch = NULL;      /* per call: the calling threads share nothing */
    if (posix_memalign((void **)&scratch, 64, sizeof(double) * (2 * LAG_GROUP * stride + T + n_lags + 64)))
        return -2;
    double *zr[LAG_GROUP], *zi[LAG_GROUP];  /* the lag products of the current group of lags */
    for (int q = 0; q < LAG_GROUP; q++) {
        zr[q] = scratch + q * stride;
        zi[q] = scratch + (LAG_GROUP + q) * stride;
    }
    double *wp = scratch + 2 * LAG_GROUP * stride;
    for (int b = 0; b < n; b++) {
        const double *restrict yr = y_re + (long)b * T, *restrict yi = y_im + (long)b * T;
        double *rb = r + (long)b * taps * taps * 2, *pb = p + (long)b * taps * 2;
        memcpy(wp, w + (long)b * T, sizeof(double) * T);
        memset(wp + T, 0, sizeof(double) * (n_lags + 64));  /* w is zero past the end */
        for (int m = 0; m < n_lags; m += LAG_GROUP) {
            int mm[LAG_GROUP];  /* the group's lags; past the last lag, repeats of m (not stored) */
            for (int q = 0; q < LAG_GROUP; q++) mm[q] = m + q < n_lags ? m + q : m;
            for (int q = 0; q < LAG_GROUP; q++) {
                const int mq = mm[q];
                double *restrict zrq = zr[q], *restrict ziq = zi[q];
                const int lead = mq < T ? mq : T;
                for (int s = 0; s < lead; s++) { zrq[s] = 0; ziq[s] = 0; }
                const double *restrict ar = yr + mq, *restrict ai = yi + mq;  /* y[s], s = u + mq */
                double *restrict outr = zrq + mq, *restrict outi = ziq + mq;
                for (int u = 0; u < T - mq; u++) {  /* y[s] conj(y[s - mq]) */
                    outr[u] = ar[u] * yr[u] + ai[u] * yi[u];
                    outi[u] = ai[u] * yr[u] - ar[u] * yi[u];
                }
            }
            for (int q = 0; q < LAG_GROUP; q++) {  /* P[mq - delay] = conj(sum_s w[s] z_mq[s]) */
                const int mq = mm[q];
                if ((q > 0 && mq == m) || mq < delay) continue;
                v8 sr = {0}, si = {0};
                int s = 0;
                for (; s + 8 <= T; s += 8) {
                    v8 wv, xr, xi;
                    memcpy(&wv, wp + s, 64);
                    memcpy(&xr, zr[q] + s, 64);
                    memcpy(&xi, zi[q] + s, 64);
                    sr += wv * xr;
                    si += wv * xi;
                }
                double tr = 0, ti = 0;
                for (int j = 0; j < 8; j++) { tr += sr[j]; ti += si[j]; }
                for (; s < T; s++) { tr += wp[s] * zr[q][s]; ti += wp[s] * zi[q][s]; }
                pb[(mq - delay) * 2] = tr;
                pb[(mq - delay) * 2 + 1] = -ti;
            }
            if (m >= taps) continue;
            const int rows = taps - m;  /* rows needed by the group's first lag (the others need fewer) */
            for (int k0 = 0; k0 < rows; k0 += 16) {
                v8 a0r[LAG_GROUP] = {{0}}, a0i[LAG_GROUP] = {{0}}, a1r[LAG_GROUP] = {{0}}, a1i[LAG_GROUP] = {{0}};
                const double *wk = wp + delay + k0;  /* wk[s + j] = w[s + delay + k0 + j] */
                const int end = T - delay - k0;      /* past it every w of the 16 rows is zero */
                const double *restrict z0r = zr[0], *restrict z0i = zi[0], *restrict z1r = zr[1],
                             *restrict z1i = zi[1], *restrict z2r = zr[2], *restrict z2i = zi[2],
                             *restrict z3r = zr[3], *restrict z3i = zi[3];
                for (int s = m; s < end; s++) {  /* 16 fused multiply-adds per 2 vector loads of w */
                    v8 w0, w1;
                    memcpy(&w0, wk + s, 64);
                    memcpy(&w1, wk + s + 8, 64);
                    a0r[0] += w0 * z0r[s]; a0i[0] += w0 * z0i[s]; a1r[0] += w1 * z0r[s]; a1i[0] += w1 * z0i[s];
                    a0r[1] += w0 * z1r[s]; a0i[1] += w0 * z1i[s]; a1r[1] += w1 * z1r[s]; a1i[1] += w1 * z1i[s];
                    a0r[2] += w0 * z2r[s]; a0i[2] += w0 * z2i[s]; a1r[2] += w1 * z2r[s]; a1i[2] += w1 * z2i[s];
                    a0r[3] += w0 * z3r[s]; a0i[3] += w0 * z3i[s]; a1r[3] += w1 * z3r[s]; a1i[3] += w1 * z3i[s];
                }
                for (int q = 0; q < LAG_GROUP; q++) {
                    const int mq = mm[q];
                    if ((q > 0 && mq == m) || mq >= taps) continue;
                    for (int j = 0; j < 16; j++) {
                        const int k = k0 + j;
                        if (k >= taps - mq) break;
                        const long at = ((long)k * taps + k + mq) * 2;
                        rb[at] = j < 8 ? a0r[q][j] : a1r[q][j - 8];
                        rb[at + 1] = j < 8 ? a0i[q][j] : a1i[q][j - 8];
                    }
                }
            }
        }
    }
    free(scratch);
    return 0;
}
