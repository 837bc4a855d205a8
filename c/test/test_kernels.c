/*
 * test_kernels.c — every kernel of every ISA this CPU supports against _ref,
 * the _ref kernels against independent double-precision formulations, the
 * half conversions, and the thread pool.
 *
 * Tolerances (stated once, used below):
 *  - quantize_act: bit-identical q, s and sum.
 *  - dot products (f32, f16, bt2): |got - ref| <= TOL_DOT * sum_j |w_j x_j|
 *    (the ternary integer part is exact; what differs is float summation order).
 *  - element-wise: |got - ref| <= TOL_ELT * max(1, |ref|) (vector exp ~1-2 ulp);
 *    reductions (rmsnorm, l2norm, softmax): TOL_RED * max(1, |ref|).
 * Prints one line per ISA/kernel; exits non-zero on any failure.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "harness.h"
#include "kernels.h"
#include "threadpool.h"

#define TOL_DOT 1e-5
#define TOL_ELT 1e-6
#define TOL_RED 1e-5

static const int64_t DENSE_COLS[] = {1, 3, 17, 64, 100, 257, 1000};
static const int64_t BT2_COLS[] = {128, 256, 384, 1152, 2560};
static const int64_t ROWS[] = {1, 3, 17, 64};
static const int64_t GEMM_N[] = {1, 2, 3, 5, 8, 17};
static const int64_t ELT_N[] = {1, 3, 17, 64, 100, 257, 1000};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc64(bytes);
    if (!p) {
        printf("FAIL out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static void fill_normal(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * rng_normal();
}

/* Activations with an all-zero block, an outlier block, and exact .5 ties at s = 1. */
static void fill_activations(float *x, int64_t cols) {
    fill_normal(x, cols, 1.0f);
    if (cols >= 256) memset(x + 64, 0, 64 * sizeof(float));
    if (cols >= 384) x[130] = 300.0f;
    if (cols >= 128) {
        x[0] = 127.0f; /* block 0: amax 127, so s = 1 and x/s is exact */
        for (int j = 1; j < 64; j++) x[j] = (float)((int)(rng_u64() % 200) - 100) + 0.5f;
    }
}

static act_q8 act_alloc(int64_t cols) {
    act_q8 a = {xalloc((size_t)cols), xalloc((size_t)(cols / 64) * sizeof(float)),
                xalloc((size_t)(cols / 64) * sizeof(int32_t))};
    return a;
}
static void act_free(act_q8 a) {
    aligned_free(a.q);
    aligned_free(a.s);
    aligned_free(a.sum);
}

/* A random BT2 tensor [rows, cols]. */
static uint8_t *bt2_random(int64_t rows, int64_t cols) {
    uint8_t *w = xalloc(bt2_bytes(rows, cols));
    for (int64_t i = 0; i < rows * cols / 4; i++) {
        uint8_t b = 0;
        for (int k = 0; k < 4; k++) b |= (uint8_t)((rng_u64() % 3) << (2 * k));
        w[i] = b;
    }
    float *sc = (float *)bt2_scales(w, rows, cols);
    for (int64_t i = 0; i < rows * (cols / BT2_GROUP); i++) sc[i] = rng_uniform(-1.0f, 1.0f);
    return w;
}

/* Effective weight (scale * w) of BT2 element [r, j]. */
static double bt2_weight_at(const uint8_t *W, int64_t rows, int64_t cols, int64_t r, int64_t j) {
    const uint8_t *grp = W + r * (cols / 4) + (j / 128) * 32;
    int k = (int)(j % 128);
    int w = ((grp[k & 31] >> (2 * (k >> 5))) & 3) - 1;
    return (double)bt2_scales(W, rows, cols)[r * (cols / 128) + j / 128] * w;
}

/* |got - want| <= tol * bound[i] for i in [i0, i1); returns the max ratio err/bound. */
static double bounded_err(const float *got, const float *want, const double *bound, int64_t i0, int64_t i1,
                          int64_t stride) {
    double m = 0;
    for (int64_t i = i0; i < i1; i++) {
        double e = fabs((double)got[i * stride] - (double)want[i * stride]) / (bound[i] + 1e-30);
        if (!(e <= m)) m = e;
    }
    return m;
}

/* 1 if every float outside [r0, r1) of y[rows] still has the sentinel bits. */
static int untouched(const float *y, int64_t rows, int64_t r0, int64_t r1) {
    for (int64_t r = 0; r < rows; r++) {
        if (r >= r0 && r < r1) continue;
        uint32_t b;
        memcpy(&b, &y[r], 4);
        if (b != 0x7fc0dead) return 0;
    }
    return 1;
}
static void sentinel(float *y, int64_t n) {
    uint32_t b = 0x7fc0dead;
    for (int64_t i = 0; i < n; i++) memcpy(&y[i], &b, 4);
}

static void report(const char *isa, const char *kernel, double err, double tol, int ok_extra) {
    int ok = err <= tol && ok_extra;
    printf("%s %-7s %-14s max err %.3g (tol %.0e)\n", ok ? "ok  " : "FAIL", isa, kernel, err, tol);
    CHECK(ok, "%s %s: err %.3g tol %.0e%s", isa, kernel, err, tol, ok_extra ? "" : " (wrote outside range)");
}

/* ---- the _ref kernels against independent formulations -------------------- */

