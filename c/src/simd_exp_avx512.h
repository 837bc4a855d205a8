/*
 * simd_exp_avx512.h — e^x for 16 float lanes, shared by the AVX-512 inference kernels
 * (kernels_avx512.c: softmax, SiLU) and the trainer's (kernels_train_avx512.c), so both
 * compute the same exponential. Include only from files built with AVX-512 enabled.
 */
#ifndef BRAID_SIMD_EXP_AVX512_H
#define BRAID_SIMD_EXP_AVX512_H

#include <immintrin.h>

/* e^x for 16 lanes: x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts), e^r by Cephes' expf
 * polynomial (~1-2 ulp), 2^n by scalef, which also rounds the underflow to denormals/0 and overflows
 * to inf as expf does. The clamp keeps n finite; x is the second operand of min/max so NaN passes. */
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-104.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), x));
    const __m512 n =
        _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

#endif /* BRAID_SIMD_EXP_AVX512_H */
