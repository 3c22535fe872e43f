/*
 * ed_kernels.h - the int8 kernels of the edge-digits native engine.
 *
 * Each kernel computes one TFLite builtin op exactly as the TensorFlow Lite
 * Micro reference kernels do (same integer arithmetic, same rounding, same
 * clamping), on NHWC tensors with batch 1. Shapes and quantization come in a
 * const parameter struct that the code generator fills at build time, so the
 * kernels allocate nothing and use no floating point.
 */
#ifndef ED_KERNELS_H
#define ED_KERNELS_H

#include <stdint.h>

/* CONV_2D and DEPTHWISE_CONV_2D: per-channel int8 weights, int32 bias (zeros when the model has none). */
typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;       /* top and left padding (SAME puts the extra row/column at the end) */
    int32_t depth_mult;         /* depthwise only: out_c == in_c * depth_mult */
    int32_t in_offset;          /* minus the input zero point */
    int32_t out_offset;         /* the output zero point */
    int32_t act_min, act_max;   /* fused activation as an int8 range */
    int32_t weights_transposed; /* conv only: 1 if weights are [k_h][k_w][in_c][out_c] */
    int32_t bias_has_offset;    /* conv only: bias already holds in_offset * (sum of the channel's weights) */
    int32_t patch_stride;       /* conv only: int16 units of patch scratch for receptive fields (the DSP path
                                   needs two int16 fields, the others one), before a fused pool's conv rows */
} ed_conv_params;

/* MAX_POOL_2D and AVERAGE_POOL_2D (input and output share scale and zero point). */
typedef struct {
    int32_t in_h, in_w, c;
    int32_t out_h, out_w;
    int32_t f_h, f_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t act_min, act_max;
} ed_pool_params;

/* FULLY_CONNECTED: weights [out_depth][in_depth], requantized per output unit. */
typedef struct {
    int32_t batches, in_depth, out_depth;
    int32_t in_offset, out_offset;
    int32_t act_min, act_max;
} ed_fc_params;

/* MEAN over H and W of [1][H][W][C]; multiplier and shift include the division by pixels. */
typedef struct {
    int32_t pixels, c;
    int32_t in_offset, out_offset;
    int32_t multiplier, shift;
} ed_mean_params;

/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), parameters as TFLM's Prepare computes them. */
typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} ed_softmax_params;

/* patch: scratch for p->patch_stride int16 values (see ed_conv.c). */
void ed_conv2d(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
               const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
               int16_t *patch, int8_t *output);

/* Output rows [oy_begin, oy_end) of a CONV_2D, written one after the other from output. */
void ed_conv2d_rows(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
                    const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                    int16_t *patch, int32_t oy_begin, int32_t oy_end, int8_t *output);

/* CONV_2D then MAX_POOL_2D (pool->stride_h >= pool->f_h) without the conv's full output. patch: scratch
 * for p->patch_stride int16 values followed by min(pool->f_h, out_h) * out_w * out_c int8 conv rows. */
void ed_conv2d_maxpool(const ed_conv_params *p, const ed_pool_params *pool, const int8_t *input,
                       const int8_t *weights, const int32_t *bias, const int32_t *multiplier,
                       const int32_t *shift, int16_t *patch, int8_t *output);

/* Output pixels ed_conv2d_dot computes together (its patch scratch holds that many receptive fields). */
#define ED_DOT_PIXELS 8

/* CONV_2D (FULLY_CONNECTED as a 1x1 conv) with dot-product weights [out_c/16][K/4][16][4] and their sums
 * per channel (see ed_conv_dot.c). patch: scratch for ED_DOT_PIXELS * 4 * ceil(K / 4) int8 values. */
void ed_conv2d_dot(const ed_conv_params *p, const int8_t *input, const int8_t *weights, const int32_t *bias,
                   const int32_t *wsum, const int32_t *multiplier, const int32_t *shift, int8_t *patch,
                   int8_t *output);

/* Which instructions ed_conv2d_dot was compiled for: "avx512-vnni", "neon-dotprod", "neon" or "scalar". */
const char *ed_conv_dot_path(void);

void ed_dwconv2d(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
                 const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                 int8_t *output);

void ed_maxpool2d(const ed_pool_params *p, const int8_t *input, int8_t *output);

void ed_avgpool2d(const ed_pool_params *p, const int8_t *input, int8_t *output);

void ed_fully_connected(const ed_fc_params *p, const int8_t *input, const int8_t *weights,
                        const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                        int8_t *output);

void ed_mean_hw(const ed_mean_params *p, const int8_t *input, int8_t *output);

void ed_softmax(const ed_softmax_params *p, const int8_t *input, int8_t *output);

#endif /* ED_KERNELS_H */