static void test_ref_semantics(void) {
    /* quantize_act_ref: half-even ties, clamping, zero block, sums. */
    int64_t cols = 384;
    float *x = xalloc(cols * sizeof(float));
    fill_activations(x, cols);
    act_q8 a = act_alloc(cols);
    kernels_ref.quantize_act(a, x, cols);
    int ok = a.s[0] == 1.0f && a.s[1] == 1.0f; /* zero block has s = 1 */
    for (int j = 64; j < 128; j++) ok &= a.q[j] == 0;
    for (int j = 1; j < 64; j++) ok &= a.q[j] == (int8_t)nearbyint(x[j]) && (a.q[j] % 2 == 0); /* ties to even */
    for (int64_t b = 0; b < cols / 64; b++) {
        int32_t s = 0, amaxq = 0;
        for (int j = 0; j < 64; j++) {
            s += a.q[b * 64 + j];
            amaxq = BRAID_MAX(amaxq, abs(a.q[b * 64 + j]));
        }
        ok &= s == a.sum[b] && (b == 1 || amaxq == 127);
    }
    CHECK(ok, "quantize_act_ref semantics");
    printf("%s ref     quantize_act   semantics (ties to even, zero block, sums)\n", ok ? "ok  " : "FAIL");

    /* gemv_bt2_ref against a double dequantize-and-dot. */
    int64_t rows = 17;
    cols = 1152;
    float *x2 = xalloc(cols * sizeof(float));
    fill_activations(x2, cols);
    act_q8 a2 = act_alloc(cols);
    kernels_ref.quantize_act(a2, x2, cols);
    uint8_t *W = bt2_random(rows, cols);
    float *y = xalloc(rows * sizeof(float)), *want = xalloc(rows * sizeof(float));
    double *bound = xalloc(rows * sizeof(double));
    kernels_ref.gemv_bt2(y, W, rows, cols, a2, 0, rows);
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0, l1 = 0;
        for (int64_t j = 0; j < cols; j++) {
            double v = bt2_weight_at(W, rows, cols, r, j) * a2.s[j / 64] * a2.q[j];
            acc += v;
            l1 += fabs(v);
        }
        want[r] = (float)acc;
        bound[r] = l1 + 1e-6;
    }
    report("ref", "gemv_bt2/dbl", bounded_err(y, want, bound, 0, rows, 1), TOL_DOT, 1);

    /* half conversions: every half round-trips; a few known values. */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = half_to_float((uint16_t)h);
        if (isnan(f)) continue;
        if (float_to_half(f) != h) bad++;
    }
    bad += half_to_float(0x3c00) != 1.0f || half_to_float(0x0001) != ldexpf(1.0f, -24) || float_to_half(65520.0f) != 0x7c00 ||
           float_to_half(1.0f + ldexpf(1.0f, -11)) != 0x3c00 /* tie to even */ ||
           float_to_half(1.0f + 3 * ldexpf(1.0f, -11)) != 0x3c02 || float_to_half(ldexpf(1.0f, -25)) != 0 ||
           float_to_half(ldexpf(1.5f, -25)) != 1;
    CHECK(bad == 0, "half conversions: %d mismatches", bad);
    printf("%s ref     half           round trip of all 65536 halves, ties (%d bad)\n", bad ? "FAIL" : "ok  ", bad);

    free(x), free(x2);
    act_free(a), act_free(a2);
    aligned_free(W), aligned_free(y), aligned_free(want), aligned_free(bound);
}

/* ---- one ISA against _ref ---------------------------------------------------- */

static void test_dense(const kernel_table *K) {
    const kernel_table *R = &kernels_ref;
    double e32 = 0, e16 = 0, g32 = 0, g16 = 0;
    int in_range = 1;
    for (int ci = 0; ci < COUNT(DENSE_COLS); ci++) {
        for (int ri = 0; ri < COUNT(ROWS); ri++) {
            int64_t cols = DENSE_COLS[ci], rows = ROWS[ri], nmax = 17, ldy = rows + 3;
            float *W = xalloc(rows * cols * sizeof(float)), *X = xalloc(nmax * cols * sizeof(float));
            uint16_t *H = xalloc(rows * cols * sizeof(uint16_t));
            fill_normal(W, rows * cols, 0.5f);
            fill_normal(X, nmax * cols, 1.0f);
            for (int64_t i = 0; i < rows * cols; i++) H[i] = float_to_half(W[i]);
            double *b32 = xalloc(nmax * rows * sizeof(double)), *b16 = xalloc(nmax * rows * sizeof(double));
            for (int64_t t = 0; t < nmax; t++)
                for (int64_t r = 0; r < rows; r++) {
                    double s32 = 0, s16 = 0;
                    for (int64_t j = 0; j < cols; j++) {
                        s32 += fabs((double)W[r * cols + j] * X[t * cols + j]);
                        s16 += fabs((double)half_to_float(H[r * cols + j]) * X[t * cols + j]);
                    }
                    b32[t * rows + r] = s32;
                    b16[t * rows + r] = s16;
                }
            float *y = xalloc(nmax * ldy * sizeof(float)), *yr = xalloc(nmax * ldy * sizeof(float));
            int64_t r0 = rows > 2 ? 1 : 0, r1 = rows > 2 ? rows - 1 : rows;

            sentinel(y, rows), sentinel(yr, rows);
            K->gemv_f32(y, W, X, cols, r0, r1);
            R->gemv_f32(yr, W, X, cols, r0, r1);
            e32 = fmax(e32, bounded_err(y, yr, b32, r0, r1, 1));
            in_range &= untouched(y, rows, r0, r1);

            sentinel(y, rows), sentinel(yr, rows);
            K->gemv_f16(y, H, X, cols, r0, r1);
            R->gemv_f16(yr, H, X, cols, r0, r1);
            e16 = fmax(e16, bounded_err(y, yr, b16, r0, r1, 1));
            in_range &= untouched(y, rows, r0, r1);

            for (int ni = 0; ni < COUNT(GEMM_N); ni++) {
                int64_t n = GEMM_N[ni];
                sentinel(y, n * ldy), sentinel(yr, n * ldy);
                K->gemm_f32(y, ldy, W, X, n, cols, r0, r1);
                R->gemm_f32(yr, ldy, W, X, n, cols, r0, r1);
                for (int64_t t = 0; t < n; t++) {
                    g32 = fmax(g32, bounded_err(y + t * ldy, yr + t * ldy, b32 + t * rows, r0, r1, 1));
                    in_range &= untouched(y + t * ldy, ldy, r0, r1);
                }
                sentinel(y, n * ldy), sentinel(yr, n * ldy);
                K->gemm_f16(y, ldy, H, X, n, cols, r0, r1);
                R->gemm_f16(yr, ldy, H, X, n, cols, r0, r1);
                for (int64_t t = 0; t < n; t++) {
                    g16 = fmax(g16, bounded_err(y + t * ldy, yr + t * ldy, b16 + t * rows, r0, r1, 1));
                    in_range &= untouched(y + t * ldy, ldy, r0, r1);
                }
            }
            aligned_free(W), aligned_free(X), aligned_free(H), aligned_free(b32), aligned_free(b16);
            aligned_free(y), aligned_free(yr);
        }
    }
    report(K->name, "gemv_f32", e32, TOL_DOT, in_range);
    report(K->name, "gemm_f32", g32, TOL_DOT, in_range);
    report(K->name, "gemv_f16", e16, TOL_DOT, in_range);
    report(K->name, "gemm_f16", g16, TOL_DOT, in_range);
}

