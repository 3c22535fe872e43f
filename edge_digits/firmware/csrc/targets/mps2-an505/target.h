/* Arm MPS2 with the AN505 FPGA image (Cortex-M33 in an IoT kit subsystem, TrustZone), as QEMU's
 * mps2-an505 models it: the core starts Secure, with a 20 MHz clock; UART0 is the CMSDK APB UART at
 * 0x40200000, reached through its Secure alias at 0x50200000 (see common/cmsdk_board.c). */
#ifndef ED_TARGET_H
#define ED_TARGET_H

#define ED_TARGET_NAME "mps2-an505"
#define ED_CLOCK_HZ 20000000u
#define ED_UART_CLOCK_HZ 20000000u
#define ED_UART0_BASE 0x50200000u

#endif /* ED_TARGET_H */
