/* Raspberry Pi Pico (RP2040: Cortex-M0+, 264 KB SRAM, 2 MB QSPI flash through XIP), register by
 * register from the RP2040 datasheet (chapter 2: resets 2.14, clocks 2.15, XOSC 2.16, PLL 2.18;
 * chapter 2.19 IO_BANK0 and PADS_BANK0; chapter 4.2 UART), no pico-sdk.
 *
 * Clocks: the 12 MHz crystal (XOSC) drives clk_ref; PLL_SYS makes 12 MHz / REFDIV 1 * FBDIV 125 =
 * 1500 MHz VCO, / 6 / 2 = 125 MHz for clk_sys; clk_peri (the UART's clock) runs from clk_sys.
 * The protocol UART is UART0 on GPIO0 (TX) and GPIO1 (RX), function 2, 115200 8N1, polled.
 * Cycles: the M0+ has no DWT cycle counter, so SysTick counts core clocks (24 bits, its wrap
 * interrupt extends it; common/cortexm.c reads it). The DWT is never touched on this core. */
#include "board.h"
#include "cortexm.h"
#include "target.h"

#define XOSC_HZ ED_XOSC_HZ
#define SYS_HZ ED_CLOCK_HZ
#define BAUD 115200u

/* Every APB register has an atomic set alias at +0x2000 and clear alias at +0x3000 (2.1.2). */
#define SET_ALIAS 0x2000u
#define CLR_ALIAS 0x3000u

#define RESETS_BASE 0x4000c000u
#define RESETS_RESET_SET ED_REG(RESETS_BASE + SET_ALIAS)
#define RESETS_RESET_CLR ED_REG(RESETS_BASE + CLR_ALIAS)
#define RESETS_DONE ED_REG(RESETS_BASE + 0x08u)
#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_PLL_SYS (1u << 12)
#define RESET_UART0 (1u << 22)

#define CLOCKS_BASE 0x40008000u
#define CLK_REF_CTRL ED_REG(CLOCKS_BASE + 0x30u)
#define CLK_REF_DIV ED_REG(CLOCKS_BASE + 0x34u)
#define CLK_REF_SELECTED ED_REG(CLOCKS_BASE + 0x38u)
#define CLK_SYS_CTRL ED_REG(CLOCKS_BASE + 0x3cu)
#define CLK_SYS_DIV ED_REG(CLOCKS_BASE + 0x40u)
#define CLK_SYS_SELECTED ED_REG(CLOCKS_BASE + 0x44u)
#define CLK_PERI_CTRL ED_REG(CLOCKS_BASE + 0x48u)
#define CLK_REF_SRC_XOSC 0x2u            /* CLK_REF_CTRL.SRC: xosc_clksrc */
#define CLK_SYS_SRC_AUX 0x1u             /* CLK_SYS_CTRL.SRC: clksrc_clk_sys_aux (AUXSRC 0: pll_sys) */
#define CLK_DIV_1 (1u << 8)              /* DIV.INT = 1 (INT starts at bit 8 on the RP2040) */
#define CLK_PERI_ENABLE (1u << 11)       /* CLK_PERI_CTRL.AUXSRC (7:5) = 0: clk_sys */

#define XOSC_BASE 0x40024000u
#define XOSC_CTRL ED_REG(XOSC_BASE + 0x00u)
#define XOSC_STATUS ED_REG(XOSC_BASE + 0x04u)
#define XOSC_STARTUP ED_REG(XOSC_BASE + 0x0cu)
#define XOSC_ENABLE (0xfabu << 12)       /* CTRL.ENABLE magic */
#define XOSC_RANGE_1_15MHZ 0xaa0u        /* CTRL.FREQ_RANGE */
#define XOSC_STABLE (1u << 31)
/* STARTUP.DELAY counts 256 crystal cycles: 1 ms is 47 at 12 MHz; wait about 16 ms, crystals vary. */
#define XOSC_DELAY ((XOSC_HZ / 1000u * 16u + 128u) / 256u)