static void test_bt2(const kernel_table *K) {
    const kernel_table *R = &kernels_ref;
    double ev = 0, eg = 0;
    int qsame = 1, in_range = 1;
    for (int ci = 0; ci < COUNT(BT2_COLS); ci++) {
        int64_t cols = BT2_COLS[ci], nmax = 17;
        float *X = xalloc(nmax * cols * sizeof(float));
        act_q8 a[17], ar[17];
        for (int64_t t = 0; t < nmax; t++) {
            fill_activations(X + t * cols, cols);
            a[t] = act_alloc(cols), ar[t] = act_alloc(cols);
            K->quantize_act(a[t], X + t * cols, cols);
            R->quantize_act(ar[t], X + t * cols, cols);
            qsame &= memcmp(a[t].q, ar[t].q, cols) == 0 && memcmp(a[t].s, ar[t].s, cols / 64 * 4) == 0 &&
                     memcmp(a[t].sum, ar[t].sum, cols / 64 * 4) == 0;
        }
        for (int ri = 0; ri < COUNT(ROWS); ri++) {
            int64_t rows = ROWS[ri], ldy = rows + 5;
            uint8_t *W = bt2_random(rows, cols);
            double *bound = xalloc(nmax * rows * sizeof(double));
            for (int64_t t = 0; t < nmax; t++)
                for (int64_t r = 0; r < rows; r++) {
                    double l1 = 0;
                    for (int64_t j = 0; j < cols; j++)
                        l1 += fabs(bt2_weight_at(W, rows, cols, r, j) == 0 ? 1.0 : bt2_weight_at(W, rows, cols, r, j)) *
                              ar[t].s[j / 64] * abs(ar[t].q[j]);
                    bound[t * rows + r] = l1;
                }
            float *y = xalloc(nmax * ldy * sizeof(float)), *yr = xalloc(nmax * ldy * sizeof(float));
            int64_t r0 = rows > 2 ? 1 : 0, r1 = rows > 2 ? rows - 1 : rows;
            sentinel(y, rows), sentinel(yr, rows);
            K->gemv_bt2(y, W, rows, cols, ar[0], r0, r1);
            R->gemv_bt2(yr, W, rows, cols, ar[0], r0, r1);
            ev = fmax(ev, bounded_err(y, yr, bound, r0, r1, 1));
            in_range &= untouched(y, rows, r0, r1);
            for (int ni = 0; ni < COUNT(GEMM_N); ni++) {
                int64_t n = GEMM_N[ni];
                sentinel(y, n * ldy), sentinel(yr, n * ldy);
                K->gemm_bt2(y, ldy, W, rows, cols, ar, n, r0, r1);
                R->gemm_bt2(yr, ldy, W, rows, cols, ar, n, r0, r1);
                for (int64_t t = 0; t < n; t++) {
                    eg = fmax(eg, bounded_err(y + t * ldy, yr + t * ldy, bound + t * rows, r0, r1, 1));
                    in_range &= untouched(y + t * ldy, ldy, r0, r1);
                }
            }
            aligned_free(W), aligned_free(bound), aligned_free(y), aligned_free(yr);
        }
        for (int64_t t = 0; t < nmax; t++) act_free(a[t]), act_free(ar[t]);
        aligned_free(X);
    }
    printf("%s %-7s %-14s q, s, sum bit-identical to ref\n", qsame ? "ok  " : "FAIL", K->name, "quantize_act");
    CHECK(qsame, "%s quantize_act differs from ref", K->name);
    report(K->name, "gemv_bt2", ev, TOL_DOT, in_range);
    report(K->name, "gemm_bt2", eg, TOL_DOT, in_range);
}

static void test_elementwise(const kernel_table *K) {
    const kernel_table *R = &kernels_ref;
    double e_rms = 0, e_l2 = 0, e_silu = 0, e_swi = 0, e_soft = 0, e_conv = 0;
    int tail_ok = 1, slice_ok = 1;
    for (int ni = 0; ni < COUNT(ELT_N); ni++) {
        int64_t n = ELT_N[ni];
        float *x = xalloc(n * sizeof(float)), *w = xalloc(n * sizeof(float)), *u = xalloc(n * sizeof(float));
        float *y = xalloc(n * sizeof(float)), *yr = xalloc(n * sizeof(float));
        fill_normal(x, n, 3.0f);
        fill_normal(w, n, 1.0f);
        fill_normal(u, n, 1.0f);
        if (n >= 3) x[0] = -100.0f, x[1] = 100.0f, x[2] = -30.0f; /* exp range ends */

        for (int wi = 0; wi < 2; wi++) {
            K->rmsnorm(y, x, wi ? w : NULL, n, 1e-6f);
            R->rmsnorm(yr, x, wi ? w : NULL, n, 1e-6f);
            e_rms = fmax(e_rms, max_rel_err(y, yr, n));
        }
        memcpy(y, x, n * sizeof(float)); /* aliasing y == x */
        K->rmsnorm(y, y, w, n, 1e-6f);
        R->rmsnorm(yr, x, w, n, 1e-6f);
        e_rms = fmax(e_rms, max_rel_err(y, yr, n));

        K->l2norm(y, x, n, 2.5f);
        R->l2norm(yr, x, n, 2.5f);
        e_l2 = fmax(e_l2, max_rel_err(y, yr, n));

        K->silu(y, x, n);
        R->silu(yr, x, n);
        e_silu = fmax(e_silu, max_rel_err(y, yr, n));
        memcpy(y, x, n * sizeof(float));
        K->silu(y, y, n);
        e_silu = fmax(e_silu, max_rel_err(y, yr, n));

        K->swiglu(y, x, u, n);
        R->swiglu(yr, x, u, n);
        e_swi = fmax(e_swi, max_rel_err(y, yr, n));
        memcpy(y, u, n * sizeof(float));
        K->swiglu(y, x, y, n); /* y aliases u */
        e_swi = fmax(e_swi, max_rel_err(y, yr, n));

        for (int64_t i = 0; i < n; i++) y[i] = yr[i] = 4.0f * u[i]; /* spread out, not one-hot */
        if (n >= 3) y[1] = yr[1] = -90.0f;                          /* an underflowing exp */
        K->softmax(y, n);
        R->softmax(yr, n);
        e_soft = fmax(e_soft, max_rel_err(y, yr, n));
        aligned_free(x), aligned_free(w), aligned_free(u), aligned_free(y), aligned_free(yr);
    }
    report(K->name, "rmsnorm", e_rms, TOL_RED, 1);
    report(K->name, "l2norm", e_l2, TOL_RED, 1);
    report(K->name, "silu", e_silu, TOL_ELT, 1);
    report(K->name, "swiglu", e_swi, TOL_ELT, 1);
    report(K->name, "softmax", e_soft, TOL_RED, 1);

    static const int64_t CONV_N[] = {1, 3, 17}, CONV_CH[] = {1, 3, 17, 64}, CONV_K[] = {1, 2, 4};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 3; c++) {
                int64_t n = CONV_N[a], ch = CONV_CH[b], k = CONV_K[c];
                float *x = xalloc(n * ch * 4 + 4), *w = xalloc(ch * k * 4), *y = xalloc(n * ch * 4),
                      *yr = xalloc(n * ch * 4);
                float *tail = xalloc((k - 1) * ch * 4 + 4), *tailr = xalloc((k - 1) * ch * 4 + 4);
                fill_normal(x, n * ch, 1.0f);
                fill_normal(w, ch * k, 0.5f);
                fill_normal(tail, (k - 1) * ch, 1.0f);
                memcpy(tailr, tail, (k - 1) * ch * 4);
                float *tail0 = xalloc((k - 1) * ch * 4 + 4), *ys = xalloc(n * ch * 4);
                memcpy(tail0, tail, (k - 1) * ch * 4);
                K->conv1d_causal(y, tail, x, w, n, ch, ch, k);
                R->conv1d_causal(yr, tailr, x, w, n, ch, ch, k);
                e_conv = fmax(e_conv, max_rel_err(y, yr, n * ch));
                tail_ok &= memcmp(tail, tailr, (k - 1) * ch * 4) == 0;
                /* channels [0, c0) and [c0, ch) as two calls on the same rows (ld = ch): K's own bits */
                const int64_t c0 = ch / 2;
                K->conv1d_causal(ys, tail0, x, w, n, c0, ch, k);
                K->conv1d_causal(ys + c0, tail0 + c0, x + c0, w + c0 * k, n, ch - c0, ch, k);
                slice_ok &= memcmp(ys, y, n * ch * 4) == 0 && memcmp(tail0, tail, (k - 1) * ch * 4) == 0;
                aligned_free(tail0), aligned_free(ys);
                aligned_free(x), aligned_free(w), aligned_free(y), aligned_free(yr), aligned_free(tail),
                    aligned_free(tailr);
            }
    report(K->name, "conv1d_causal", e_conv, TOL_RED, tail_ok);
    printf("%s %-7s conv1d_causal  channel slices (ld) == one call, bit for bit\n", slice_ok ? "ok  " : "FAIL", K->name);
    CHECK(slice_ok, "%s conv1d_causal: channel slices differ from one call", K->name);
}

