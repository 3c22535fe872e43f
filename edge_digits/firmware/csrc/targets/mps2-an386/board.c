/* Arm MPS2 with the AN386 FPGA image (Cortex-M4F), as QEMU's mps2-an386 machine
 * models it: a 25 MHz core clock and the CMSDK APB UART0 at 0x40004000. */
#include "board.h"
#include "cortexm.h"

#define CLOCK_HZ 25000000u
#define BAUD 115200u
#define UART0_BASE 0x40004000u
#define UART_DATA ED_REG(UART0_BASE + 0x00u)
#define UART_STATE ED_REG(UART0_BASE + 0x04u)
#define UART_CTRL ED_REG(UART0_BASE + 0x08u)
#define UART_BAUDDIV ED_REG(UART0_BASE + 0x10u)
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u

void board_init(void)
{
    UART_BAUDDIV = CLOCK_HZ / BAUD;
    UART_CTRL = 0x3u; /* TX and RX enabled, no interrupts */
    cortexm_cycles_init();
}

void board_uart_putc(uint8_t byte)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = byte;
}

int board_uart_getc(uint32_t timeout_ms)
{
    uint32_t start = cortexm_millis(CLOCK_HZ);
    while (!(UART_STATE & STATE_RX_FULL)) {
        if (cortexm_millis(CLOCK_HZ) - start >= timeout_ms) {
            return -1;
        }
    }
    return (int)(UART_DATA & 0xFFu);
}

uint32_t board_clock_hz(void)
{
    return CLOCK_HZ;
}

const char *board_name(void)
{
    return "mps2-an386";
}
