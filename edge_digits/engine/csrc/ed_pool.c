/*
 * ed_pool.c - MAX_POOL_2D and AVERAGE_POOL_2D on int8, as TFLM's reference
 * integer pooling: only taps inside the input count, the average divides by
 * the number of such taps rounding half away from zero, and the fused
 * activation clamps the result.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"
#include "ed_simd.h"

#define ED_POOL_BLOCK 8

/* The taps [lo, hi) of a window starting at input position start (may be negative) that lie inside. */
static void ed_pool_taps(int32_t start, int32_t in_size, int32_t f, int32_t *lo, int32_t *hi)
{
    *lo = start < 0 ? -start : 0;
    *hi = in_size - start < f ? in_size - start : f;
}

#if defined(ED_SIMD_DSP) && !defined(ED_SIMD_MVE)
/* Per byte, the larger (smaller) of a and b as signed int8: SSUB8 sets each lane's GE flag where a >= b,
 * SEL takes those lanes from its first operand (one asm block, so nothing comes between flags and use). */
static inline uint32_t ed_max4(uint32_t a, uint32_t b)
{
    uint32_t diff, r;
    __asm__("ssub8 %0, %2, %3\n\tsel %1, %2, %3" : "=&r"(diff), "=r"(r) : "r"(a), "r"(b) : "cc");
    (void)diff;
    return r;
}

static inline uint32_t ed_min4(uint32_t a, uint32_t b)
{
    uint32_t diff, r;
    __asm__("ssub8 %0, %2, %3\n\tsel %1, %3, %2" : "=&r"(diff), "=r"(r) : "r"(a), "r"(b) : "cc");
    (void)diff;
    return r;
}

/* Four channels per instruction: the max over the window, then the activation clamp, bytewise. */
static void ed_maxpool2d_dsp(const ed_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t c = p->c;
    const uint32_t lo = ((uint32_t)p->act_min & 0xFFu) * 0x01010101u;
    const uint32_t hi = ((uint32_t)p->act_max & 0xFFu) * 0x01010101u;
    int32_t oy, ox, ky, kx, j, ky_lo, ky_hi, kx_lo, kx_hi;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        ed_pool_taps(iy0, p->in_h, p->f_h, &ky_lo, &ky_hi);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            ed_pool_taps(ix0, p->in_w, p->f_w, &kx_lo, &kx_hi);
            for (j = 0; j < c; j += 4) {
                uint32_t m = 0x80808080u;
                for (ky = ky_lo; ky < ky_hi; ++ky) {
                    const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0) * c + j;
                    for (kx = kx_lo; kx < kx_hi; ++kx) {
                        m = ed_max4(ed_ld32(x + kx * c), m);
                    }
                }
                m = ed_max4(m, lo);
                ed_st32(output + j, ed_min4(m, hi));
            }
            output += c;
        }
    }
}
#endif

#if defined(ED_SIMD_MVE)
/* Sixteen channels per instruction (VMAX.S8), the last chunk predicated, then the activation clamp. */
static void ed_maxpool2d_mve(const ed_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t c = p->c;
    const int8x16_t lo = vdupq_n_s8((int8_t)p->act_min);
    const int8x16_t hi = vdupq_n_s8((int8_t)p->act_max);
    int32_t oy, ox, ky, kx, j, ky_lo, ky_hi, kx_lo, kx_hi;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        ed_pool_taps(iy0, p->in_h, p->f_h, &ky_lo, &ky_hi);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            ed_pool_taps(ix0, p->in_w, p->f_w, &kx_lo, &kx_hi);
            for (j = 0; j < c; j += 16) {
                const mve_pred16_t pr = vctp8q((uint32_t)(c - j));
                int8x16_t m = vdupq_n_s8(-128);
                for (ky = ky_lo; ky < ky_hi; ++ky) {
                    const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0) * c + j;
                    for (kx = kx_lo; kx < kx_hi; ++kx) {
                        m = vmaxq_s8(m, vldrbq_z_s8(x + kx * c, pr));
                    }
                }
                vstrbq_p_s8(output + j, vminq_s8(vmaxq_s8(m, lo), hi), pr);
            }
            output += c;
        }
    }
}
#endif

/* The max of int8 values needs no wider accumulator: each output pixel is updated in place, one tap's
 * contiguous channels at a time (a loop compilers vectorize), then clamped. */
void ed_maxpool2d(const ed_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t c = p->c;
    int32_t oy, ox, ky, kx, j, ky_lo, ky_hi, kx_lo, kx_hi;
#if defined(ED_SIMD_MVE)
    ed_maxpool2d_mve(p, input, output);
    return;
#elif defined(ED_SIMD_DSP)
    if (c % 4 == 0) {
        ed_maxpool2d_dsp(p, input, output);
        return;
    }
#endif
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        ed_pool_taps(iy0, p->in_h, p->f_h, &ky_lo, &ky_hi);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            ed_pool_taps(ix0, p->in_w, p->f_w, &kx_lo, &kx_hi);
            for (j = 0; j < c; ++j) {
                output[j] = -128;
            }
            for (ky = ky_lo; ky < ky_hi; ++ky) {
                for (kx = kx_lo; kx < kx_hi; ++kx) {
                    const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0 + kx) * c;
                    for (j = 0; j < c; ++j) {
                        output[j] = x[j] > output[j] ? x[j] : output[j];
                    }
                }
            }
            for (j = 0; j < c; ++j) {
                output[j] = (int8_t)ed_clamp(output[j], p->act_min, p->act_max);
            }
            output += c;
        }
    }
}

/* Sums in int32, channels in blocks of ED_POOL_BLOCK so each tap visit covers contiguous channels. */
void ed_avgpool2d(const ed_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t c = p->c;
    int32_t oy, ox, c0, ky, kx, j, ky_lo, ky_hi, kx_lo, kx_hi;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        ed_pool_taps(iy0, p->in_h, p->f_h, &ky_lo, &ky_hi);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            int32_t count;
            ed_pool_taps(ix0, p->in_w, p->f_w, &kx_lo, &kx_hi);
            count = (ky_hi - ky_lo) * (kx_hi - kx_lo);
            for (c0 = 0; c0 < c; c0 += ED_POOL_BLOCK) {
                const int32_t n = c - c0 < ED_POOL_BLOCK ? c - c0 : ED_POOL_BLOCK;
                int32_t acc[ED_POOL_BLOCK] = {0};
                for (ky = ky_lo; ky < ky_hi; ++ky) {
                    for (kx = kx_lo; kx < kx_hi; ++kx) {
                        const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0 + kx) * c + c0;
                        for (j = 0; j < n; ++j) {
                            acc[j] += x[j];
                        }
                    }
                }
                for (j = 0; j < n; ++j) {
                    const int32_t v = acc[j] > 0 ? (acc[j] + count / 2) / count : (acc[j] - count / 2) / count;
                    output[c0 + j] = (int8_t)ed_clamp(v, p->act_min, p->act_max);
                }
            }
            output += c;
        }
    }
}