/* ---- batch invariance: gemm row t == gemv on row t, bit for bit ---------------- */

static const int64_t EXACT_N[] = {1, 2, 3, 5, 8, 17, 64};

/* Row ranges [r0, r1) to test for a matrix of `rows` rows: all, a middle
 * sub-range with odd ends, and a single row. Returns the count. */
static int row_ranges(int64_t rows, int64_t r0[3], int64_t r1[3]) {
    int k = 0;
    r0[k] = 0, r1[k++] = rows;
    if (rows > 2) r0[k] = 1, r1[k++] = rows - 1;
    if (rows > 5) r0[k] = rows / 2 + 1, r1[k++] = rows / 2 + 2;
    return k;
}

/* One BT2 / f32 / f16 matrix product, so the checks below are written once. */
typedef struct {
    const kernel_table *K;
    int kind; /* 0 bt2, 1 f32, 2 f16 */
    const uint8_t *Wq;
    const float *W32;
    const uint16_t *W16;
    const act_q8 *a;
    const float *X;
    int64_t rows, cols;
} product;

static void run_gemm(const product *p, float *Y, int64_t ldy, int64_t n, int64_t r0, int64_t r1) {
    if (p->kind == 0) p->K->gemm_bt2(Y, ldy, p->Wq, p->rows, p->cols, p->a, n, r0, r1);
    if (p->kind == 1) p->K->gemm_f32(Y, ldy, p->W32, p->X, n, p->cols, r0, r1);
    if (p->kind == 2) p->K->gemm_f16(Y, ldy, p->W16, p->X, n, p->cols, r0, r1);
}
static void run_gemv(const product *p, float *y, int64_t t, int64_t r0, int64_t r1) {
    if (p->kind == 0) p->K->gemv_bt2(y, p->Wq, p->rows, p->cols, p->a[t], r0, r1);
    if (p->kind == 1) p->K->gemv_f32(y, p->W32, p->X + t * p->cols, p->cols, r0, r1);
    if (p->kind == 2) p->K->gemv_f16(y, p->W16, p->X + t * p->cols, p->cols, r0, r1);
}

/* Counts (row range, n) cases where some gemm row differs from gemv on that
 * row alone, and where gemm over [r0, r1) split into pieces (as threads split
 * rows) differs from one call. */
static void check_invariance(const product *p, int *gemv_bad, int *split_bad) {
    const int64_t nmax = 64, ldy = p->rows + 3;
    float *Y = xalloc(nmax * ldy * sizeof(float)), *Ys = xalloc(nmax * ldy * sizeof(float));
    float *y = xalloc(p->rows * sizeof(float));
    int64_t r0s[3], r1s[3];
    int nr = row_ranges(p->rows, r0s, r1s);
    for (int ri = 0; ri < nr; ri++) {
        int64_t r0 = r0s[ri], r1 = r1s[ri], len = (r1 - r0) * sizeof(float);
        for (int ni = 0; ni < COUNT(EXACT_N); ni++) {
            int64_t n = EXACT_N[ni];
            sentinel(Y, n * ldy);
            run_gemm(p, Y, ldy, n, r0, r1);
            int bad = 0;
            for (int64_t t = 0; t < n; t++) {
                sentinel(y, p->rows);
                run_gemv(p, y, t, r0, r1);
                bad |= memcmp(Y + t * ldy + r0, y + r0, len) != 0;
            }
            *gemv_bad += bad;
            /* pieces of 1, 3 and the rest, and a split at every 5th row */
            for (int s = 0; s < 2; s++) {
                sentinel(Ys, n * ldy);
                for (int64_t a = r0; a < r1;) {
                    int64_t b = s == 1 ? a + 5 : a == r0 ? a + 1 : a == r0 + 1 ? a + 3 : r1;
                    b = BRAID_MIN(r1, b);
                    run_gemm(p, Ys, ldy, n, a, b);
                    a = b;
                }
                for (int64_t t = 0; t < n; t++) *split_bad += memcmp(Ys + t * ldy + r0, Y + t * ldy + r0, len) != 0;
            }
        }
    }
    aligned_free(Y), aligned_free(Ys), aligned_free(y);
}

