/*
 * test_sgemm.c — sgemm (c/src/sgemm.h) on every ISA this CPU supports
 * against sgemm_ref, and sgemm_ref against hand-computed products.
 *
 * Tolerance (stated once): for each element,
 *   |got - ref| <= TOL * (K + 4) * (|alpha| * sum_k |a_ik b_kj| + |beta c_ij|)
 * with the sum in double. fp32 summation of K products is off by at most
 * ~K * 6e-8 of that sum (worst case, any order), so TOL = 1e-6 leaves a 16x
 * margin yet still catches a wrong or missing term, which moves an element by
 * about |a b| ~ sum / K (while 1e-6 * K^2 << 1: the shapes here have K <= 300).
 * Exact checks: small-integer data (every product and partial sum is an
 * integer below 2^24, so any summation order gives the same float) must give
 * sgemm_ref's bits; beta = 0 must ignore NaN in C; the padding between the
 * row width and the leading dimension holds NaN in A and B (a read that
 * reaches C shows) and a sentinel in C (must not be written); results must be bit-identical
 * for 1, 2 and 3 threads and from run to run.
 * Prints one line per ISA and transpose combination; exits non-zero on any failure.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "harness.h"
#include "kernels.h"
#include "sgemm.h"
#include "threadpool.h"

#define TOL 1e-6
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const int64_t EDGE[] = {1, 3, 17, 31, 33, 64, 100, 255, 257};
static const float ALPHA_BETA[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-1.5f, 0.25f}};
static const char *const TRANS_NAME[4] = {"NN", "NT", "TN", "TT"};
static const float C_SENTINEL = 12345.0f;

static void *xalloc(size_t bytes) {
    void *p = aligned_alloc64(bytes);
    if (!p) {
        printf("FAIL out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

/* A stored matrix [rows, cols] with row stride ld >= cols; the padding holds pad. */
typedef struct {
    float *v;
    int64_t rows, cols, ld;
} mat;

static mat mat_new(int64_t rows, int64_t cols, int64_t ld, float pad) {
    mat m = {xalloc(sizeof(float) * (size_t)(rows * ld)), rows, cols, ld};
    for (int64_t i = 0; i < rows * ld; i++) m.v[i] = pad;
    return m;
}
static void mat_fill_uniform(mat m) { /* in [-1, 1) */
    for (int64_t i = 0; i < m.rows; i++)
        for (int64_t j = 0; j < m.cols; j++) m.v[i * m.ld + j] = rng_uniform(-1.0f, 1.0f);
}
static void mat_fill_int(mat m, int lim) { /* integers in [-lim, lim] */
    for (int64_t i = 0; i < m.rows; i++)
        for (int64_t j = 0; j < m.cols; j++) m.v[i * m.ld + j] = (float)((int64_t)(rng_u64() % (2 * lim + 1)) - lim);
}
static mat mat_copy(mat m) {
    mat c = {xalloc(sizeof(float) * (size_t)(m.rows * m.ld)), m.rows, m.cols, m.ld};
    memcpy(c.v, m.v, sizeof(float) * (size_t)(m.rows * m.ld));
    return c;
}
static void mat_free(mat m) { aligned_free(m.v); }

/* One problem: op(A) [M,K], op(B) [K,N], C [M,N], each stored with a padded leading dimension. */
typedef struct {
    int ta, tb;
    int64_t M, N, K;
    float alpha, beta;
    mat A, B, C0; /* C0: C before the call */
} problem;

static int64_t pad_ld(int64_t width) {
    static const int64_t PAD[] = {0, 0, 1, 5, 16};
    return width + PAD[rng_u64() % COUNT(PAD)];
}

static problem problem_new(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
    problem p = {ta, tb, M, N, K, alpha, beta, {0}, {0}, {0}};
    int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    p.A = mat_new(ar, ac, pad_ld(ac), NAN);
    p.B = mat_new(br, bc, pad_ld(bc), NAN);
    p.C0 = mat_new(M, N, pad_ld(N), C_SENTINEL);
    mat_fill_uniform(p.A);
    mat_fill_uniform(p.B);
    mat_fill_uniform(p.C0);
    return p;
}
static void problem_free(problem p) { mat_free(p.A), mat_free(p.B), mat_free(p.C0); }

