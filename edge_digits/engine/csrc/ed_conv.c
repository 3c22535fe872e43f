/*
 * ed_conv.c - CONV_2D, int8 per-channel, as TFLM's reference ConvPerChannel.
 *
 * For each output pixel the receptive field is gathered once into an int16
 * patch of (input + input offset), with 0 for padded taps (TFLM skips them,
 * which adds the same nothing). Every output channel is then one contiguous
 * dot product of the patch with that channel's weights, a loop compilers
 * turn into 16-bit multiply-adds. The patch lives in the planned scratch
 * (p->patch_stride int16: one field, two for the DSP path).
 * With the DSP extension (ed_simd.h) a layer whose input channels come in
 * fours runs two output pixels by two output channels at a time on SMLAD,
 * two 16-bit multiply-adds per instruction: the patch is gathered with
 * SXTB16 in the order SXTB16 unpacks the weights, (x0, x2) then (x1, x3) of
 * each four, so the int8 weights are used as they are stored. With Helium
 * (the Cortex-M55's MVE) the patch stays int8 and VMLADAVA sums sixteen
 * products per instruction, the input offset folded into the bias.
 * ed_conv_pool.c runs a conv fused with the max pool after it.
 */
#include "ed_kernels.h"
#include "ed_fixedpoint.h"
#include "ed_simd.h"

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

#if defined(ED_SIMD_DSP)
/* The input row and column where output pixel i (raster order) starts its receptive field. */
ED_HOT_INLINE void ed_pixel_origin(const ed_conv_params *p, int32_t i, int32_t *iy0, int32_t *ix0)
{
    *iy0 = (i / p->out_w) * p->stride_h - p->pad_h;
    *ix0 = (i % p->out_w) * p->stride_w - p->pad_w;
}

/*
 * The receptive field of one pixel as int16 (x + offset), four channels at a time in the order SXTB16
 * unpacks weights, (x0, x2) then (x1, x3), 0 for padding. Two pixels share the patch interleaved, eight
 * int16 per four channels: A(x0, x2) A(x1, x3) B(x0, x2) B(x1, x3); patch points at this pixel's slot.
 */
static void ed_gather_patch_dsp(const ed_conv_params *p, const int8_t *input, int32_t iy0, int32_t ix0,
                                int16_t *patch)
{
    const int32_t in_c = p->in_c;
    const uint32_t offset2 = ((uint32_t)p->in_offset & 0xFFFFu) * 0x10001u;
    int32_t ky, kx, c;
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = iy0 + ky;
        for (kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = ix0 + kx;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                for (c = 0; c < in_c; c += 4) {
                    ed_st32(patch, 0u);
                    ed_st32(patch + 2, 0u);
                    patch += 8;
                }
            } else {
                const int8_t *x = input + (iy * p->in_w + ix) * in_c;
                for (c = 0; c < in_c; c += 4) {
                    const uint32_t v = ed_ld32(x + c);
                    ed_st32(patch, __sadd16(__sxtb16(v), offset2));
                    ed_st32(patch + 2, __sadd16(ed_sxtb16_ror8(v), offset2));
                    patch += 8;
                }
            }
        }
    }
}

/*
 * The same layout for any channel count: tap value k of the flat receptive field goes to group k / 4 in
 * SXTB16 order; the n % 4 values left over follow all groups, pixel A's then pixel B's (tail values each).
 */
static void ed_gather_patch_any_dsp(const ed_conv_params *p, const int8_t *input, int32_t iy0, int32_t ix0,
                                    int16_t *patch, int32_t slot)
{
    static const uint8_t order[4] = {0, 2, 1, 3};
    const int32_t n = p->k_h * p->k_w * p->in_c;
    const int32_t full = n & ~3;
    int16_t *tail = patch + 2 * full + slot * (n - full);
    int16_t *group = patch + 4 * slot;
    int32_t ky, kx, c, r = 0, k = 0;
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = iy0 + ky;
        for (kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = ix0 + kx;
            const int32_t inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
            const int8_t *x = inside ? input + (iy * p->in_w + ix) * p->in_c : input;
            for (c = 0; c < p->in_c; ++c, ++k) {
                const int16_t v = (int16_t)(inside ? x[c] + p->in_offset : 0);
                if (k >= full) {
                    tail[k - full] = v;
                } else {
                    group[order[r]] = v;
                    if (++r == 4) {
                        r = 0;
                        group += 8;
                    }
                }
            }
        }
    }
}

