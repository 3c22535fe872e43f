/*
 * ed_conv_pool.c - CONV_2D then MAX_POOL_2D without the conv's full output:
 * for each pooled row, only the conv rows under its window are computed (into
 * the bytes after the patch) and pooled at once. The values are those of the
 * two ops run one after the other (ed_conv2d, ed_maxpool2d); only the RAM
 * differs: pool->f_h conv rows instead of conv->out_h.
 */
#include "ed_kernels.h"

void ed_conv2d_maxpool(const ed_conv_params *p, const ed_pool_params *pool, const int8_t *input,
                       const int8_t *weights, const int32_t *bias, const int32_t *multiplier,
                       const int32_t *shift, int16_t *patch, int8_t *output)
{
    int8_t *rows = (int8_t *)(patch + p->patch_stride);
    ed_pool_params band = *pool;
    int32_t oy;
    band.out_h = 1;
    band.stride_h = 1;
    band.pad_h = 0;
    for (oy = 0; oy < pool->out_h; ++oy) {
        const int32_t y0 = oy * pool->stride_h - pool->pad_h;
        const int32_t lo = y0 < 0 ? 0 : y0;
        const int32_t hi = y0 + pool->f_h < p->out_h ? y0 + pool->f_h : p->out_h;
        ed_conv2d_rows(p, input, weights, bias, multiplier, shift, patch, lo, hi, rows);
        band.in_h = hi - lo;
        band.f_h = hi - lo;
        ed_maxpool2d(&band, rows, output + oy * pool->out_w * pool->c);
    }
}