static void run(const problem *p, mat C, int use_ref) {
    (use_ref ? sgemm_ref : sgemm)(p->ta, p->tb, p->M, p->N, p->K, p->alpha, p->A.v, p->A.ld, p->B.v, p->B.ld,
                                  p->beta, C.v, C.ld);
}

static float op_el(const mat *X, int trans, int64_t r, int64_t c) {
    return trans ? X->v[c * X->ld + r] : X->v[r * X->ld + c];
}

/* tol[M*N]: the tolerance of each element (see the top of the file). The sums
 * run over contiguous copies |op(A)| [M,K] and |op(B)|^T [N,K]. */
static double *tolerances(const problem *p) {
    double *tol = xalloc(sizeof(double) * (size_t)(p->M * p->N));
    float *a = xalloc(sizeof(float) * (size_t)(p->M * p->K)), *bt = xalloc(sizeof(float) * (size_t)(p->N * p->K));
    for (int64_t i = 0; i < p->M; i++)
        for (int64_t k = 0; k < p->K; k++) a[i * p->K + k] = fabsf(op_el(&p->A, p->ta, i, k));
    for (int64_t j = 0; j < p->N; j++)
        for (int64_t k = 0; k < p->K; k++) bt[j * p->K + k] = fabsf(op_el(&p->B, p->tb, k, j));
    for (int64_t i = 0; i < p->M; i++)
        for (int64_t j = 0; j < p->N; j++) {
            double mag = 0;
            for (int64_t k = 0; k < p->K; k++) mag += (double)a[i * p->K + k] * (double)bt[j * p->K + k];
            tol[i * p->N + j] = TOL * (double)(p->K + 4) *
                                (fabs((double)p->alpha) * mag + fabs((double)p->beta * p->C0.v[i * p->C0.ld + j]));
        }
    aligned_free(a), aligned_free(bt);
    return tol;
}

/* Worst element error of C against ref, as a multiple of its tolerance (<= 1 passes; NaN fails);
 * a C padding that lost its sentinel counts as infinite error. */
static double err_ratio(const problem *p, const double *tol, mat C, mat ref) {
    double worst = 0;
    for (int64_t i = 0; i < p->M; i++) {
        for (int64_t j = 0; j < p->N; j++) {
            double t = tol[i * p->N + j] > 0 ? tol[i * p->N + j] : 1e-30;
            double e = fabs((double)C.v[i * C.ld + j] - (double)ref.v[i * ref.ld + j]) / t;
            if (!(e <= worst)) worst = e; /* NaN sticks */
        }
        for (int64_t j = p->N; j < C.ld; j++)
            if (C.v[i * C.ld + j] != C_SENTINEL) worst = INFINITY;
    }
    return worst;
}

/* ---- sgemm_ref against hand-computed products --------------------------------------- */

static void test_ref_semantics(void) {
    /* op(A) = [[1,2,3],[4,5,6]], op(B) = [[1,0],[2,-1],[0,3]]: op(A) op(B) = [[5,7],[14,13]] */
    static const float A_N[6] = {1, 2, 3, 4, 5, 6}, A_T[6] = {1, 4, 2, 5, 3, 6};
    static const float B_N[6] = {1, 0, 2, -1, 0, 3}, B_T[6] = {1, 2, 0, 0, -1, 3};
    static const float WANT[4] = {2 * 5 + 10, 2 * 7 + 20, 2 * 14 + 30, 2 * 13 + 40}; /* alpha 2, beta 1, C0 10..40 */
    int ok = 1;
    for (int t = 0; t < 4; t++) {
        int ta = t >> 1, tb = t & 1;
        float C[4] = {10, 20, 30, 40};
        sgemm_ref(ta, tb, 2, 2, 3, 2.0f, ta ? A_T : A_N, ta ? 2 : 3, tb ? B_T : B_N, tb ? 3 : 2, 1.0f, C, 2);
        ok &= memcmp(C, WANT, sizeof C) == 0;
        float Z[4] = {NAN, NAN, NAN, NAN};
        sgemm_ref(ta, tb, 2, 2, 3, 1.0f, ta ? A_T : A_N, ta ? 2 : 3, tb ? B_T : B_N, tb ? 3 : 2, 0.0f, Z, 2);
        ok &= Z[0] == 5 && Z[1] == 7 && Z[2] == 14 && Z[3] == 13;
    }
    float C[2] = {3, NAN};
    sgemm_ref(0, 0, 1, 1, 0, 1.0f, NULL, 1, NULL, 1, 2.0f, C, 2); /* K = 0: C = beta C, A and B unread */
    ok &= C[0] == 6 && isnan(C[1]);
    CHECK(ok, "sgemm_ref: hand-computed 2x3 x 3x2 products, all transposes, K = 0");
    printf("%s ref     sgemm_ref  hand-computed products (NN NT TN TT), beta 0 over NaN, K = 0\n",
           ok ? "ok  " : "FAIL");
}