/*
 * acc[0..3] = the dot products of two pixels' interleaved patch with two weight rows w0, w1
 * (groups4 four-channel groups, at least one): pixel A with w0, w1, then pixel B with w0, w1.
 * Hand-scheduled so the 14 registers it needs stay in registers: per four taps one LDM of both
 * pixels' patch words, one LDR and two SXTB16 per weight row, eight SMLADs (16 multiply-adds).
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter" /* a naked function reads its arguments in asm */
__attribute__((naked, noinline)) static void ed_dot_2x2_dsp(const int16_t *patch, const int8_t *w0,
                                                           const int8_t *w1, int32_t groups4, int32_t *acc)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "movs r4, #0\n\t"
        "movs r5, #0\n\t"
        "movs r6, #0\n\t"
        "movs r7, #0\n"
        "1:\n\t"
        "ldmia r0!, {r8, r9, r10, r11}\n\t"
        "ldr r12, [r1], #4\n\t"
        "sxtb16 lr, r12\n\t"
        "sxtb16 r12, r12, ror #8\n\t"
        "smlad r4, r8, lr, r4\n\t"
        "smlad r4, r9, r12, r4\n\t"
        "smlad r6, r10, lr, r6\n\t"
        "smlad r6, r11, r12, r6\n\t"
        "ldr r12, [r2], #4\n\t"
        "sxtb16 lr, r12\n\t"
        "sxtb16 r12, r12, ror #8\n\t"
        "smlad r5, r8, lr, r5\n\t"
        "smlad r5, r9, r12, r5\n\t"
        "smlad r7, r10, lr, r7\n\t"
        "smlad r7, r11, r12, r7\n\t"
        "subs r3, r3, #1\n\t"
        "bne 1b\n\t"
        "ldr r12, [sp, #36]\n\t"
        "stmia r12, {r4, r5, r6, r7}\n\t"
        "pop {r4-r11, pc}\n");
}
#pragma GCC diagnostic pop

/* Requantize one output value of channel c. */
#define ED_REQUANT_AT(p, acc, c) \
    ed_requant((acc), bias[(c)], multiplier[(c)], shift[(c)], (p)->out_offset, (p)->act_min, (p)->act_max)

/* Output pixels [first, last) in raster order, two at a time (a last odd one paired with itself), two
 * output channels at a time (an odd last one paired with itself, only its own result stored). */
static void ed_conv2d_pixels_dsp(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
                                 const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                                 int16_t *patch, int32_t first, int32_t last, int8_t *output)
{
    const int32_t n = p->k_h * p->k_w * p->in_c;
    const int32_t full = n & ~3;
    const int32_t tail = n - full;
    const int32_t out_c = p->out_c;
    const int16_t *tail_a = patch + 2 * full;
    const int16_t *tail_b = tail_a + tail;
    int32_t i, oc, t;
    for (i = first; i < last; i += 2) {
        const int32_t two = last - i >= 2;
        const int32_t i_b = two ? i + 1 : i;
        int8_t *out_a = output + (i - first) * out_c;
        int8_t *out_b = out_a + out_c;
        int32_t ya, xa, yb, xb;
        ed_pixel_origin(p, i, &ya, &xa);
        ed_pixel_origin(p, i_b, &yb, &xb);
        if (p->in_c % 4 == 0) {
            ed_gather_patch_dsp(p, input, ya, xa, patch);
            ed_gather_patch_dsp(p, input, yb, xb, patch + 4);
        } else {
            ed_gather_patch_any_dsp(p, input, ya, xa, patch, 0);
            ed_gather_patch_any_dsp(p, input, yb, xb, patch, 1);
        }
        for (oc = 0; oc < out_c; oc += 2) {
            const int32_t pair = oc + 1 < out_c;
            const int8_t *w0 = weights + oc * n;
            const int8_t *w1 = pair ? w0 + n : w0;
            int32_t acc[4];
            if (full > 0) {
                ed_dot_2x2_dsp(patch, w0, w1, full / 4, acc);
            } else {
                acc[0] = acc[1] = acc[2] = acc[3] = 0;
            }
            for (t = 0; t < tail; ++t) {
                acc[0] += tail_a[t] * w0[full + t];
                acc[1] += tail_a[t] * w1[full + t];
                acc[2] += tail_b[t] * w0[full + t];
                acc[3] += tail_b[t] * w1[full + t];
            }
            out_a[oc] = ED_REQUANT_AT(p, acc[0], oc);
            if (pair) {
                out_a[oc + 1] = ED_REQUANT_AT(p, acc[1], oc + 1);
            }
            if (two) {
                out_b[oc] = ED_REQUANT_AT(p, acc[2], oc);
                if (pair) {
                    out_b[oc + 1] = ED_REQUANT_AT(p, acc[3], oc + 1);
                }
            }
        }
    }
}
#endif

