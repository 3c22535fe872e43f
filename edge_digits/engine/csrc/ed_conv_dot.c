/*
 * ed_conv_dot.c - CONV_2D (and FULLY_CONNECTED as a 1x1 conv) through 4-way int8 dot products.
 *
 * The host build of the engine (the native runtime backend) uses this kernel
 * in place of ed_conv.c and ed_fc.c. The generator lays the weights out as
 * [out_c / 16 blocks][K / 4 groups][16 channels][4 taps] (K = k_h * k_w *
 * in_c, both padded with zero weights), the layout of the dot-product
 * instructions: AVX-512 VNNI's VPDPBUSD, Arm's SDOT, and, with two widening
 * multiplies, plain NEON. The same integer sums as TFLM's reference kernels
 * come out, so the outputs are bit-exact on every path:
 *
 *   sum_k (x_k + in_offset) * w_k  =  sum_k b_k * w_k  +  (in_offset - B) * sum_k w_k
 *
 * where the patch holds bytes b_k = x_k + B (B = 128 for VPDPBUSD, whose
 * first operand is unsigned; 0 otherwise), padded taps hold b = B - in_offset
 * (their (x + in_offset) is 0, as TFLM skips them), and sum_k w_k per channel
 * comes from the generator (wsum). Int32 sums are exact in any order.
 * ED_DOT_PIXELS output pixels share each weight load.
 */
#include <string.h>

#include "ed_kernels.h"
#include "ed_fixedpoint.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define ED_DOT_PATH "avx512-vnni"
#define ED_DOT_BIAS 128
#elif defined(__ARM_NEON) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#define ED_DOT_PATH "neon-dotprod"
#define ED_DOT_BIAS 0
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#define ED_DOT_PATH "neon"
#define ED_DOT_BIAS 0
#else
#define ED_DOT_PATH "scalar"
#define ED_DOT_BIAS 0
#endif

#define ED_DOT_LANES 16

/* The whole text stays in the binary, so a build can be checked for its path without running it. */
static const char ed_dot_path_text[] = "edge-digits dot path: " ED_DOT_PATH;

const char *ed_conv_dot_path(void)
{
    return ed_dot_path_text + sizeof "edge-digits dot path: " - 1;
}

/* n input bytes as patch bytes: x + ED_DOT_BIAS (a flipped sign bit for 128), eight at a time; the rows
 * are short (k_w * in_c bytes), so no call into libc. */
static void ed_dot_copy(int8_t *dst, const int8_t *src, int32_t n)
{
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
#if ED_DOT_BIAS
        v ^= 0x8080808080808080u;
#endif
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; ++i) {
        dst[i] = (int8_t)(src[i] ^ (ED_DOT_BIAS ? 0x80 : 0));
    }
}

static void ed_dot_fill(int8_t *dst, int8_t value, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = value;
    }
}

static void ed_dot_gather(const ed_conv_params *p, const int8_t *input, int32_t iy0, int32_t ix0, int32_t k4,
                          int8_t *patch)
{
    const int32_t in_c = p->in_c;
    const int32_t row = p->k_w * in_c;
    const int8_t pad = (int8_t)(ED_DOT_BIAS - p->in_offset);
    const int32_t inside = ix0 >= 0 && ix0 + p->k_w <= p->in_w;
    int8_t *dst = patch;
    int32_t ky, kx;
    for (ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = iy0 + ky;
        if (iy < 0 || iy >= p->in_h) {
            ed_dot_fill(dst, pad, row);
        } else if (inside) {
            ed_dot_copy(dst, input + (iy * p->in_w + ix0) * in_c, row);
        } else {
            for (kx = 0; kx < p->k_w; ++kx) {
                const int32_t ix = ix0 + kx;
                if (ix < 0 || ix >= p->in_w) {
                    ed_dot_fill(dst + kx * in_c, pad, in_c);
                } else {
                    ed_dot_copy(dst + kx * in_c, input + (iy * p->in_w + ix) * in_c, in_c);
                }
            }
        }
        dst += row;
    }
    ed_dot_fill(dst, 0, (int32_t)(k4 * 4 - (dst - patch)));
}