/* ---- sgemm of one ISA against sgemm_ref ------------------------------------------------ */

typedef struct {
    int64_t M, N, K;
} shape;

/* Every edge size in every role, plus random combinations under a work cap (keeps the test fast). */
static int make_shapes(shape *s, int cap) {
    int n = 0;
    for (int i = 0; i < COUNT(EDGE); i++) {
        s[n++] = (shape){EDGE[i], 33, 17};
        s[n++] = (shape){17, EDGE[i], 31};
        s[n++] = (shape){31, 17, EDGE[i]};
    }
    while (n < cap) {
        shape t = {EDGE[rng_u64() % COUNT(EDGE)], EDGE[rng_u64() % COUNT(EDGE)], EDGE[rng_u64() % COUNT(EDGE)]};
        if (t.M * t.N * t.K <= 2000000) s[n++] = t;
    }
    return n;
}

/* worst[isa][trans] = worst error ratio; exact[isa] = integer data gave sgemm_ref's bits.
 * The last shape spans several column blocks (N > nc_max), K steps (K > kc_max) and A
 * blocks, split over the threads; it runs with alpha 0.5, beta 1 only (C accumulates
 * over the K steps). */
static void test_against_ref(const int32_t *isas, int n_isa, double worst[3][4], int exact[3], int nan_ok[3]) {
    enum { N_SHAPES = 48 };
    shape shapes[N_SHAPES + 1];
    int n_shapes = make_shapes(shapes, N_SHAPES);
    shapes[n_shapes++] = (shape){60, 1030, 300};
    for (int t = 0; t < 4; t++) {
        int ta = t >> 1, tb = t & 1;
        for (int s = 0; s < n_shapes; s++) {
            for (int ab = s == n_shapes - 1 ? 1 : 0; ab < (s == n_shapes - 1 ? 2 : COUNT(ALPHA_BETA)); ab++) {
                problem p = problem_new(ta, tb, shapes[s].M, shapes[s].N, shapes[s].K, ALPHA_BETA[ab][0],
                                        ALPHA_BETA[ab][1]);
                mat ref = mat_copy(p.C0);
                run(&p, ref, 1);
                double *tol = tolerances(&p);
                for (int i = 0; i < n_isa; i++) {
                    braid_isa_set(isas[i]);
                    mat C = mat_copy(p.C0);
                    if (p.beta == 0) /* beta 0: C is write-only, NaN garbage must not leak in */
                        for (int64_t r = 0; r < p.M; r++)
                            for (int64_t c = 0; c < p.N; c++) C.v[r * C.ld + c] = NAN;
                    run(&p, C, 0);
                    double e = err_ratio(&p, tol, C, ref);
                    if (!(e <= worst[isas[i]][t])) worst[isas[i]][t] = e;
                    if (p.beta == 0 && !(e <= 1)) nan_ok[isas[i]] = 0;
                    if (!(e <= 1))
                        CHECK(0, "%s %s M=%lld N=%lld K=%lld alpha=%g beta=%g lda=%lld ldb=%lld ldc=%lld: %.3g x tol",
                              cpu_isa_table(isas[i])->name, TRANS_NAME[t], (long long)p.M, (long long)p.N,
                              (long long)p.K, p.alpha, p.beta, (long long)p.A.ld, (long long)p.B.ld,
                              (long long)p.C0.ld, e);
                    mat_free(C);
                }
                aligned_free(tol);
                mat_free(ref);
                problem_free(p);
            }
        }
        /* small integers: every partial sum is exact, so all ISAs must give sgemm_ref's bits */
        static const shape INT_SHAPES[] = {{37, 45, 300}, {14, 32, 257}, {1, 1, 1}, {100, 3, 33}};
        for (int s = 0; s < COUNT(INT_SHAPES); s++) {
            problem p = problem_new(ta, tb, INT_SHAPES[s].M, INT_SHAPES[s].N, INT_SHAPES[s].K, 1.0f, 1.0f);
            mat_fill_int(p.A, 8), mat_fill_int(p.B, 8), mat_fill_int(p.C0, 100);
            mat ref = mat_copy(p.C0);
            run(&p, ref, 1);
            for (int i = 0; i < n_isa; i++) {
                braid_isa_set(isas[i]);
                mat C = mat_copy(p.C0);
                run(&p, C, 0);
                int same = memcmp(C.v, ref.v, sizeof(float) * (size_t)(C.rows * C.ld)) == 0;
                CHECK(same, "%s %s integer data M=%lld N=%lld K=%lld: not sgemm_ref's bits",
                      cpu_isa_table(isas[i])->name, TRANS_NAME[t], (long long)p.M, (long long)p.N, (long long)p.K);
                exact[isas[i]] &= same;
                mat_free(C);
            }
            mat_free(ref);
            problem_free(p);
        }
    }
}

