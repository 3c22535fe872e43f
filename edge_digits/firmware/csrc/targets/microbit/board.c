/* BBC micro:bit v1 (Nordic nRF51822: Cortex-M0, 256 KB flash, 16 KB RAM), as QEMU's microbit
 * machine models it: a 16 MHz core clock and the nRF51 UART at 0x40002000, polled through its
 * RXDRDY/TXDRDY events (on the board its pins go to the interface chip's USB serial port). */
#include "board.h"
#include "cortexm.h"
#include "target.h"

#define CLOCK_HZ ED_CLOCK_HZ
#define UART0_BASE 0x40002000u
#define UART_TASKS_STARTRX ED_REG(UART0_BASE + 0x000u)
#define UART_TASKS_STARTTX ED_REG(UART0_BASE + 0x008u)
#define UART_EVENTS_RXDRDY ED_REG(UART0_BASE + 0x108u)
#define UART_EVENTS_TXDRDY ED_REG(UART0_BASE + 0x11Cu)
#define UART_ENABLE ED_REG(UART0_BASE + 0x500u)
#define UART_PSELTXD ED_REG(UART0_BASE + 0x50Cu)
#define UART_PSELRXD ED_REG(UART0_BASE + 0x514u)
#define UART_RXD ED_REG(UART0_BASE + 0x518u)
#define UART_TXD ED_REG(UART0_BASE + 0x51Cu)
#define UART_BAUDRATE ED_REG(UART0_BASE + 0x524u)
#define BAUDRATE_115200 0x01D7E000u
#define ENABLE_UART 4u
#define PIN_TX 24u /* the micro:bit's interface-chip serial pins */
#define PIN_RX 25u

void board_init(void)
{
    UART_PSELTXD = PIN_TX;
    UART_PSELRXD = PIN_RX;
    UART_BAUDRATE = BAUDRATE_115200;
    UART_ENABLE = ENABLE_UART;
    UART_EVENTS_RXDRDY = 0;
    UART_EVENTS_TXDRDY = 0;
    UART_TASKS_STARTTX = 1;
    UART_TASKS_STARTRX = 1;
    cortexm_cycles_init();
}

void board_uart_putc(uint8_t byte)
{
    UART_TXD = byte;
    while (!UART_EVENTS_TXDRDY) {
    }
    UART_EVENTS_TXDRDY = 0;
}

int board_uart_getc(uint32_t timeout_ms)
{
    uint32_t start = cortexm_millis(CLOCK_HZ);
    while (!UART_EVENTS_RXDRDY) {
        if (cortexm_millis(CLOCK_HZ) - start >= timeout_ms) {
            return -1;
        }
    }
    UART_EVENTS_RXDRDY = 0; /* cleared before RXD is read, so a byte that follows raises it again */
    return (int)(UART_RXD & 0xFFu);
}

uint32_t board_clock_hz(void)
{
    return CLOCK_HZ;
}

const char *board_name(void)
{
    return "microbit";
}
