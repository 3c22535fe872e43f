/*
 * The board layer of the Arm MPS2/MPS3 FPGA images that QEMU models (mps2-an385, mps2-an386,
 * mps2-an500, mps2-an505, mps3-an547): the CMSDK APB UART0 at 115200 baud and the core clock.
 * What differs between them is data, in each target's target.h: ED_TARGET_NAME, ED_CLOCK_HZ
 * (the core clock, which the cycle counter runs at), ED_UART_CLOCK_HZ and ED_UART0_BASE.
 */
#include "board.h"
#include "cmsdk_uart.h"
#include "cortexm.h"
#include "target.h"

#define BAUD 115200u

void board_init(void)
{
    cmsdk_uart_init(ED_UART0_BASE, ED_UART_CLOCK_HZ, BAUD);
    cortexm_cycles_init();
}

void board_uart_putc(uint8_t byte)
{
    cmsdk_uart_putc(ED_UART0_BASE, byte);
}

int board_uart_getc(uint32_t timeout_ms)
{
    return cmsdk_uart_getc(ED_UART0_BASE, ED_CLOCK_HZ, timeout_ms);
}

uint32_t board_clock_hz(void)
{
    return ED_CLOCK_HZ;
}

const char *board_name(void)
{
    return ED_TARGET_NAME;
}