/* ---- bit-identity over thread counts and runs ---------------------------------------------- */

/* Shapes big enough that sgemm splits them over 2 and 3 threads (>= 10 MFLOP per thread),
 * with edges in every dimension, several K steps and several column blocks. */
static int test_threads(int32_t isa) {
    static const shape SHAPES[] = {{300, 200, 513}, {97, 1100, 300}, {1000, 45, 257}};
    static const int32_t THREADS[] = {1, 2, 3};
    braid_isa_set(isa);
    int ok = 1;
    for (int t = 0; t < 4; t++) {
        for (int s = 0; s < COUNT(SHAPES); s++) {
            problem p = problem_new(t >> 1, t & 1, SHAPES[s].M, SHAPES[s].N, SHAPES[s].K, 0.5f, 1.0f);
            mat first = mat_copy(p.C0);
            pool_init(THREADS[0]);
            run(&p, first, 0);
            for (int i = 0; i < COUNT(THREADS) + 1; i++) { /* the last pass repeats 2 threads: run to run */
                pool_init(THREADS[i % COUNT(THREADS)]);
                mat C = mat_copy(p.C0);
                run(&p, C, 0);
                int same = memcmp(C.v, first.v, sizeof(float) * (size_t)(C.rows * C.ld)) == 0;
                CHECK(same, "%s %s M=%lld N=%lld K=%lld: %d threads differ from 1 thread", cpu_isa_table(isa)->name,
                      TRANS_NAME[t], (long long)p.M, (long long)p.N, (long long)p.K, pool_threads());
                ok &= same;
                mat_free(C);
            }
            mat_free(first);
            problem_free(p);
        }
    }
    pool_init(0);
    return ok;
}

int main(void) {
    printf("system: %s\n", braid_system_info());
    test_ref_semantics();

    int32_t isas[3];
    int n_isa = 0;
    char tested[64] = "";
    for (int32_t isa = BRAID_ISA_REF; isa <= BRAID_ISA_AVX512; isa++) {
        if (!cpu_isa_available(isa)) continue;
        CHECK(braid_isa_set(isa) == BRAID_OK && braid_isa_get() == isa, "braid_isa_set(%d)", isa);
        isas[n_isa++] = isa;
        strcat(tested, " ");
        strcat(tested, cpu_isa_table(isa)->name);
    }
    double worst[3][4] = {{0}};
    int exact[3] = {1, 1, 1}, nan_ok[3] = {1, 1, 1};
    test_against_ref(isas, n_isa, worst, exact, nan_ok);
    for (int i = 0; i < n_isa; i++) {
        int32_t isa = isas[i];
        const char *name = cpu_isa_table(isa)->name;
        for (int t = 0; t < 4; t++)
            printf("%s %-7s sgemm %s     worst error %.3f of tolerance (edge and multi-block shapes, padded ld)\n",
                   worst[isa][t] <= 1 ? "ok  " : "FAIL", name, TRANS_NAME[t], worst[isa][t]);
        printf("%s %-7s sgemm exact  integer data gives sgemm_ref's bits\n", exact[isa] ? "ok  " : "FAIL", name);
        printf("%s %-7s sgemm nan    beta 0 ignores NaN in C\n", nan_ok[isa] ? "ok  " : "FAIL", name);
        int th = test_threads(isa);
        printf("%s %-7s sgemm threads bit-identical with 1, 2, 3 threads and run to run\n", th ? "ok  " : "FAIL",
               name);
    }
    printf("isa tested:%s\n", tested);
    return harness_finish("test_sgemm");
}
