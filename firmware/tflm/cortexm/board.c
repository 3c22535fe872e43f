/* The MPS2/MPS3 board layer (CMSDK APB UART0 at 115200 baud, the core clock), as in edge-digits'
 * firmware (common/cmsdk_board.c): what differs per machine is in targets/<machine>/target.h. */
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

uint32_t board_clock_hz(void)
{
    return ED_CLOCK_HZ;
}

const char *board_name(void)
{
    return ED_TARGET_NAME;
}

void board_exit(int status)
{
    /* ADP_Stopped_ApplicationExit with an exit code: QEMU (-semihosting) exits with `status`. */
    static volatile uint32_t block[2];
    block[0] = 0x20026u;
    block[1] = (uint32_t)status;
    register uint32_t r0 __asm__("r0") = 0x20u; /* SYS_EXIT_EXTENDED */
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}