#if defined(ED_SIMD_MVE)
/* n int8 from src, or n copies of v: a tail-predicated loop of sixteen lanes a step (nothing when n is 0).
 * Inline asm because the compiler's predicated loops move the predicate through a core register. */
ED_HOT_INLINE void ed_copy8_mve(int8_t *dst, const int8_t *src, int32_t n)
{
    __asm__ volatile("dlstp.8 lr, %2\n"
                     "1:\n\t"
                     "vldrb.8 q0, [%1], #16\n\t"
                     "vstrb.8 q0, [%0], #16\n\t"
                     "letp lr, 1b\n"
                     : "+r"(dst), "+r"(src)
                     : "r"(n)
                     : "lr", "q0", "memory");
}

ED_HOT_INLINE void ed_fill8_mve(int8_t *dst, int8x16_t v, int32_t n)
{
    __asm__ volatile("dlstp.8 lr, %1\n"
                     "1:\n\t"
                     "vstrb.8 %q2, [%0], #16\n\t"
                     "letp lr, 1b\n"
                     : "+r"(dst)
                     : "r"(n), "w"(v)
                     : "lr", "memory");
}

/* The raw int8 receptive field, one kernel row (k_w * in_c contiguous bytes of NHWC input) at a time:
 * the input, and the input zero point (-in_offset) at padded taps, whose products then add
 * (zero point + offset) * w = 0 once the offset is in the bias. */
static void ed_gather_patch_mve(const ed_conv_params *p, const int8_t *input, int32_t iy0, int32_t ix0,
                                int8_t *patch)
{
    const int8x16_t zero_point = vdupq_n_s8((int8_t)(-p->in_offset));
    const int32_t in_c = p->in_c;
    const int32_t row = p->k_w * in_c;
    const int32_t left = ix0 < 0 ? (-ix0 < p->k_w ? -ix0 : p->k_w) : 0;
    const int32_t right_end = p->in_w - ix0 < p->k_w ? p->in_w - ix0 : p->k_w;
    const int32_t inside = right_end > left ? right_end - left : 0;
    int32_t ky;
    for (ky = 0; ky < p->k_h; ++ky, patch += row) {
        const int32_t iy = iy0 + ky;
        if (iy < 0 || iy >= p->in_h) {
            ed_fill8_mve(patch, zero_point, row);
        } else if (inside == p->k_w) {
            ed_copy8_mve(patch, input + (iy * p->in_w + ix0) * in_c, row);
        } else {
            ed_fill8_mve(patch, zero_point, left * in_c);
            ed_copy8_mve(patch + left * in_c, input + (iy * p->in_w + ix0 + left) * in_c, inside * in_c);
            ed_fill8_mve(patch + (left + inside) * in_c, zero_point, (p->k_w - left - inside) * in_c);
        }
    }
}

/* Four channels' requantization factors: bias, multiplier, the shift as a left shift and a right shift, and the
 * rounding mask and half-threshold of the right shift (TFLM's RoundingDivideByPOT). */
typedef struct {
    int32x4_t bias, multiplier, left, right_neg, mask, half;
} ed_requant4_factors;

ED_HOT_INLINE ed_requant4_factors ed_requant4_load(const int32_t *bias, const int32_t *multiplier,
                                                   const int32_t *shift, int32_t nc)
{
    const mve_pred16_t lanes = vctp32q((uint32_t)nc);
    const int32x4_t zero = vdupq_n_s32(0);
    const int32x4_t sh = nc == 4 ? vldrwq_s32(shift) : vldrwq_z_s32(shift, lanes);
    const int32x4_t right = vmaxq_s32(vnegq_s32(sh), zero);
    ed_requant4_factors f;
    f.bias = nc == 4 ? vldrwq_s32(bias) : vldrwq_z_s32(bias, lanes);
    f.multiplier = nc == 4 ? vldrwq_s32(multiplier) : vldrwq_z_s32(multiplier, lanes);
    f.left = vmaxq_s32(sh, zero);
    f.right_neg = vnegq_s32(right);
    f.mask = vsubq_s32(vshlq_s32(vdupq_n_s32(1), right), vdupq_n_s32(1));
    f.half = vshrq_n_s32(f.mask, 1);
    return f;
}

