/*
 * ed_dwconv.c - DEPTHWISE_CONV_2D, int8 per-channel, as TFLM's reference
 * DepthwiseConvPerChannel: output channel ic * depth_mult + m reads input
 * channel ic, weights laid out [1][k_h][k_w][out_c].
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

void ed_dwconv2d(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
                 const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                 int8_t *output)
{
    const int32_t in_c = p->in_c;
    const int32_t out_c = p->out_c;
    int32_t oy, ox, ic, m, ky, kx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
        const int32_t ky_hi = p->in_h - iy0 < p->k_h ? p->in_h - iy0 : p->k_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
            const int32_t kx_hi = p->in_w - ix0 < p->k_w ? p->in_w - ix0 : p->k_w;
            for (ic = 0; ic < in_c; ++ic) {
                for (m = 0; m < p->depth_mult; ++m) {
                    const int32_t oc = ic * p->depth_mult + m;
                    int32_t acc = 0;
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0) * in_c + ic;
                        const int8_t *w = weights + ky * p->k_w * out_c + oc;
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            acc += (int32_t)w[kx * out_c] * ((int32_t)x[kx * in_c] + p->in_offset);
                        }
                    }
                    if (bias) {
                        acc += bias[oc];
                    }
                    acc = ed_mbqm(acc, multiplier[oc], shift[oc]) + p->out_offset;
                    output[oc] = (int8_t)ed_clamp(acc, p->act_min, p->act_max);
                }
            }
            output += out_c;
        }
    }
}
