/* The Arm CMSDK APB UART, the protocol UART of the MPS2/MPS3 targets (polled, no interrupts). */
#ifndef ED_CMSDK_UART_H
#define ED_CMSDK_UART_H

#include <stdint.h>

/* Enable TX and RX at `baud` from the UART's clock `clock_hz`. */
void cmsdk_uart_init(uint32_t base, uint32_t clock_hz, uint32_t baud);
/* Blocking write of one byte. */
void cmsdk_uart_putc(uint32_t base, uint8_t byte);
/* One byte, or -1 when none came within timeout_ms (timed by the core's cycle counter at clock_hz). */
int cmsdk_uart_getc(uint32_t base, uint32_t clock_hz, uint32_t timeout_ms);

#endif /* ED_CMSDK_UART_H */