/*
 * Four accumulators requantized as ed_requant does each (TFLM's arithmetic): VQRDMULH is the saturating
 * rounding doubling high multiply exactly ((2ab + 2^31) >> 32 is floor((ab + 2^30) / 2^31), see ed_mbqm);
 * the divide by 2^right adds one where the remainder exceeds the threshold (half, plus one below zero),
 * read from the sign of threshold - remainder (both in [0, 2^31), so no overflow); then offset and clamp.
 */
ED_HOT_INLINE int32x4_t ed_requant4_mve(int32x4_t acc, const ed_requant4_factors *f, int32x4_t out_offset,
                                        int32x4_t act_min, int32x4_t act_max)
{
    int32x4_t x = vshlq_s32(vaddq_s32(acc, f->bias), f->left);
    int32x4_t threshold, remainder;
    x = vqrdmulhq_s32(x, f->multiplier);
    threshold = vaddq_s32(f->half, vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(x), 31)));
    remainder = vandq_s32(x, f->mask);
    x = vaddq_s32(vshlq_s32(x, f->right_neg),
                  vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(vsubq_s32(threshold, remainder)), 31)));
    return vminq_s32(vmaxq_s32(vaddq_s32(x, out_offset), act_min), act_max);
}

/* The low bytes of the first nc lanes to out. */
ED_HOT_INLINE void ed_store4_mve(int8_t *out, int32x4_t v, int32_t nc)
{
    if (nc == 4) {
        vstrbq_s32(out, v);
    } else {
        vstrbq_p_s32(out, v, vctp32q((uint32_t)nc));
    }
}

/* One weight row against both pixels' patches, for an odd last channel (none of the bundled models has one):
 * intrinsics, as it runs at most once per pixel pair. */
static void ed_dot_1x2_mve(const int8_t *pa, const int8_t *pb, const int8_t *w, int32_t n, int32_t *acc_a,
                           int32_t *acc_b)
{
    int32_t a = 0, b = 0, k;
    for (k = 0; k < n; k += 16) {
        const mve_pred16_t pr = vctp8q((uint32_t)(n - k));
        const int8x16_t v = vldrbq_z_s8(w + k, pr);
        a = vmladavaq_s8(a, vldrbq_z_s8(pa + k, pr), v);
        b = vmladavaq_s8(b, vldrbq_z_s8(pb + k, pr), v);
    }
    *acc_a = a;
    *acc_b = b;
}

/*
 * Two pixels' int8 patches (n taps, n > 0; pixel B's right after pixel A's, pa + n) against `pairs`
 * consecutive pairs of weight rows (w, w + n, then w + 2n, ...): acc[2i], acc[2i + 1] = pa.w(2i),
 * pa.w(2i + 1); acc[ED_MVE_CHUNK + 2i], ... the same for pixel B. Per pair a tail-predicated low-overhead
 * loop (DLSTP/LETP: the last step's lanes past n are off) of four loads and four VMLADAVAs, sixteen int8
 * multiply-adds each; one call per chunk of channels, so the call's cost is paid once, not per pair.
 * Hand-written because VMLADAVA accumulates only into even registers, which the compiler spills.
 */
#define ED_MVE_CHUNK 16
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
__attribute__((naked, noinline)) static void ed_dot_pairs_mve(const int8_t *pa, const int8_t *w, int32_t n,
                                                             int32_t *acc, int32_t pairs)
{
    __asm__ volatile(
        "push {r4-r11, lr}\n\t"
        "ldr r10, [sp, #36]\n\t"
        "mov r11, r0\n\t"
        "mov r12, r1\n\t"
        "mov r4, r2\n\t"
        "mov r5, r3\n"
        "2:\n\t"
        "mov r1, r12\n\t"
        "add r3, r12, r4\n\t"
        "mov r7, r11\n\t"
        "add r9, r11, r4\n\t"
        "movs r0, #0\n\t"
        "movs r2, #0\n\t"
        "movs r6, #0\n\t"
        "movs r8, #0\n\t"
        "dlstp.8 lr, r4\n"
        "1:\n\t"
        "vldrb.8 q0, [r7], #16\n\t"
        "vldrb.8 q1, [r9], #16\n\t"
        "vldrb.8 q2, [r1], #16\n\t"
        "vldrb.8 q3, [r3], #16\n\t"
        "vmladava.s8 r0, q0, q2\n\t"
        "vmladava.s8 r6, q1, q2\n\t"
        "vmladava.s8 r2, q0, q3\n\t"
        "vmladava.s8 r8, q1, q3\n\t"
        "letp lr, 1b\n\t"
        "strd r0, r2, [r5]\n\t"
        "strd r6, r8, [r5, #64]\n\t"
        "adds r5, #8\n\t"
        "add r12, r12, r4, lsl #1\n\t"
        "subs r10, #1\n\t"
        "bne 2b\n\t"
        "pop {r4-r11, pc}\n");
}
#pragma GCC diagnostic pop