#define PLL_SYS_BASE 0x40028000u
#define PLL_CS ED_REG(PLL_SYS_BASE + 0x0u)
#define PLL_PWR ED_REG(PLL_SYS_BASE + 0x4u)
#define PLL_FBDIV_INT ED_REG(PLL_SYS_BASE + 0x8u)
#define PLL_PRIM ED_REG(PLL_SYS_BASE + 0xcu)
#define PLL_LOCK (1u << 31)
#define PLL_PWR_PD (1u << 0)
#define PLL_PWR_DSMPD (1u << 2)          /* left set: integer mode */
#define PLL_PWR_POSTDIVPD (1u << 3)
#define PLL_PWR_VCOPD (1u << 5)

#define IO_BANK0_BASE 0x40014000u
#define GPIO_CTRL(n) ED_REG(IO_BANK0_BASE + 0x04u + 8u * (n))
#define FUNCSEL_UART 2u
#define PADS_BANK0_BASE 0x4001c000u
#define PADS_GPIO(n) ED_REG(PADS_BANK0_BASE + 0x04u + 4u * (n))
#define PAD_IE (1u << 6)
#define PAD_DRIVE_4MA (1u << 4)
#define PAD_PUE (1u << 3)
#define PAD_SCHMITT (1u << 1)

#define UART0_BASE 0x40034000u
#define UART_DR ED_REG(UART0_BASE + 0x000u)
#define UART_RSR ED_REG(UART0_BASE + 0x004u)
#define UART_FR ED_REG(UART0_BASE + 0x018u)
#define UART_IBRD ED_REG(UART0_BASE + 0x024u)
#define UART_FBRD ED_REG(UART0_BASE + 0x028u)
#define UART_LCR_H ED_REG(UART0_BASE + 0x02cu)
#define UART_CR ED_REG(UART0_BASE + 0x030u)
#define FR_RXFE (1u << 4)
#define FR_TXFF (1u << 5)
#define LCR_H_8N1_FIFO ((3u << 5) | (1u << 4)) /* WLEN 8 bits, FIFOs on, no parity, 1 stop bit */
#define CR_ENABLE ((1u << 9) | (1u << 8) | 1u) /* RXE, TXE, UARTEN */

#define NVIC_ICER0 ED_REG(0xe000e180u)
#define NVIC_ICPR0 ED_REG(0xe000e280u)

static void spin(uint32_t n)
{
    volatile uint32_t i;
    for (i = 0; i < n; ++i) {
    }
}

static void unreset(uint32_t mask)
{
    RESETS_RESET_CLR = mask;
    while ((RESETS_DONE & mask) != mask) {
    }
}