#if ED_DOT_BIAS
/* One block's requantization constants as vectors, set once for all its pixels. */
typedef struct {
    __mmask16 lanes;
    __m512i bias, multiplier, left, right, mask, half_mask, out_offset, act_min, act_max;
} ed_dot_rq;

static ed_dot_rq ed_dot_rq_block(const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                                 const ed_conv_params *p, int32_t n)
{
    ed_dot_rq q;
    const __m512i zero = _mm512_setzero_si512();
    const __m512i s = _mm512_maskz_loadu_epi32((__mmask16)((1u << n) - 1u), shift);
    q.lanes = (__mmask16)((1u << n) - 1u);
    q.bias = _mm512_maskz_loadu_epi32(q.lanes, bias);
    q.multiplier = _mm512_maskz_loadu_epi32(q.lanes, multiplier);
    q.left = _mm512_max_epi32(s, zero);
    q.right = _mm512_max_epi32(_mm512_sub_epi32(zero, s), zero);
    q.mask = _mm512_sub_epi32(_mm512_sllv_epi32(_mm512_set1_epi32(1), q.right), _mm512_set1_epi32(1));
    q.half_mask = _mm512_srli_epi32(q.mask, 1);
    q.out_offset = _mm512_set1_epi32(p->out_offset);
    q.act_min = _mm512_set1_epi32(p->act_min);
    q.act_max = _mm512_set1_epi32(p->act_max);
    return q;
}

/* Requantize 16 accumulators as ed_requant does, lane by lane, and store the block's lanes as int8. */
static void ed_dot_requant16(__m512i acc, const ed_dot_rq *q, int8_t *out)
{
    const __m512i zero = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i x = _mm512_sllv_epi32(_mm512_add_epi32(acc, q->bias), q->left);
    /* 64-bit products of the even and the odd lanes, rounded as ed_mbqm: (ab + nudge) / 2^31, truncating */
    const __m512i pos = _mm512_set1_epi64((int64_t)1 << 30);
    const __m512i neg = _mm512_set1_epi64(1 - ((int64_t)1 << 30));
    const __m512i trunc = _mm512_set1_epi64(((int64_t)1 << 31) - 1);
    __m512i ab[2], r, rem, threshold, v;
    int h;
    ab[0] = _mm512_mul_epi32(x, q->multiplier);
    ab[1] = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(q->multiplier, 32));
    for (h = 0; h < 2; ++h) {
        const __mmask8 negative = _mm512_cmplt_epi64_mask(ab[h], zero);
        const __m512i t = _mm512_add_epi64(ab[h], _mm512_mask_blend_epi64(negative, pos, neg));
        const __m512i fix = _mm512_and_si512(_mm512_srai_epi64(t, 63), trunc);
        ab[h] = _mm512_srai_epi64(_mm512_add_epi64(t, fix), 31);
    }
    r = _mm512_mask_blend_epi32((__mmask16)0xAAAA, ab[0], _mm512_slli_epi64(ab[1], 32));
    /* rounding divide by 2^right, as TFLM's RoundingDivideByPOT */
    rem = _mm512_and_si512(r, q->mask);
    threshold = _mm512_add_epi32(q->half_mask, _mm512_maskz_mov_epi32(_mm512_cmplt_epi32_mask(r, zero), one));
    v = _mm512_add_epi32(_mm512_srav_epi32(r, q->right),
                         _mm512_maskz_mov_epi32(_mm512_cmpgt_epi32_mask(rem, threshold), one));
    v = _mm512_add_epi32(v, q->out_offset);
    v = _mm512_min_epi32(_mm512_max_epi32(v, q->act_min), q->act_max);
    _mm_mask_storeu_epi8(out, q->lanes, _mm512_cvtepi32_epi8(v));
}
#endif

