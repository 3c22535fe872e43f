/*
 * ed_conv.c - CONV_2D, int8 per-channel, as TFLM's reference ConvPerChannel.
 *
 * For each output pixel the receptive field is gathered once into an int16
 * patch of (input + input offset), with 0 for padded taps (TFLM skips them,
 * which adds the same nothing). Every output channel is then one contiguous
 * dot product of the patch with that channel's weights, a loop compilers
 * turn into 16-bit multiply-adds. The patch lives in the planned scratch.
 * ed_conv_pool.c runs a conv fused with the max pool after it.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

#define ED_CONV_BLOCK 8

static void ed_gather_patch(const ed_conv_params *p, const int8_t *input, int32_t iy0, int32_t ix0,
                            int16_t *patch)
{
    const int32_t in_c = p->in_c;
    const int16_t in_offset = (int16_t)p->in_offset;
    int32_t ky, kx, c;
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = iy0 + ky;
        for (kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = ix0 + kx;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                for (c = 0; c < in_c; ++c) {
                    patch[c] = 0;
                }
            } else {
                const int8_t *x = input + (iy * p->in_w + ix) * in_c;
                for (c = 0; c < in_c; ++c) {
                    patch[c] = (int16_t)(x[c] + in_offset);
                }
            }
            patch += in_c;
        }
    }
}

/* One pixel with transposed weights: out_c accumulators, patch values broadcast. */
static void ed_conv_pixel_blocked(const ed_conv_params *p, const int16_t *patch, int32_t filter_size,
                                  const int8_t *weights, const int32_t *bias, const int32_t *multiplier,
                                  const int32_t *shift, int8_t *output)
{
    const int32_t out_c = p->out_c;
    int32_t c0, k, j;
    for (c0 = 0; c0 < out_c; c0 += ED_CONV_BLOCK) {
        int32_t acc[ED_CONV_BLOCK] = {0};
        const int8_t *w = weights + c0;
        if (out_c - c0 >= ED_CONV_BLOCK) {
            for (k = 0; k < filter_size; ++k) {
                const int32_t pv = patch[k];
                for (j = 0; j < ED_CONV_BLOCK; ++j) {
                    acc[j] += pv * (int32_t)w[j];
                }
                w += out_c;
            }
            for (j = 0; j < ED_CONV_BLOCK; ++j) {
                const int32_t oc = c0 + j;
                output[oc] = ed_requant(acc[j], bias[oc], multiplier[oc], shift[oc], p->out_offset,
                                        p->act_min, p->act_max);
            }
        } else {
            const int32_t n = out_c - c0;
            for (k = 0; k < filter_size; ++k) {
                const int32_t pv = patch[k];
                for (j = 0; j < n; ++j) {
                    acc[j] += pv * (int32_t)w[j];
                }
                w += out_c;
            }
            for (j = 0; j < n; ++j) {
                const int32_t oc = c0 + j;
                output[oc] = ed_requant(acc[j], bias[oc], multiplier[oc], shift[oc], p->out_offset,
                                        p->act_min, p->act_max);
            }
        }
    }
}

/* Output rows [oy_begin, oy_end) of the convolution (see ed_kernels.h). */
void ed_conv2d_rows(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
                    const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                    int16_t *patch, int32_t oy_begin, int32_t oy_end, int8_t *output)
{
    const int32_t filter_size = p->k_h * p->k_w * p->in_c;
    int32_t oy, ox, oc;
    for (oy = oy_begin; oy < oy_end; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            ed_gather_patch(p, input, oy * p->stride_h - p->pad_h, ox * p->stride_w - p->pad_w, patch);
            if (p->weights_transposed) {
                ed_conv_pixel_blocked(p, patch, filter_size, weights, bias, multiplier, shift, output);
            } else {
                for (oc = 0; oc < p->out_c; ++oc) {
                    output[oc] = ed_requant(ed_dot16(patch, weights + oc * filter_size, filter_size), bias[oc],
                                            multiplier[oc], shift[oc], p->out_offset, p->act_min, p->act_max);
                }
            }
            output += p->out_c;
        }
    }
}

void ed_conv2d(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
               const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
               int16_t *patch, int8_t *output)
{
    ed_conv2d_rows(p, input, weights, bias, multiplier, shift, patch, 0, p->out_h, output);
}