static void test_batch_invariance(const kernel_table *K) {
    static const int64_t INV_ROWS[] = {1, 3, 17, 64};
    /* 8320: 65 groups, past any 64-group chunking; 32896: 257 groups, past the
     * 256 groups whose over-count terms AVX-512 gemv precomputes once per call. */
    static const int64_t INV_BT2_COLS[] = {128, 384, 2560, 8320, 32896};
    int bad[3] = {0}, split[3] = {0};
    const int64_t nmax = 64;
    for (int ci = 0; ci < COUNT(DENSE_COLS); ci++)
        for (int ri = 0; ri < COUNT(INV_ROWS); ri++) {
            int64_t cols = DENSE_COLS[ci], rows = INV_ROWS[ri];
            float *W = xalloc(rows * cols * sizeof(float)), *X = xalloc(nmax * cols * sizeof(float));
            uint16_t *H = xalloc(rows * cols * sizeof(uint16_t));
            fill_normal(W, rows * cols, 0.5f);
            fill_normal(X, nmax * cols, 1.0f);
            for (int64_t i = 0; i < rows * cols; i++) H[i] = float_to_half(W[i]);
            product p32 = {.K = K, .kind = 1, .W32 = W, .X = X, .rows = rows, .cols = cols};
            product p16 = {.K = K, .kind = 2, .W16 = H, .X = X, .rows = rows, .cols = cols};
            check_invariance(&p32, &bad[1], &split[1]);
            check_invariance(&p16, &bad[2], &split[2]);
            aligned_free(W), aligned_free(X), aligned_free(H);
        }
    for (int ci = 0; ci < COUNT(INV_BT2_COLS); ci++) {
        int64_t cols = INV_BT2_COLS[ci];
        float *X = xalloc(nmax * cols * sizeof(float));
        act_q8 a[64];
        for (int64_t t = 0; t < nmax; t++) {
            fill_activations(X + t * cols, cols);
            a[t] = act_alloc(cols);
            K->quantize_act(a[t], X + t * cols, cols);
        }
        for (int ri = 0; ri < COUNT(INV_ROWS); ri++) {
            int64_t rows = INV_ROWS[ri];
            uint8_t *W = bt2_random(rows, cols);
            product p = {.K = K, .kind = 0, .Wq = W, .a = a, .rows = rows, .cols = cols};
            check_invariance(&p, &bad[0], &split[0]);
            aligned_free(W);
        }
        for (int64_t t = 0; t < nmax; t++) act_free(a[t]);
        aligned_free(X);
    }
    static const char *names[3] = {"gemm_bt2", "gemm_f32", "gemm_f16"};
    for (int k = 0; k < 3; k++) {
        int ok = bad[k] == 0 && split[k] == 0;
        printf("%s %-7s %-14s row t == gemv(row t) and split-independent, bit for bit (%d / %d cases differ)\n",
               ok ? "ok  " : "FAIL", K->name, names[k], bad[k], split[k]);
        CHECK(ok, "%s %s: %d (range, n) cases differ from gemv, %d rows differ when split", K->name, names[k], bad[k],
              split[k]);
    }
}

/* rows_axpy and outer_momentum: no FMA and _ref's operation order, so bit for bit equal to _ref
 * (widths around the 16- and 64-lane steps, and zero rows / columns). */
static void test_rows_kernels(const kernel_table *K) {
    static const int64_t N[] = {0, 1, 3, 64, 200}, D[] = {0, 1, 7, 16, 17, 64, 100, 128};
    int axpy_ok = 1, mom_ok = 1;
    for (int a = 0; a < COUNT(N); a++)
        for (int b = 0; b < COUNT(D); b++) {
            const int64_t n = N[a], d = D[b];
            float *V = xalloc((n * d + 1) * 4), *w = xalloc((n + 1) * 4), *y = xalloc((d + 1) * 4),
                  *yr = xalloc((d + 1) * 4);
            fill_normal(V, n * d, 1.0f);
            fill_normal(w, n, 1.0f);
            fill_normal(y, d, 1.0f);
            memcpy(yr, y, d * 4);
            K->rows_axpy(y, w, V, n, d);
            kernels_ref.rows_axpy(yr, w, V, n, d);
            axpy_ok &= memcmp(y, yr, d * 4) == 0;
            /* outer_momentum on [n, d] (u [n], v [d]) */
            float *S = xalloc((n * d + 1) * 4), *M = xalloc((n * d + 1) * 4), *Sr = xalloc((n * d + 1) * 4),
                  *Mr = xalloc((n * d + 1) * 4);
            fill_normal(S, n * d, 1.0f);
            fill_normal(M, n * d, 1.0f);
            memcpy(Sr, S, n * d * 4);
            memcpy(Mr, M, n * d * 4);
            const float eta = rng_uniform(0.0f, 1.0f), theta = rng_uniform(0.0f, 0.1f), keep = rng_uniform(0.5f, 1.0f);
            K->outer_momentum(S, M, w, y, n, d, eta, theta, keep);
            kernels_ref.outer_momentum(Sr, Mr, w, y, n, d, eta, theta, keep);
            mom_ok &= memcmp(S, Sr, n * d * 4) == 0 && memcmp(M, Mr, n * d * 4) == 0;
            aligned_free(V), aligned_free(w), aligned_free(y), aligned_free(yr);
            aligned_free(S), aligned_free(M), aligned_free(Sr), aligned_free(Mr);
        }
    printf("%s %-7s rows_axpy      bit-identical to ref\n", axpy_ok ? "ok  " : "FAIL", K->name);
    printf("%s %-7s outer_momentum bit-identical to ref\n", mom_ok ? "ok  " : "FAIL", K->name);
    CHECK(axpy_ok, "%s rows_axpy differs from ref", K->name);
    CHECK(mom_ok, "%s outer_momentum differs from ref", K->name);
}

/* delta_step against _ref: several consecutive steps on one state (d_k % 16 != 0 exercises the fallback). */
static void test_delta_step(const kernel_table *K) {
    static const int64_t DK[] = {16, 32, 64, 128, 24}, DV[] = {1, 17, 64};
    double e_o = 0, e_s = 0;
    int out_of_place_ok = 1;
    for (int a = 0; a < COUNT(DK); a++)
        for (int b = 0; b < COUNT(DV); b++) {
            int64_t dk = DK[a], dv = DV[b];
            float *S = xalloc(dv * dk * 4), *Sr = xalloc(dv * dk * 4), *q = xalloc(dk * 4), *k = xalloc(dk * 4);
            float *v = xalloc(dv * 4), *o = xalloc(dv * 4), *orf = xalloc(dv * 4);
            float *Sn = xalloc(dv * dk * 4), *Sk = xalloc(dv * dk * 4), *on = xalloc(dv * 4);
            fill_normal(S, dv * dk, 0.5f);
            memcpy(Sr, S, dv * dk * 4);
            for (int step = 0; step < 6; step++) {
                fill_normal(q, dk, 1.0f);
                fill_normal(k, dk, 1.0f);
                fill_normal(v, dv, 1.0f);
                kernels_ref.l2norm(q, q, dk, 1.0f / sqrtf((float)dk));
                kernels_ref.l2norm(k, k, dk, 1.0f);
                float beta = rng_uniform(0.0f, 1.0f), alpha = rng_uniform(0.5f, 1.0f);
                /* out of place from S into Sn first: the in-place step below must give the same bits,
                 * and S (the P of the out-of-place call) must come back untouched */
                memcpy(Sk, S, dv * dk * 4);
                K->delta_step(on, Sn, S, q, k, v, beta, alpha, dk, dv);
                if (memcmp(S, Sk, dv * dk * 4) != 0) out_of_place_ok = 0;
                K->delta_step(o, S, S, q, k, v, beta, alpha, dk, dv);
                if (memcmp(Sn, S, dv * dk * 4) != 0 || memcmp(on, o, dv * 4) != 0) out_of_place_ok = 0;
                kernels_ref.delta_step(orf, Sr, Sr, q, k, v, beta, alpha, dk, dv);
                e_o = fmax(e_o, max_rel_err(o, orf, dv));
                e_s = fmax(e_s, max_rel_err(S, Sr, dv * dk));
            }
            aligned_free(S), aligned_free(Sr), aligned_free(q), aligned_free(k), aligned_free(v), aligned_free(o),
                aligned_free(orf), aligned_free(Sn), aligned_free(Sk), aligned_free(on);
        }
    report(K->name, "delta_step o", e_o, TOL_RED, 1);
    report(K->name, "delta_step S", e_s, TOL_RED, 1);
    CHECK(out_of_place_ok, "%s delta_step out of place differs from in place (or wrote its P)", K->name);
}

