/*
 * ed_pool.c - MAX_POOL_2D and AVERAGE_POOL_2D on int8, as TFLM's reference
 * integer pooling: only taps inside the input count, the average divides by
 * the number of such taps rounding half away from zero, and the fused
 * activation clamps the result.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

static void ed_pool(const ed_pool_params *p, const int8_t *input, int8_t *output, int is_max)
{
    const int32_t c = p->c;
    int32_t oy, ox, ch, ky, kx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
        const int32_t ky_hi = p->in_h - iy0 < p->f_h ? p->in_h - iy0 : p->f_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
            const int32_t kx_hi = p->in_w - ix0 < p->f_w ? p->in_w - ix0 : p->f_w;
            const int32_t count = (ky_hi - ky_lo) * (kx_hi - kx_lo);
            for (ch = 0; ch < c; ++ch) {
                int32_t acc = is_max ? -128 : 0;
                for (ky = ky_lo; ky < ky_hi; ++ky) {
                    const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0) * c + ch;
                    for (kx = kx_lo; kx < kx_hi; ++kx) {
                        const int32_t v = x[kx * c];
                        if (is_max) {
                            acc = v > acc ? v : acc;
                        } else {
                            acc += v;
                        }
                    }
                }
                if (!is_max) {
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                *output++ = (int8_t)ed_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
}

void ed_maxpool2d(const ed_pool_params *p, const int8_t *input, int8_t *output)
{
    ed_pool(p, input, output, 1);
}

void ed_avgpool2d(const ed_pool_params *p, const int8_t *input, int8_t *output)
{
    ed_pool(p, input, output, 0);
}
