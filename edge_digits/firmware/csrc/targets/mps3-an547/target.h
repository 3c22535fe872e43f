/* Arm MPS3 with the AN547 FPGA image (Cortex-M55 in an SSE-300, TrustZone, MVE), as QEMU's
 * mps3-an547 models it: the core starts Secure, with a 32 MHz clock; UART0 is the CMSDK APB UART
 * (25 MHz peripheral clock) at 0x49303000, reached through its Secure alias at 0x59303000
 * (see common/cmsdk_board.c). */
#ifndef ED_TARGET_H
#define ED_TARGET_H

#define ED_TARGET_NAME "mps3-an547"
#define ED_CLOCK_HZ 32000000u
#define ED_UART_CLOCK_HZ 25000000u
#define ED_UART0_BASE 0x59303000u

#endif /* ED_TARGET_H */