#if ED_DOT_BIAS
/* np pixels' dot products with one block of weights, kept in registers and requantized straight to out
 * (pixel i at out + i * stride). */
static void ed_dot_block_rq(const int8_t *patches, int32_t np, int32_t k4, const int8_t *w, const ed_dot_rq *q,
                            int8_t *out, int32_t stride)
{
    __m512i a[ED_DOT_PIXELS];
    int32_t i, g;
    for (i = 0; i < ED_DOT_PIXELS; ++i) {
        a[i] = _mm512_setzero_si512();
    }
    if (np == ED_DOT_PIXELS) {
        for (g = 0; g < k4; ++g) {
            const __m512i wv = _mm512_loadu_si512((const void *)(w + g * 64));
            for (i = 0; i < ED_DOT_PIXELS; ++i) {
                int32_t b;
                memcpy(&b, patches + (i * k4 + g) * 4, 4);
                a[i] = _mm512_dpbusd_epi32(a[i], _mm512_set1_epi32(b), wv);
            }
        }
        for (i = 0; i < ED_DOT_PIXELS; ++i) {
            ed_dot_requant16(a[i], q, out + i * stride);
        }
        return;
    }
    for (g = 0; g < k4; ++g) {
        const __m512i wv = _mm512_loadu_si512((const void *)(w + g * 64));
        for (i = 0; i < np; ++i) {
            int32_t b;
            memcpy(&b, patches + (i * k4 + g) * 4, 4);
            a[i] = _mm512_dpbusd_epi32(a[i], _mm512_set1_epi32(b), wv);
        }
    }
    for (i = 0; i < np; ++i) {
        ed_dot_requant16(a[i], q, out + i * stride);
    }
}
#else
/* acc[i][lane] = sum over the block's groups of patch i's bytes times the weights of lane. */
static void ed_dot_block(const int8_t *patches, int32_t np, int32_t k4, const int8_t *w,
                         int32_t acc[ED_DOT_PIXELS][ED_DOT_LANES])
{
    int32_t i, g;
#if defined(__ARM_NEON)
    for (i = 0; i < np; ++i) {
        const int8_t *x = patches + i * k4 * 4;
#if defined(__ARM_FEATURE_DOTPROD)
        int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0), a2 = vdupq_n_s32(0), a3 = vdupq_n_s32(0);
        for (g = 0; g < k4; ++g) {
            int32_t b;
            int8x16_t xv;
            const int8_t *wg = w + g * 64;
            memcpy(&b, x + g * 4, 4);
            xv = vreinterpretq_s8_s32(vdupq_n_s32(b));
            a0 = vdotq_s32(a0, vld1q_s8(wg), xv);
            a1 = vdotq_s32(a1, vld1q_s8(wg + 16), xv);
            a2 = vdotq_s32(a2, vld1q_s8(wg + 32), xv);
            a3 = vdotq_s32(a3, vld1q_s8(wg + 48), xv);
        }
#else
        /* products of int8 pairs fit int16 (|x w| <= 16384); pairwise adds widen them into int32 */
        int32x4_t h[8];
        int32x4_t a0, a1, a2, a3;
        int32_t j;
        for (j = 0; j < 8; ++j) {
            h[j] = vdupq_n_s32(0);
        }
        for (g = 0; g < k4; ++g) {
            int32_t b;
            int8x8_t xv;
            const int8_t *wg = w + g * 64;
            memcpy(&b, x + g * 4, 4);
            xv = vreinterpret_s8_s32(vdup_n_s32(b));
            for (j = 0; j < 8; ++j) {
                h[j] = vpadalq_s16(h[j], vmull_s8(vld1_s8(wg + j * 8), xv));
            }
        }
        /* h[j] holds two partial sums for each of channels 2j and 2j + 1 */
        a0 = vcombine_s32(vpadd_s32(vget_low_s32(h[0]), vget_high_s32(h[0])),
                          vpadd_s32(vget_low_s32(h[1]), vget_high_s32(h[1])));
        a1 = vcombine_s32(vpadd_s32(vget_low_s32(h[2]), vget_high_s32(h[2])),
                          vpadd_s32(vget_low_s32(h[3]), vget_high_s32(h[3])));
        a2 = vcombine_s32(vpadd_s32(vget_low_s32(h[4]), vget_high_s32(h[4])),
                          vpadd_s32(vget_low_s32(h[5]), vget_high_s32(h[5])));
        a3 = vcombine_s32(vpadd_s32(vget_low_s32(h[6]), vget_high_s32(h[6])),
                          vpadd_s32(vget_low_s32(h[7]), vget_high_s32(h[7])));
#endif
        vst1q_s32(acc[i], a0);
        vst1q_s32(acc[i] + 4, a1);
        vst1q_s32(acc[i] + 8, a2);
        vst1q_s32(acc[i] + 12, a3);
    }