/* delta_step_bwd against _ref: several backward steps walking one dS (d_k % 16 != 0 exercises the fallback),
 * and _ref itself against a central finite difference of the step's scalar output ⟨G, S_t⟩ + g·o. */
static void test_delta_step_bwd(const kernel_table *K) {
    static const int64_t DK[] = {16, 32, 64, 24}, DV[] = {1, 17, 64};
    double e_s = 0, e_v = 0, e_s2 = 0;
    for (int a = 0; a < COUNT(DK); a++)
        for (int b = 0; b < COUNT(DV); b++) {
            int64_t dk = DK[a], dv = DV[b];
            float *P = xalloc(dv * dk * 4), *St = xalloc(dv * dk * 4), *dS = xalloc(dv * dk * 4), *dSr = xalloc(dv * dk * 4);
            float *q = xalloc(dk * 4), *k = xalloc(dk * 4), *v = xalloc(dv * 4), *dout = xalloc(dv * 4), *o = xalloc(dv * 4);
            float *dq = xalloc(dk * 4), *dk_ = xalloc(dk * 4), *dvv = xalloc(dv * 4);
            float *dqr = xalloc(dk * 4), *dkr = xalloc(dk * 4), *dvr = xalloc(dv * 4);
            fill_normal(dS, dv * dk, 0.3f);
            memcpy(dSr, dS, dv * dk * 4);
            for (int step = 0; step < 4; step++) {
                fill_normal(P, dv * dk, 0.5f);
                fill_normal(q, dk, 1.0f);
                fill_normal(k, dk, 1.0f);
                fill_normal(v, dv, 1.0f);
                fill_normal(dout, dv, 1.0f);
                kernels_ref.l2norm(q, q, dk, 1.0f / sqrtf((float)dk));
                kernels_ref.l2norm(k, k, dk, 1.0f);
                float beta = rng_uniform(0.0f, 1.0f), alpha = rng_uniform(0.5f, 1.0f), da, db, dar, dbr;
                memcpy(St, P, dv * dk * 4);
                kernels_ref.delta_step(o, St, St, q, k, v, beta, alpha, dk, dv);
                K->delta_step_bwd(dS, dq, dk_, dvv, &da, &db, P, St, q, k, v, dout, alpha, beta, dk, dv);
                kernels_ref.delta_step_bwd(dSr, dqr, dkr, dvr, &dar, &dbr, P, St, q, k, v, dout, alpha, beta, dk, dv);
                e_s = fmax(e_s, max_rel_err(dS, dSr, dv * dk));
                e_v = fmax(e_v, fmax(max_rel_err(dq, dqr, dk), fmax(max_rel_err(dk_, dkr, dk), max_rel_err(dvv, dvr, dv))));
                float sa[1] = {da}, sar[1] = {dar}, sb[1] = {db}, sbr[1] = {dbr};
                e_v = fmax(e_v, fmax(max_rel_err(sa, sar, 1), max_rel_err(sb, sbr, 1)));
            }
            /* finite difference of f(β) = ⟨G, S_t(β)⟩ + dout·(S_t(β) q) with G = the incoming dS (ref only, in double) */
            if (K == &kernels_ref) {
                float *G = xalloc(dv * dk * 4), *Sp = xalloc(dv * dk * 4);
                fill_normal(G, dv * dk, 0.3f);
                fill_normal(P, dv * dk, 0.5f);
                float beta = 0.6f, alpha = 0.8f, h = 1e-2f, da, db;
                double f[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    memcpy(Sp, P, dv * dk * 4);
                    kernels_ref.delta_step(o, Sp, Sp, q, k, v, beta + (sgn ? h : -h), alpha, dk, dv);
                    double acc = 0;
                    for (int64_t i = 0; i < dv * dk; i++) acc += (double)G[i] * Sp[i];
                    for (int64_t i = 0; i < dv; i++) acc += (double)dout[i] * o[i];
                    f[sgn] = acc;
                }
                memcpy(St, P, dv * dk * 4);
                kernels_ref.delta_step(o, St, St, q, k, v, beta, alpha, dk, dv);
                memcpy(dSr, G, dv * dk * 4);
                kernels_ref.delta_step_bwd(dSr, dqr, dkr, dvr, &da, &db, P, St, q, k, v, dout, alpha, beta, dk, dv);
                double fd = (f[1] - f[0]) / (2.0 * h);
                e_s2 = fmax(e_s2, fabs(fd - db) / fmax(1.0, fabs(fd)));
                aligned_free(G), aligned_free(Sp);
            }
            aligned_free(P), aligned_free(St), aligned_free(dS), aligned_free(dSr), aligned_free(q), aligned_free(k);
            aligned_free(v), aligned_free(dout), aligned_free(o), aligned_free(dq), aligned_free(dk_), aligned_free(dvv);
            aligned_free(dqr), aligned_free(dkr), aligned_free(dvr);
        }
    report(K->name, "delta_step_bwd dS", e_s, TOL_RED, 1);
    report(K->name, "delta_step_bwd dq dk dv dα dβ", e_v, TOL_RED, 1);
    if (K == &kernels_ref) report(K->name, "delta_step_bwd dβ vs finite difference", e_s2, 1e-2, 1);
}

