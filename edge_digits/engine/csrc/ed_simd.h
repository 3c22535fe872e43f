/*
 * ed_simd.h - which inner loops a build of the engine compiles, chosen at build time.
 *
 * The firmware Makefile passes the target's kernel set (its target.toml): ED_KERNELS_DSP builds the
 * Armv7E-M/Armv8-M DSP-extension loops (SXTB16 and SMLAD: two 16-bit multiply-adds per instruction;
 * the Cortex-M4, M7, M33 and M55 have them), ED_KERNELS_MVE the Helium loops of the Cortex-M55 (MVE:
 * sixteen int8 multiply-adds per VMLADAVA; DSP loops where Helium has none), ED_KERNELS_SCALAR (or
 * nothing, as on a host) portable C.
 * A kernel set the compiler's -mcpu cannot do is an error here, not a silent fallback. Every path
 * computes the same integers as TFLM's reference kernels.
 */
#ifndef ED_SIMD_H
#define ED_SIMD_H

#if defined(ED_KERNELS_MVE)
#if !defined(__ARM_FEATURE_MVE) || !(__ARM_FEATURE_MVE & 1)
#error "ED_KERNELS_MVE needs a core with integer MVE (e.g. -mcpu=cortex-m55)"
#endif
#define ED_SIMD_MVE 1
#define ED_SIMD_DSP 1
#elif defined(ED_KERNELS_DSP)
#if !defined(__ARM_FEATURE_DSP)
#error "ED_KERNELS_DSP needs a core with the DSP extension (e.g. -mcpu=cortex-m4, m7, m33, m55)"
#endif
#define ED_SIMD_DSP 1
#endif

#if defined(ED_SIMD_MVE)
#include <arm_mve.h>
#endif

#if defined(ED_SIMD_DSP)
#include <arm_acle.h>
#include <string.h>

/* 32-bit loads and stores of int8/int16 data at any 16-bit alignment (one LDR/STR on these cores). */
static inline uint32_t ed_ld32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void ed_st32(void *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* Bytes 1 and 3 of v, sign-extended to two int16 halves: SXTB16 with its ROR #8 operand. */
static inline uint32_t ed_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#endif

#endif /* ED_SIMD_H */
