/*
 * ed_pool.c - MAX_POOL_2D and AVERAGE_POOL_2D on int8, as TFLM's reference
 * integer pooling: only taps inside the input count, the average divides by
 * the number of such taps rounding half away from zero, and the fused
 * activation clamps the result. Channels are processed in blocks of
 * ED_POOL_BLOCK so each tap visit covers contiguous channels.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

#define ED_POOL_BLOCK 8

static void ed_pool(const ed_pool_params *p, const int8_t *input, int8_t *output, int is_max)
{
    const int32_t c = p->c;
    int32_t oy, ox, c0, ky, kx, j;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
        const int32_t ky_hi = p->in_h - iy0 < p->f_h ? p->in_h - iy0 : p->f_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
            const int32_t kx_hi = p->in_w - ix0 < p->f_w ? p->in_w - ix0 : p->f_w;
            const int32_t count = (ky_hi - ky_lo) * (kx_hi - kx_lo);
            for (c0 = 0; c0 < c; c0 += ED_POOL_BLOCK) {
                const int32_t n = c - c0 < ED_POOL_BLOCK ? c - c0 : ED_POOL_BLOCK;
                int32_t acc[ED_POOL_BLOCK];
                for (j = 0; j < ED_POOL_BLOCK; ++j) {
                    acc[j] = is_max ? -128 : 0;
                }
                for (ky = ky_lo; ky < ky_hi; ++ky) {
                    for (kx = kx_lo; kx < kx_hi; ++kx) {
                        const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0 + kx) * c + c0;
                        if (is_max) {
                            for (j = 0; j < n; ++j) {
                                acc[j] = x[j] > acc[j] ? x[j] : acc[j];
                            }
                        } else {
                            for (j = 0; j < n; ++j) {
                                acc[j] += x[j];
                            }
                        }
                    }
                }
                for (j = 0; j < n; ++j) {
                    int32_t v = acc[j];
                    if (!is_max) {
                        v = v > 0 ? (v + count / 2) / count : (v - count / 2) / count;
                    }
                    output[c0 + j] = (int8_t)ed_clamp(v, p->act_min, p->act_max);
                }
            }
            output += c;
        }
    }
}

/* The max of int8 values needs no wider accumulator: each output pixel is updated in place, one tap's
 * contiguous channels at a time (a loop compilers vectorize), then clamped. */
void ed_maxpool2d(const ed_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t c = p->c;
    int32_t oy, ox, ky, kx, j;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
        const int32_t ky_hi = p->in_h - iy0 < p->f_h ? p->in_h - iy0 : p->f_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
            const int32_t kx_hi = p->in_w - ix0 < p->f_w ? p->in_w - ix0 : p->f_w;
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

void ed_avgpool2d(const ed_pool_params *p, const int8_t *input, int8_t *output)
{
    ed_pool(p, input, output, 0);
}