/* The trainer's elementwise exponentials against _ref (ELT_N covers every tail length class), on inputs
 * from −30 to 30 (SiLU's saturated ends included); the softmax pieces on logits shifted by their max like
 * the cross-entropy's. The backward's dg is compared against |dy u| max(1, |g|) (its own size where
 * SiLU' crosses zero, at g ≈ −1.28, is the difference of two O(1) terms); all others per element. */
static void test_train_elementwise(const train_kernel_table *K) {
    const train_kernel_table *R = &train_kernels_ref;
    double e_f = 0, e_b = 0, e_s = 0, e_x = 0;
    for (int a = 0; a < COUNT(ELT_N); a++) {
        const int64_t n = ELT_N[a];
        float *g = xalloc(n * 4), *u = xalloc(n * 4), *dy = xalloc(n * 4), *y = xalloc(n * 4), *yr = xalloc(n * 4);
        float *dg = xalloc(n * 4), *du = xalloc(n * 4), *dgr = xalloc(n * 4), *dur = xalloc(n * 4);
        for (int64_t i = 0; i < n; i++) g[i] = rng_uniform(-30.0f, 30.0f);
        if (n >= 3) g[0] = 0.0f, g[1] = -1.2785f, g[2] = 88.0f;
        fill_normal(u, n, 1.0f);
        fill_normal(dy, n, 1.0f);
        for (int withu = 0; withu < 2; withu++) {
            const float *uu = withu ? u : NULL;
            K->silu_mul(y, g, uu, n);
            R->silu_mul(yr, g, uu, n);
            e_f = fmax(e_f, max_rel_err(y, yr, n));
            K->silu_mul_bwd(dg, du, dy, g, uu, n);
            R->silu_mul_bwd(dgr, dur, dy, g, uu, n);
            for (int64_t i = 0; i < n; i++) {
                const double scale = fabs(dy[i] * (withu ? u[i] : 1.0f)) * fmax(1.0, fabs(g[i])) + 1e-30;
                e_b = fmax(e_b, fabs((double)dg[i] - dgr[i]) / scale);
            }
            if (withu) e_b = fmax(e_b, max_rel_err(du, dur, n));
        }
        /* softmax pieces: logits of spread ~10 shifted by their max (every exponent <= 0) */
        fill_normal(g, n, 10.0f);
        float mx = g[0];
        for (int64_t i = 1; i < n; i++) mx = g[i] > mx ? g[i] : mx;
        const float s = K->exp_sum(g, mx, n), sr = R->exp_sum(g, mx, n);
        e_s = fmax(e_s, fabs((double)s - sr) / fmax(1.0, fabs(sr)));
        K->exp_shift(y, g, mx, n);
        R->exp_shift(yr, g, mx, n);
        for (int64_t i = 0; i < n; i++) e_x = fmax(e_x, fabs((double)y[i] - yr[i]) / fmax(1e-30, fabs(yr[i])));
        memcpy(yr, g, n * 4); /* in place: y aliases x */
        K->exp_shift(yr, yr, mx, n);
        CHECK(memcmp(y, yr, n * 4) == 0, "%s exp_shift in place differs from out of place (n %lld)", K->name, (long long)n);
        /* fake_quant is exact: the same bits as _ref, ties (x = (k + ½) s) and the clamp included */
        for (int lim = 1; lim <= 127; lim += 126) {
            const float sc = lim == 1 ? 0.0173f : 0.0421f;
            fill_normal(g, n, lim == 1 ? 0.03f : 3.0f);
            for (int64_t i = 0; i < n; i += 3) g[i] = ((float)(i % 7) - 3.0f + 0.5f) * sc;
            if (n >= 2) g[1] = -((float)lim + 5.0f) * sc;
            K->fake_quant(y, g, sc, (float)lim, n);
            R->fake_quant(yr, g, sc, (float)lim, n);
            CHECK(memcmp(y, yr, n * 4) == 0, "%s fake_quant lim %d differs from _ref (n %lld)", K->name, lim, (long long)n);
            int clamped = 0;
            for (int64_t i = 0; i < n; i++) clamped |= fabsf(yr[i]) == sc * (float)lim;
            CHECK(n < 2 || clamped, "fake_quant test data never reaches the clamp (lim %d)", lim);
        }
        aligned_free(g), aligned_free(u), aligned_free(dy), aligned_free(y), aligned_free(yr);
        aligned_free(dg), aligned_free(du), aligned_free(dgr), aligned_free(dur);
    }
    /* adamw: the same bits as _ref over every tail length, g zeroed */
    for (int a = 0; a < COUNT(ELT_N); a++) {
        const int64_t n = ELT_N[a];
        float *w = xalloc(n * 4), *m = xalloc(n * 4), *v = xalloc(n * 4), *g = xalloc(n * 4);
        float *wr = xalloc(n * 4), *mr = xalloc(n * 4), *vr = xalloc(n * 4), *gr = xalloc(n * 4);
        fill_normal(w, n, 0.1f), fill_normal(m, n, 0.01f), fill_normal(g, n, 0.05f);
        for (int64_t i = 0; i < n; i++) v[i] = rng_uniform(0.0f, 1e-3f);
        memcpy(wr, w, n * 4), memcpy(mr, m, n * 4), memcpy(vr, v, n * 4), memcpy(gr, g, n * 4);
        const adamw_consts c = {0.37f, 0.9f, 0.95f, 0.271f, 0.0975f, 2e-3f, 1e-8f, 0.1f};
        K->adamw(w, m, v, g, &c, n);
        R->adamw(wr, mr, vr, gr, &c, n);
        int zero = 1;
        for (int64_t i = 0; i < n; i++) zero &= g[i] == 0.0f;
        CHECK(memcmp(w, wr, n * 4) == 0 && memcmp(m, mr, n * 4) == 0 && memcmp(v, vr, n * 4) == 0 && zero,
              "%s adamw differs from _ref (n %lld)", K->name, (long long)n);
        aligned_free(w), aligned_free(m), aligned_free(v), aligned_free(g);
        aligned_free(wr), aligned_free(mr), aligned_free(vr), aligned_free(gr);
    }
    report(K->name, "silu_mul", e_f, TOL_ELT, 1);
    report(K->name, "silu_mul_bwd", e_b, TOL_ELT, 1);
    report(K->name, "exp_sum", e_s, TOL_RED, 1);
    report(K->name, "exp_shift (rel)", e_x, TOL_ELT, 1);
}

