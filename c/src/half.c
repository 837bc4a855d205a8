/*
 * half.c — IEEE 754 binary16 <-> binary32, bit-exact (round to nearest even),
 * matching the F16C instructions the SIMD kernels use.
 */
#include <string.h>

#include "kernels.h"

float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {                       /* inf / nan (quiet the nan as F16C does) */
        bits = sign | 0x7f800000u | (mant << 13) | (mant ? 0x00400000u : 0);
    } else if (exp != 0) {                   /* normal */
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {                  /* zero */
        bits = sign;
    } else {                                 /* subnormal: normalise */
        int e = -1;
        do {
            e++;
            mant <<= 1;
        } while (!(mant & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t mant = x & 0x7fffff;
    if (exp == 0xff) /* inf / nan: keep the top payload bits, force quiet */
        return sign | 0x7c00 | (mant ? (uint16_t)(0x200 | (mant >> 13)) : 0);
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 0x1f) return sign | 0x7c00; /* overflow to inf */
    if (e <= 0) {                        /* subnormal half or zero */
        if (e < -10) return sign;        /* too small even to round up */
        mant |= 0x800000;                /* implicit bit */
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t q = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t q = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; /* may carry into exp, up to inf: correct */
    return sign | (uint16_t)q;
}