/* Output pixels [first, last), two at a time, four output channels at a time (a short last group
 * repeats its last row; only real channels are stored). The bias holds the input offset. */
static void ed_conv2d_pixels_mve(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
                                 const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                                 int16_t *patch, int32_t first, int32_t last, int8_t *output)
{
    const int32_t n = p->k_h * p->k_w * p->in_c;
    const int32_t out_c = p->out_c;
    const int32x4_t out_offset = vdupq_n_s32(p->out_offset);
    const int32x4_t act_min = vdupq_n_s32(p->act_min);
    const int32x4_t act_max = vdupq_n_s32(p->act_max);
    int8_t *pa = (int8_t *)patch;
    int8_t *pb = pa + n;
    int32_t i, oc, j;
    for (i = first; i < last; i += 2) {
        const int32_t two = last - i >= 2;
        const int32_t i_b = two ? i + 1 : i;
        int8_t *out_a = output + (i - first) * out_c;
        int32_t ya, xa, yb, xb;
        ed_pixel_origin(p, i, &ya, &xa);
        ed_pixel_origin(p, i_b, &yb, &xb);
        ed_gather_patch_mve(p, input, ya, xa, pa);
        ed_gather_patch_mve(p, input, yb, xb, pb);
        for (oc = 0; oc < out_c; oc += ED_MVE_CHUNK) {
            /* up to sixteen channels: their pairs in one call, an odd last channel against itself */
            const int32_t nc = out_c - oc < ED_MVE_CHUNK ? out_c - oc : ED_MVE_CHUNK;
            const int8_t *w = weights + oc * n;
            int32_t acc[2 * ED_MVE_CHUNK];
            if (nc >= 2) {
                ed_dot_pairs_mve(pa, w, n, acc, nc / 2);
            }
            if (nc & 1) {
                ed_dot_1x2_mve(pa, pb, w + (nc - 1) * n, n, &acc[nc - 1], &acc[ED_MVE_CHUNK + nc - 1]);
            }
            for (j = 0; j < nc; j += 4) {
                const int32_t n4 = nc - j < 4 ? nc - j : 4;
                const ed_requant4_factors f = ed_requant4_load(bias + oc + j, multiplier + oc + j, shift + oc + j, n4);
                ed_store4_mve(out_a + oc + j, ed_requant4_mve(vldrwq_s32(acc + j), &f, out_offset, act_min, act_max),
                              n4);
                if (two) {
                    ed_store4_mve(out_a + out_c + oc + j,
                                  ed_requant4_mve(vldrwq_s32(acc + ED_MVE_CHUNK + j), &f, out_offset, act_min,
                                                  act_max), n4);
                }
            }
        }
    }
}
#endif

/* Output rows [oy_begin, oy_end) of the convolution (see ed_kernels.h). */
void ed_conv2d_rows(const ed_conv_params *p, const int8_t *input, const int8_t *weights,
                    const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                    int16_t *patch, int32_t oy_begin, int32_t oy_end, int8_t *output)
{
    const int32_t filter_size = p->k_h * p->k_w * p->in_c;
    int32_t oy, ox, oc;
#if defined(ED_SIMD_MVE)
    if (!p->weights_transposed && p->bias_has_offset && p->patch_stride >= p->k_h * p->k_w * p->in_c) {
        ed_conv2d_pixels_mve(p, input, weights, bias, multiplier, shift, patch, oy_begin * p->out_w,
                             oy_end * p->out_w, output);
        return;
    }
#endif
#if defined(ED_SIMD_DSP)
    if (!p->weights_transposed && !p->bias_has_offset && p->patch_stride >= 2 * p->k_h * p->k_w * p->in_c) {
        ed_conv2d_pixels_dsp(p, input, weights, bias, multiplier, shift, patch, oy_begin * p->out_w,
                             oy_end * p->out_w, output);
        return;
    }
#endif
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
