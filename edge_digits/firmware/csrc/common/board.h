/* What the application needs from a board: a UART, a cycle counter, facts.
 * Each target implements this in targets/<name>/board.c. */
#ifndef ED_BOARD_H
#define ED_BOARD_H

#include <stdint.h>

void board_init(void);
/* Blocking write of one byte to the protocol UART. */
void board_uart_putc(uint8_t byte);
/* One byte from the protocol UART, or -1 when none came within timeout_ms. */
int board_uart_getc(uint32_t timeout_ms);
/* A free-running 32-bit count of core clock cycles (DWT CYCCNT or SysTick-based). */
uint32_t board_cycles(void);
/* "DWT" or "SysTick": where board_cycles() comes from. */
const char *board_cycle_source(void);
/* The core's CPUID register (implementer, variant, part number, revision): what core runs the image. */
uint32_t board_cpuid(void);
uint32_t board_clock_hz(void);
const char *board_name(void);

#endif /* ED_BOARD_H */
