#include "cmsdk_uart.h"

#include "cortexm.h"

#define UART_DATA(base) ED_REG((base) + 0x00u)
#define UART_STATE(base) ED_REG((base) + 0x04u)
#define UART_CTRL(base) ED_REG((base) + 0x08u)
#define UART_BAUDDIV(base) ED_REG((base) + 0x10u)
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u

void cmsdk_uart_init(uint32_t base, uint32_t clock_hz, uint32_t baud)
{
    UART_BAUDDIV(base) = clock_hz / baud;
    UART_CTRL(base) = 0x3u; /* TX and RX enabled, no interrupts */
}

void cmsdk_uart_putc(uint32_t base, uint8_t byte)
{
    while (UART_STATE(base) & STATE_TX_FULL) {
    }
    UART_DATA(base) = byte;
}

int cmsdk_uart_getc(uint32_t base, uint32_t clock_hz, uint32_t timeout_ms)
{
    uint32_t start = cortexm_millis(clock_hz);
    while (!(UART_STATE(base) & STATE_RX_FULL)) {
        if (cortexm_millis(clock_hz) - start >= timeout_ms) {
            return -1;
        }
    }
    return (int)(UART_DATA(base) & 0xFFu);
}
