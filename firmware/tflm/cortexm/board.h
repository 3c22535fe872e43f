/* The board layer the benchmark app needs: a UART to print on, a cycle counter, facts.
 * Adapted from edge-digits' firmware (edge_digits/firmware/csrc/common/board.h), output only. */
#ifndef TFLM_BENCH_BOARD_H
#define TFLM_BENCH_BOARD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void board_init(void);
/* Blocking write of one byte to UART0 (QEMU's serial on stdio). */
void board_uart_putc(uint8_t byte);
/* A free-running 32-bit count of core clock cycles (DWT CYCCNT or SysTick-based, see cortexm.c). */
uint32_t board_cycles(void);
/* "DWT" or "SysTick": where board_cycles() comes from. */
const char *board_cycle_source(void);
uint32_t board_cpuid(void);
uint32_t board_clock_hz(void);
const char *board_name(void);
/* Tell QEMU to exit (semihosting SYS_EXIT); loops forever when semihosting is off. */
void board_exit(int status);

#ifdef __cplusplus
}
#endif

#endif /* TFLM_BENCH_BOARD_H */
