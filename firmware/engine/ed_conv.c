/*
 * ed_conv.c - CONV_2D, int8 per-channel, as TFLM's reference ConvPerChannel.
 *
 * For one output pixel the valid kernel columns of one kernel row and all
 * input channels form one contiguous run in both the input and the weights,
 * so the inner loop is a plain dot product; padded taps are skipped, which is
 * what TFLM does (they contribute nothing).
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

void ed_conv2d(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
               const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
               int8_t *output)
{
    const int32_t in_c = p->in_c;
    const int16_t in_offset = (int16_t)p->in_offset;
    const int32_t filter_size = p->k_h * p->k_w * in_c;
    int32_t oy, ox, oc, ky;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
        const int32_t ky_hi = p->in_h - iy0 < p->k_h ? p->in_h - iy0 : p->k_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
            const int32_t kx_hi = p->in_w - ix0 < p->k_w ? p->in_w - ix0 : p->k_w;
            const int32_t run = (kx_hi - kx_lo) * in_c;
            for (oc = 0; oc < p->out_c; ++oc) {
                const int8_t *w_oc = weights + oc * filter_size;
                int32_t acc = 0;
                for (ky = ky_lo; ky < ky_hi; ++ky) {
                    const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0 + kx_lo) * in_c;
                    const int8_t *w = w_oc + (ky * p->k_w + kx_lo) * in_c;
                    acc += ed_dot_offset(x, w, run, in_offset);
                }
                if (bias) {
                    acc += bias[oc];
                }
                acc = ed_mbqm(acc, multiplier[oc], shift[oc]) + p->out_offset;
                *output++ = (int8_t)ed_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
}