/* conv1d_causal_ref: decoding token by token equals one call over the whole sequence. */
static void test_conv_streaming(void) {
    int64_t n = 9, ch = 5, k = 4;
    float x[45], w[20], y_all[45], y_step[45], t_all[15] = {0}, t_step[15] = {0};
    fill_normal(x, n * ch, 1.0f);
    fill_normal(w, ch * k, 0.5f);
    kernels_ref.conv1d_causal(y_all, t_all, x, w, n, ch, ch, k);
    kernels_ref.conv1d_causal(y_step, t_step, x, w, 2, ch, ch, k); /* 2 tokens, then one at a time */
    for (int64_t t = 2; t < n; t++) kernels_ref.conv1d_causal(y_step + t * ch, t_step, x + t * ch, w, 1, ch, ch, k);
    int ok = memcmp(y_all, y_step, sizeof y_all) == 0 && memcmp(t_all, t_step, sizeof t_all) == 0;
    /* channel slices of the rows (ld = ch), as the GD heads call it: the same bits as one call */
    float y_sl[45], t_sl[15] = {0};
    kernels_ref.conv1d_causal(y_sl, t_sl, x, w, n, 2, ch, k);
    kernels_ref.conv1d_causal(y_sl + 2, t_sl + 2, x + 2, w + 2 * k, n, ch - 2, ch, k);
    ok &= memcmp(y_all, y_sl, sizeof y_all) == 0 && memcmp(t_all, t_sl, sizeof t_all) == 0;
    /* the first output only sees w[c, k-1] * x[0, c] (zero history) */
    for (int64_t c = 0; c < ch; c++) {
        float v = w[c * k + k - 1] * x[c];
        ok &= fabsf(y_all[c] - v / (1.0f + expf(-v))) <= 1e-6f;
    }
    CHECK(ok, "conv1d_causal_ref streaming");
    printf("%s ref     conv1d_causal  streaming == batch == channel slices, zero history\n", ok ? "ok  " : "FAIL");
}

/* ---- thread pool ------------------------------------------------------------ */

typedef struct {
    atomic_int *count;
    int64_t n, align;
    atomic_int bad; /* misaligned range or bad thread id */
    int tag;
} cover_job;

static atomic_int g_active[2];
static atomic_int g_overlap;

static void cover_fn(void *argp, int64_t i0, int64_t i1, int32_t thread) {
    cover_job *j = argp;
    atomic_fetch_add(&g_active[j->tag], 1);
    if (atomic_load(&g_active[1 - j->tag]) != 0) atomic_store(&g_overlap, 1);
    if (i0 % j->align != 0 || (i1 % j->align != 0 && i1 != j->n) || i0 >= i1 || thread < 0 ||
        thread >= pool_threads())
        atomic_store(&j->bad, 1);
    for (int64_t i = i0; i < i1; i++) atomic_fetch_add(&j->count[i], 1);
    atomic_fetch_sub(&g_active[j->tag], 1);
}

/* reps calls of pool_parallel_for (dynamic: pool_parallel_for_dynamic) over [0, n). */
static int cover_once(int64_t n, int64_t align, int reps, int tag, int dynamic) {
    cover_job j = {calloc((size_t)BRAID_MAX(n, 1), sizeof(atomic_int)), n, align, 0, tag};
    for (int k = 0; k < reps; k++)
        (dynamic ? pool_parallel_for_dynamic : pool_parallel_for)(n, align, cover_fn, &j);
    int ok = !atomic_load(&j.bad);
    for (int64_t i = 0; i < n; i++) ok &= atomic_load(&j.count[i]) == reps;
    free(j.count);
    return ok;
}

static void *concurrent_main(void *arg) {
    int tag = (int)(intptr_t)arg;
    int ok = 1;
    for (int k = 0; k < 200; k++) ok &= cover_once(1000 + 37 * tag, 4, 1, tag, k % 2);
    return (void *)(intptr_t)ok;
}

static void test_pool(void) {
    static const int64_t NS[] = {0, 1, 2, 3, 7, 64, 100, 1000, 12345};
    static const int64_t ALIGNS[] = {1, 4, 16, 64};
    static const int32_t THREADS[] = {1, 2, 3, 5, 2};
    int ok = 1, dok = 1;
    for (int ti = 0; ti < COUNT(THREADS); ti++) {
        ok &= pool_init(THREADS[ti]) == BRAID_OK && pool_threads() == THREADS[ti];
        for (int a = 0; a < COUNT(NS); a++)
            for (int b = 0; b < COUNT(ALIGNS); b++) {
                ok &= cover_once(NS[a], ALIGNS[b], 3, 0, 0);
                dok &= cover_once(NS[a], ALIGNS[b], 3, 0, 1);
            }
    }
    CHECK(ok, "pool_parallel_for coverage");
    printf("%s pool    parallel_for   every index exactly once, aligned ranges (threads 1,2,3,5)\n",
           ok ? "ok  " : "FAIL");
    CHECK(dok, "pool_parallel_for_dynamic coverage");
    printf("%s pool    dynamic        every index exactly once, aligned claimed ranges (threads 1,2,3,5)\n",
           dok ? "ok  " : "FAIL");

    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, concurrent_main, (void *)(intptr_t)i);
    int cok = 1;
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(th[i], &r);
        cok &= (int)(intptr_t)r;
    }
    int serial = !atomic_load(&g_overlap);
    CHECK(cok && serial, "pool concurrency: coverage %d serialized %d", cok, serial);
    printf("%s pool    concurrent     two caller threads x 200 jobs (static and dynamic), correct and serialized\n",
           cok && serial ? "ok  " : "FAIL");
}

int main(void) {
    printf("system: %s\n", braid_system_info());
    test_ref_semantics();
    test_conv_streaming();
    char tested[64] = "";
    for (int32_t isa = BRAID_ISA_REF; isa <= BRAID_ISA_AVX512; isa++) {
        if (!cpu_isa_available(isa)) continue;
        int sel = braid_isa_set(isa) == BRAID_OK && braid_isa_get() == isa && kernels() == cpu_isa_table(isa);
        CHECK(sel, "braid_isa_set(%d)", isa);
        const kernel_table *K = cpu_isa_table(isa);
        test_dense(K);
        test_bt2(K);
        test_batch_invariance(K);
        test_elementwise(K);
        test_rows_kernels(K);
        test_delta_step(K);
        test_delta_step_bwd(K);
        test_train_elementwise(train_kernels_for(K));
        CHECK(train_kernels_for(K) == train_kernels() && strcmp(train_kernels()->name, K->name) == 0,
              "train_kernels() follows the selected ISA (%s)", K->name);
        strcat(tested, " ");
        strcat(tested, K->name);
    }
    for (int32_t isa = BRAID_ISA_AVX2; isa <= BRAID_ISA_AVX512; isa++)
        if (!cpu_isa_available(isa)) CHECK(braid_isa_set(isa) == BRAID_ERR_UNSUPPORTED, "unsupported isa %d", isa);
    test_pool();
    printf("isa tested:%s\n", tested);
    return harness_finish("test_kernels");
}
