/*
 * ed_fixedpoint.h - the one place for the engine's fixed-point arithmetic.
 *
 * These helpers reproduce, bit for bit, the integer arithmetic of the
 * TensorFlow Lite Micro reference kernels (the "double rounding" variant the
 * tflite_micro runtime is built with): a saturating rounding doubling high
 * multiply followed by a rounding divide by a power of two. Every kernel of
 * the engine requantizes through these functions so results match TFLM.
 */
#ifndef ED_FIXEDPOINT_H
#define ED_FIXEDPOINT_H

#include <stdint.h>

/* Inlined even at -Os: the requantization runs once per output value, inside every kernel's loop. */
#if defined(__GNUC__)
#define ED_HOT_INLINE static inline __attribute__((always_inline))
#else
#define ED_HOT_INLINE static inline
#endif

#define ED_INT32_MIN ((int32_t)(-2147483647 - 1))
#define ED_INT32_MAX ((int32_t)2147483647)

/* Shift left without signed-overflow undefined behaviour (wraps like TFLM's int32 code). */
ED_HOT_INLINE int32_t ed_shl(int32_t x, int s)
{
    return (int32_t)((uint32_t)x << s);
}

/* round(a * b / 2^31) with ties away from zero; the only overflow case saturates. */
static inline int32_t ed_srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == ED_INT32_MIN) {
        return ED_INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/*
 * x / 2^exponent rounded to nearest, ties away from zero (0 <= exponent <= 31):
 * TFLM's RoundingDivideByPOT, in its own 32-bit form (mask, remainder,
 * threshold), which never overflows and needs no 64-bit arithmetic.
 */
ED_HOT_INLINE int32_t ed_rdbpot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/*
 * x * multiplier * 2^shift with multiplier a Q31 fraction, as TFLM requantizes
 * (MultiplyByQuantizedMultiplier). The generator only emits multipliers >= 0,
 * so the one overflow case of ed_srdhm (both factors INT32_MIN) cannot occur.
 * ed_srdhm's (ab + nudge) / 2^31, truncated, is the same integer as
 * floor((ab + 2^30) / 2^31) for every ab (for ab < 0 the nudge is 1 - 2^30 and
 * truncation is floor after adding 2^31 - 1), so it is one arithmetic shift:
 * SMULL, a 64-bit add and a shift on Arm.
 */
ED_HOT_INLINE int32_t ed_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? (int)shift : 0;
    const int right = shift > 0 ? 0 : (int)-shift;
    const int64_t ab = (int64_t)ed_shl(x, left) * (int64_t)multiplier;
    return ed_rdbpot((int32_t)((ab + ((int64_t)1 << 30)) >> 31), right);
}

/* Requantize an accumulator to int8: bias, multiplier and shift of one channel, offset, clamp. */
ED_HOT_INLINE int8_t ed_requant(int32_t acc, int32_t bias, int32_t multiplier, int32_t shift,
                                int32_t out_offset, int32_t act_min, int32_t act_max)
{
    const int32_t v = ed_mbqm(acc + bias, multiplier, shift) + out_offset;
    return (int8_t)(v < act_min ? act_min : (v > act_max ? act_max : v));
}

/* The multiply for multipliers above one (softmax input scaling): no right shift. */
static inline int32_t ed_mbqm_gt_one(int32_t x, int32_t multiplier, int left_shift)
{
    return ed_srdhm(ed_shl(x, left_shift), multiplier);
}

/* gemmlowp's saturating x * 2^exponent for 0 < exponent < 31. */
static inline int32_t ed_sat_shl(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)(((int32_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return ED_INT32_MAX;
    }
    if (x < -threshold) {
        return ED_INT32_MIN;
    }
    return ed_shl(x, exponent);
}

/*
 * sum of w[i] * (x[i] + offset): the inner loop of conv and fully connected.
 * Both factors fit in int16 (|x + offset| <= 255), written so that compilers
 * vectorize it as a 16-bit multiply-add into 32-bit sums (pmaddwd, SMLAD).
 */
static inline int32_t ed_dot_offset(const int8_t *x, const int8_t *w, int32_t n, int16_t offset)
{
    int32_t acc = 0;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int16_t xv = (int16_t)(x[i] + offset);
        const int16_t wv = w[i];
        acc += (int32_t)xv * (int32_t)wv;
    }
    return acc;
}

/* sum of patch[i] * w[i]: the conv inner loop over a gathered int16 patch. */
static inline int32_t ed_dot16(const int16_t *patch, const int8_t *w, int32_t n)
{
    int32_t acc = 0;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int16_t wv = w[i];
        acc += (int32_t)patch[i] * (int32_t)wv;
    }
    return acc;
}

static inline int32_t ed_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

#endif /* ED_FIXEDPOINT_H */
