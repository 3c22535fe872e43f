/*
 * ed_mean.c - MEAN over height and width (global average pooling) on int8,
 * as TFLM's reference integer Mean: the sum of (input - input zero point)
 * over all pixels is requantized with a multiplier that already contains the
 * division by the pixel count (folded in at generation time the way TFLM
 * folds it), then offset by the output zero point and clamped to int8.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"

/* Channels in blocks of ED_MEAN_BLOCK, pixels in the inner loop over contiguous channels (a loop compilers
 * vectorize); the input offset of every pixel is added once, as pixels * offset (the same int32 sum). */
#define ED_MEAN_BLOCK 16

void ed_mean_hw(const ed_mean_params *p, const int8_t *input, int8_t *output)
{
    int32_t c0, i, j;
    for (c0 = 0; c0 < p->c; c0 += ED_MEAN_BLOCK) {
        const int32_t n = p->c - c0 < ED_MEAN_BLOCK ? p->c - c0 : ED_MEAN_BLOCK;
        int32_t acc[ED_MEAN_BLOCK] = {0};
        for (i = 0; i < p->pixels; ++i) {
            const int8_t *x = input + i * p->c + c0;
            for (j = 0; j < n; ++j) {
                acc[j] += x[j];
            }
        }
        for (j = 0; j < n; ++j) {
            const int32_t v = ed_mbqm(acc[j] + p->pixels * p->in_offset, p->multiplier, p->shift) + p->out_offset;
            output[c0 + j] = (int8_t)ed_clamp(v, -128, 127);
        }
    }
}
