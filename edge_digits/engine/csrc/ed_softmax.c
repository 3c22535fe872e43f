/*
 * ed_softmax.c - SOFTMAX int8 -> int8, as TFLM's reference quantized Softmax.
 *
 * The scaled input differences are Q5.26 fixed point; exp() of them is
 * gemmlowp's exp_on_negative_values (a Taylor polynomial on [-1/4, 0) and a
 * barrel shifter of exp(-2^k) constants), the sum is Q12.19, and its
 * reciprocal comes from gemmlowp's Newton-Raphson one_over_one_plus_x. The
 * multipliers and diff_min were precomputed at generation time the way
 * TFLM's Prepare does; everything here is integer.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

#define ED_SCALED_DIFF_INT_BITS 5
#define ED_ACCUM_INT_BITS 12
#define ED_Q0_ONE ED_INT32_MAX

static int32_t ed_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0.31. */
static int32_t ed_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668;      /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + ((int32_t)1 << 28);       /* a + 1/8 */
    const int32_t x2 = ed_srdhm(x, x);
    const int32_t x3 = ed_srdhm(x2, x);
    const int32_t x4 = ed_srdhm(x2, x2);
    const int32_t x4_over_4 = ed_rdbpot(x4, 2);
    const int32_t poly = ed_rdbpot(ed_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + ed_srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26; result in Q0.31. */
static int32_t ed_exp_on_negative_values(int32_t a)
{
    static const int32_t multipliers[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242
    };
    const int32_t frac_bits = 31 - ED_SCALED_DIFF_INT_BITS;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_quarter = (a & mask) - one_quarter;
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    int32_t result = ed_exp_quarter(ed_sat_shl(a_mod_quarter_minus_quarter, ED_SCALED_DIFF_INT_BITS));
    int k;
    for (k = 0; k < 7; ++k) {
        if (remainder & ((int32_t)1 << (frac_bits - 2 + k))) {
            result = ed_srdhm(result, multipliers[k]);
        }
    }
    return a == 0 ? ED_Q0_ONE : result;
}

/* 1 / (1 + x) for x in [0, 1) in Q0.31, by three Newton-Raphson steps in Q2.29. */
static int32_t ed_one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = ed_rounding_half_sum(a, ED_Q0_ONE);
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t q2_one = (int32_t)1 << 29;
    int32_t x = constant_48_over_17 + ed_srdhm(half_denominator, constant_neg_32_over_17);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = ed_srdhm(half_denominator, x);
        const int32_t one_minus = q2_one - half_denominator_times_x;
        x = x + ed_sat_shl(ed_srdhm(x, one_minus), 2);
    }
    return ed_sat_shl(x, 1);
}

static int ed_clz32(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

void ed_softmax(const ed_softmax_params *p, const int8_t *input, int8_t *output)
{
    int32_t r, c;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *x = input + r * p->depth;
        int8_t *y = output + r * p->depth;
        int32_t max_in_row = -128;
        int32_t sum_of_exps = 0;
        int headroom_plus_one;
        int num_bits_over_unit;
        int32_t shifted_sum_minus_one;
        int32_t shifted_scale;
        for (c = 0; c < p->depth; ++c) {
            max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
        }
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = ed_mbqm_gt_one(diff, p->input_multiplier, (int)p->input_left_shift);
                sum_of_exps += ed_rdbpot(ed_exp_on_negative_values(scaled), ED_ACCUM_INT_BITS);
            }
        }
        headroom_plus_one = ed_clz32((uint32_t)sum_of_exps);
        num_bits_over_unit = ED_ACCUM_INT_BITS - headroom_plus_one;
        shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
        shifted_scale = ed_one_over_one_plus_x(shifted_sum_minus_one);
        for (c = 0; c < p->depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t scaled = ed_mbqm_gt_one(diff, p->input_multiplier, (int)p->input_left_shift);
                const int32_t exp_in_0 = ed_exp_on_negative_values(scaled);
                const int32_t unsat = ed_rdbpot(ed_srdhm(shifted_scale, exp_in_0), num_bits_over_unit + 31 - 8);
                y[c] = (int8_t)ed_clamp(unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
}
