/*
 * ed_fc.c - FULLY_CONNECTED int8, as TFLM's reference integer FullyConnected
 * (weight zero point 0, as the int8 converter emits and generation checks).
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

void ed_fully_connected(const ed_fc_params *p, const int8_t *input, const int8_t *weights,
                        const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                        int8_t *output)
{
    int32_t b, o;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *x = input + b * p->in_depth;
        for (o = 0; o < p->out_depth; ++o) {
            const int8_t *w = weights + o * p->in_depth;
            int32_t acc = ed_dot_offset(x, w, p->in_depth, (int16_t)p->in_offset);
            *output++ = ed_requant(acc, bias[o], multiplier[o], shift[o], p->out_offset, p->act_min, p->act_max);
        }
    }
}