/* Crystal, then PLL_SYS, then clk_sys: each switch goes through the glitchless muxes (2.15.3.2). */
static void clocks_init(void)
{
    /* clk_sys back on clk_ref (the glitchless SRC mux) before the PLL is touched; its aux mux is not
     * glitchless, so AUXSRC changes only while SRC is off it */
    CLK_SYS_CTRL &= ~CLK_SYS_SRC_AUX;
    while (!(CLK_SYS_SELECTED & 1u)) {
    }
    XOSC_STARTUP = XOSC_DELAY;
    XOSC_CTRL = XOSC_ENABLE | XOSC_RANGE_1_15MHZ;
    while (!(XOSC_STATUS & XOSC_STABLE)) {
    }
    CLK_REF_DIV = CLK_DIV_1;
    CLK_REF_CTRL = (CLK_REF_CTRL & ~0x3u) | CLK_REF_SRC_XOSC;
    while (!(CLK_REF_SELECTED & (1u << CLK_REF_SRC_XOSC))) {
    }

    RESETS_RESET_SET = RESET_PLL_SYS; /* a clean PLL, whatever ran before a warm reset left in it */
    unreset(RESET_PLL_SYS);
    PLL_CS = 1u; /* REFDIV */
    PLL_FBDIV_INT = ED_PLL_FBDIV;
    PLL_PWR = PLL_PWR_DSMPD | PLL_PWR_POSTDIVPD; /* power up the PLL and its VCO */
    while (!(PLL_CS & PLL_LOCK)) {
    }
    PLL_PRIM = (ED_PLL_POSTDIV1 << 16) | (ED_PLL_POSTDIV2 << 12);
    PLL_PWR = PLL_PWR_DSMPD; /* and the post dividers */

    CLK_SYS_DIV = CLK_DIV_1;
    CLK_SYS_CTRL = 0u; /* AUXSRC = pll_sys while SRC is still clk_ref, then switch */
    CLK_SYS_CTRL = CLK_SYS_SRC_AUX;
    while (!(CLK_SYS_SELECTED & (1u << CLK_SYS_SRC_AUX))) {
    }
    CLK_PERI_CTRL &= ~CLK_PERI_ENABLE; /* change AUXSRC only while stopped, a few cycles after */
    spin(100u);
    CLK_PERI_CTRL = 0u;
    CLK_PERI_CTRL = CLK_PERI_ENABLE;
}

static void uart0_init(void)
{
    uint32_t div;
    RESETS_RESET_SET = RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0;
    unreset(RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0);
    PADS_GPIO(0) = PAD_IE | PAD_DRIVE_4MA | PAD_SCHMITT;
    PADS_GPIO(1) = PAD_IE | PAD_DRIVE_4MA | PAD_PUE | PAD_SCHMITT; /* RX idles high when unwired */
    GPIO_CTRL(0) = FUNCSEL_UART;
    GPIO_CTRL(1) = FUNCSEL_UART;
    /* PL011 divisor in 1/64ths: clk_peri / (16 * baud) = IBRD + FBRD / 64, rounded */
    div = (4u * SYS_HZ + BAUD / 2u) / BAUD;
    UART_IBRD = div >> 6;
    UART_FBRD = div & 0x3fu;
    UART_LCR_H = LCR_H_8N1_FIFO; /* the write to LCR_H also latches the divisor */
    UART_CR = CR_ENABLE;
}

static void systick_init(void)
{
    /* What cortexm_cycles_init does when the DWT does not count, without probing the DWT (its
     * registers are not part of this core): cortexm.c's counter reads SysTick while its DWT flag is
     * clear, which it is until cortexm_cycles_init runs. */
    SYST_CSR = 0u;
    SYST_RVR = 0x00ffffffu;
    SYST_CVR = 0u;
    SYST_CSR = 0x7u; /* processor clock, interrupt on wrap, enabled */
}

void board_init(void)
{
    NVIC_ICER0 = 0xffffffffu; /* the vector table has no IRQ entries: keep every IRQ off */
    NVIC_ICPR0 = 0xffffffffu;
    clocks_init();
    uart0_init();
    systick_init();
    __asm__ volatile("cpsie i" ::: "memory"); /* SysTick's wrap interrupt must run */
}

void board_uart_putc(uint8_t byte)
{
    while (UART_FR & FR_TXFF) {
    }
    UART_DR = byte;
}

int board_uart_getc(uint32_t timeout_ms)
{
    uint32_t start = cortexm_millis(SYS_HZ);
    uint32_t dr;
    while (UART_FR & FR_RXFE) {
        if (cortexm_millis(SYS_HZ) - start >= timeout_ms) {
            return -1;
        }
    }
    dr = UART_DR;
    if (dr & 0xf00u) {
        UART_RSR = 0u; /* framing, parity, break or overrun: clear it; the frame's CRC catches the byte */
    }
    return (int)(dr & 0xffu);
}

uint32_t board_clock_hz(void)
{
    return SYS_HZ;
}

const char *board_name(void)
{
    return ED_BOARD_NAME;
}
