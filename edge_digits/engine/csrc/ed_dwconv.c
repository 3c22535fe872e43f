/*
 * ed_dwconv.c - DEPTHWISE_CONV_2D, int8 per-channel, as TFLM's reference
 * DepthwiseConvPerChannel: output channel ic * depth_mult + m reads input
 * channel ic, weights laid out [1][k_h][k_w][out_c].
 *
 * With depth multiplier 1 (the common case) channels are processed in blocks
 * of ED_DW_BLOCK (a full block has a constant trip count): the block's accumulators stay in registers while the valid
 * taps are visited once, and the inner loop runs over contiguous channels.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

#define ED_DW_BLOCK 8

void ed_dwconv2d(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
                 const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                 int8_t *output)
{
    const int32_t in_c = p->in_c;
    const int32_t out_c = p->out_c;
    const int16_t in_offset = (int16_t)p->in_offset;
    int32_t oy, ox, ic, m, ky, kx, j;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
        const int32_t ky_hi = p->in_h - iy0 < p->k_h ? p->in_h - iy0 : p->k_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
            const int32_t kx_hi = p->in_w - ix0 < p->k_w ? p->in_w - ix0 : p->k_w;
            if (p->depth_mult == 1) {
                int32_t c0;
                for (c0 = 0; c0 < out_c; c0 += ED_DW_BLOCK) {
                    const int32_t n = out_c - c0 < ED_DW_BLOCK ? out_c - c0 : ED_DW_BLOCK;
                    int32_t acc[ED_DW_BLOCK] = {0};
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            const int8_t *x = input + ((iy0 + ky) * p->in_w + ix0 + kx) * in_c + c0;
                            const int8_t *w = weights + (ky * p->k_w + kx) * out_c + c0;
                            if (n == ED_DW_BLOCK) {
                                for (j = 0; j < ED_DW_BLOCK; ++j) {
                                    acc[j] += (int32_t)(int16_t)(x[j] + in_offset) * (int32_t)w[j];
                                }
                            } else {
                                for (j = 0; j < n; ++j) {
                                    acc[j] += (int32_t)(int16_t)(x[j] + in_offset) * (int32_t)w[j];
                                }
                            }
                        }
                    }
                    for (j = 0; j < n; ++j) {
                        const int32_t oc = c0 + j;
                        output[oc] = ed_requant(acc[j], bias[oc], multiplier[oc], shift[oc], p->out_offset,
                                                p->act_min, p->act_max);
                    }
                }
            } else {
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
                        output[oc] = ed_requant(acc, bias[oc], multiplier[oc], shift[oc], p->out_offset,
                                                p->act_min, p->act_max);
                    }
                }
            }
            output += out_c;
        }
    }
}
