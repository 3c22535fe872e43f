/* Arm MPS2 with the AN386 FPGA image (Cortex-M4F), as QEMU's mps2-an386 models it: a 25 MHz
 * core clock and the CMSDK APB UART0 at 0x40004000 (see common/cmsdk_board.c). */
#ifndef ED_TARGET_H
#define ED_TARGET_H

#define ED_TARGET_NAME "mps2-an386"
#define ED_CLOCK_HZ 25000000u
#define ED_UART_CLOCK_HZ 25000000u
#define ED_UART0_BASE 0x40004000u

#endif /* ED_TARGET_H */
