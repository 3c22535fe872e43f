/* Boot stage 2 for the RP2040, written from the RP2040 datasheet (section 2.8.1, "Flash boot", and
 * section 4.10, the SSI's registers); no pico-sdk code. It is assembly (a C file only because the
 * firmware Makefile builds C sources), in its own section that rp2040.ld puts first in flash.
 *
 * The boot ROM copies the first 256 bytes of flash to SRAM at 0x20041f00, checks a CRC-32 of its
 * first 252 bytes against the last 4 and runs it there: so this code is position independent (only
 * PC-relative literal loads) and fits in 252 bytes. The CRC word at offset 252 is written by
 * edge_digits/firmware/uf2.py when the image is converted, not by the assembler.
 *
 * It sets the SSI up for execute-in-place with plain 03h serial reads (instruction and 24-bit
 * address on one line, 32 data bits per frame): the slowest mode, which every SPI NOR flash chip
 * answers. SCK is clk_sys / 4: 31.25 MHz once board.c runs clk_sys at 125 MHz, under the 50 MHz an
 * 03h read allows on the Pico's W25Q16JV. Then it points VTOR at the vector table that follows at
 * 0x10000100 and enters the image through it, as a reset would. */

__asm__(
    ".pushsection .boot2, \"ax\"\n"
    ".syntax unified\n"
    ".thumb\n"
    ".equ ED_SSI_BASE,       0x18000000\n"
    ".equ ED_SSI_CTRLR0,     0x00\n"
    ".equ ED_SSI_CTRLR1,     0x04\n"
    ".equ ED_SSI_SSIENR,     0x08\n"
    ".equ ED_SSI_SER,        0x10\n"
    ".equ ED_SSI_BAUDR,      0x14\n"
    ".equ ED_SSI_SPI_CTRLR0, 0xf4\n"
    ".equ ED_SCB_VTOR,       0xe000ed08\n"
    ".equ ED_IMAGE_VECTORS,  0x10000100\n"
    ".equ ED_SSI_CLKDIV,     4\n"
    /* CTRLR0: SPI_FRF (22:21) = 0 standard SPI, DFS_32 (20:16) = 31 (32-bit frames),
     * TMOD (9:8) = 3 EEPROM read (send instruction and address, then receive) */
    ".equ ED_CTRLR0_XIP,     (31 << 16) | (3 << 8)\n"
    /* SPI_CTRLR0: XIP_CMD (31:24) = 0x03 read data, INST_L (9:8) = 2 (8-bit instruction),
     * ADDR_L (5:2) = 6 (24 address bits, in units of 4), TRANS_TYPE (1:0) = 0 (both serial) */
    ".equ ED_SPI_CTRLR0_XIP, (0x03 << 24) | (2 << 8) | (6 << 2)\n"
    ".global ed_boot2\n"
    ".type ed_boot2, %function\n"
    "ed_boot2:\n"
    "    ldr r3, =ED_SSI_BASE\n"
    "    movs r1, #0\n"
    "    str r1, [r3, #ED_SSI_SSIENR]\n"      /* the SSI takes a new configuration only while disabled */
    "    movs r1, #ED_SSI_CLKDIV\n"
    "    str r1, [r3, #ED_SSI_BAUDR]\n"
    "    ldr r1, =ED_CTRLR0_XIP\n"
    "    str r1, [r3, #ED_SSI_CTRLR0]\n"
    "    ldr r0, =ED_SSI_BASE + ED_SSI_SPI_CTRLR0\n"
    "    ldr r1, =ED_SPI_CTRLR0_XIP\n"
    "    str r1, [r0]\n"
    "    movs r1, #0\n"
    "    str r1, [r3, #ED_SSI_CTRLR1]\n"      /* NDF = 0: one 32-bit data frame per XIP transfer */
    "    movs r1, #1\n"
    "    str r1, [r3, #ED_SSI_SER]\n"         /* select the flash chip (slave select 0) */
    "    str r1, [r3, #ED_SSI_SSIENR]\n"
    "    ldr r0, =ED_IMAGE_VECTORS\n"
    "    ldr r1, =ED_SCB_VTOR\n"
    "    str r0, [r1]\n"
    "    ldr r1, [r0]\n"                      /* the initial stack pointer */
    "    ldr r2, [r0, #4]\n"                  /* the reset handler (Thumb bit set) */
    "    msr msp, r1\n"
    "    bx r2\n"
    "    .ltorg\n"
    "    .org 252\n"
    "    .word 0\n"                           /* CRC-32/MPEG-2 of bytes 0..251: patched in by uf2.py */
    ".size ed_boot2, . - ed_boot2\n"
    ".popsection\n");
