/*
 * ed_mean.c - MEAN over height and width (global average pooling) on int8,
 * as TFLM's reference integer Mean: the sum of (input - input zero point)
 * over all pixels is requantized with a multiplier that already contains the
 * division by the pixel count (folded in at generation time the way TFLM
 * folds it), then offset by the output zero point and clamped to int8.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

void ed_mean_hw(const ed_mean_params *p, const int8_t *input, int8_t *output)
{
    int32_t ch, i;
    for (ch = 0; ch < p->c; ++ch) {
        const int8_t *x = input + ch;
        int32_t acc = 0;
        for (i = 0; i < p->pixels; ++i) {
            acc += (int32_t)x[i * p->c] + p->in_offset;
        }
        acc = ed_mbqm(acc, p->multiplier, p->shift) + p->out_offset;
        output[ch] = (int8_t)ed_clamp(acc, -128, 127);
    }
}