#else
    for (i = 0; i < np; ++i) {
        const int8_t *x = patches + i * k4 * 4;
        int32_t lane, j;
        for (lane = 0; lane < ED_DOT_LANES; ++lane) {
            acc[i][lane] = 0;
        }
        for (g = 0; g < k4; ++g) {
            const int8_t *wg = w + g * 64;
            for (lane = 0; lane < ED_DOT_LANES; ++lane) {
                int32_t s = 0;
                for (j = 0; j < 4; ++j) {
                    s += (int32_t)x[g * 4 + j] * (int32_t)wg[lane * 4 + j];
                }
                acc[i][lane] += s;
            }
        }
    }
#endif
}
#endif

void ed_conv2d_dot(const ed_conv_params *p, const int8_t *input, const int8_t *weights, const int32_t *bias,
                   const int32_t *wsum, const int32_t *multiplier, const int32_t *shift, int8_t *patch,
                   int8_t *output)
{
    const int32_t k4 = (p->k_h * p->k_w * p->in_c + 3) / 4;
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t blocks = (p->out_c + ED_DOT_LANES - 1) / ED_DOT_LANES;
#if !ED_DOT_BIAS
    int32_t acc[ED_DOT_PIXELS][ED_DOT_LANES];
#endif
    int32_t corrected[ED_DOT_LANES];
    int32_t first, i, ob, lane;
    for (first = 0; first < pixels; first += ED_DOT_PIXELS) {
        const int32_t np = pixels - first < ED_DOT_PIXELS ? pixels - first : ED_DOT_PIXELS;
        for (i = 0; i < np; ++i) {
            const int32_t oy = (first + i) / p->out_w, ox = (first + i) % p->out_w;
            ed_dot_gather(p, input, oy * p->stride_h - p->pad_h, ox * p->stride_w - p->pad_w, k4,
                          patch + i * k4 * 4);
        }
        for (ob = 0; ob < blocks; ++ob) {
            const int32_t c0 = ob * ED_DOT_LANES;
            const int32_t n = p->out_c - c0 < ED_DOT_LANES ? p->out_c - c0 : ED_DOT_LANES;
            for (lane = 0; lane < n; ++lane) {
                corrected[lane] = bias[c0 + lane] + (p->in_offset - ED_DOT_BIAS) * wsum[c0 + lane];
            }
#if ED_DOT_BIAS
            {
                const ed_dot_rq q = ed_dot_rq_block(corrected, multiplier + c0, shift + c0, p, n);
                ed_dot_block_rq(patch, np, k4, weights + ob * k4 * 64, &q, output + first * p->out_c + c0, p->out_c);
            }
#else
            ed_dot_block(patch, np, k4, weights + ob * k4 * 64, acc);
            for (i = 0; i < np; ++i) {
                int8_t *out = output + (first + i) * p->out_c + c0;
                for (lane = 0; lane < n; ++lane) {
                    out[lane] = ed_requant(acc[i][lane], corrected[lane], multiplier[c0 + lane], shift[c0 + lane],
                                           p->out_offset, p->act_min, p->act_max);
                }
            }
#endif
        }
    }
}
