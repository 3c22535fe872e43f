/* Bare-metal STM32F4: clock tree, USART2 and the cycle counter, register by
 * register (RM0090 / RM0383 / RM0390), no vendor HAL. */
#include "board.h"
#include "cortexm.h"
#include "target.h"

/* The board's clock tree, from its [board.config] in target.toml (written to target.h by the build). */
struct board_clock {
    const char *name;
    uint32_t hse_hz;      /* external clock; 0: leave the clock tree as reset/emulator set it */
    uint32_t hse_bypass;  /* 1: HSE is an external clock signal (ST-Link MCO), not a crystal */
    uint32_t pll_m, pll_n, pll_p, pll_q;
    uint32_t sysclk_hz;   /* core clock once the PLL runs */
    uint32_t apb1_div;    /* APB1 prescaler (USART2's clock is sysclk / apb1_div) */
    uint32_t flash_wait_states;
};

static const struct board_clock BOARD = {ED_BOARD_NAME, ED_HSE_HZ, ED_HSE_BYPASS, ED_PLL_M, ED_PLL_N, ED_PLL_P,
                                         ED_PLL_Q, ED_SYSCLK_HZ, ED_APB1_DIV, ED_FLASH_WAIT_STATES};

#define BAUD 115200u
#define HSI_HZ 16000000u
#define READY_SPINS 200000u

#define RCC_BASE 0x40023800u
#define RCC_CR ED_REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR ED_REG(RCC_BASE + 0x04u)
#define RCC_CFGR ED_REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR ED_REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR ED_REG(RCC_BASE + 0x40u)
#define FLASH_ACR ED_REG(0x40023C00u)
#define GPIOA_MODER ED_REG(0x40020000u)
#define GPIOA_AFRL ED_REG(0x40020020u)
#define USART2_BASE 0x40004400u
#define USART_SR ED_REG(USART2_BASE + 0x00u)
#define USART_DR ED_REG(USART2_BASE + 0x04u)
#define USART_BRR ED_REG(USART2_BASE + 0x08u)
#define USART_CR1 ED_REG(USART2_BASE + 0x0Cu)
#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define SR_ORE (1u << 3)

static uint32_t core_hz = HSI_HZ;
static uint32_t apb1_hz = HSI_HZ;

static int wait_for(volatile uint32_t *reg, uint32_t mask)
{
    uint32_t spins;
    for (spins = 0; spins < READY_SPINS; ++spins) {
        if (*reg & mask) {
            return 1;
        }
    }
    return 0;
}

/* Switch to the board's PLL; if the HSE or PLL never reports ready, stay on the
 * 16 MHz HSI so a wrong board setting still leaves a working (slower) UART. */
static void clock_init(void)
{
    if (BOARD.hse_hz == 0u) {
        core_hz = BOARD.sysclk_hz;
        apb1_hz = BOARD.sysclk_hz / BOARD.apb1_div;
        return;
    }
    RCC_CR |= (1u << 16) | (BOARD.hse_bypass ? (1u << 18) : 0u);
    if (!wait_for(&RCC_CR, 1u << 17)) {
        return;
    }
    RCC_PLLCFGR = BOARD.pll_m | (BOARD.pll_n << 6) | (((BOARD.pll_p / 2u) - 1u) << 16) | (1u << 22)
                  | (BOARD.pll_q << 24);
    RCC_CR |= 1u << 24;
    if (!wait_for(&RCC_CR, 1u << 25)) {
        return;
    }
    FLASH_ACR = BOARD.flash_wait_states | (1u << 8) | (1u << 9) | (1u << 10);
    RCC_CFGR = (RCC_CFGR & ~((0x7u << 10) | 0xF0u | 0x3u))
               | ((BOARD.apb1_div == 4u ? 0x5u : 0x4u) << 10) | 0x2u;
    if (!wait_for(&RCC_CFGR, 0x2u << 2)) {
        return;
    }
    core_hz = BOARD.sysclk_hz;
    apb1_hz = BOARD.sysclk_hz / BOARD.apb1_div;
}

static void usart2_init(void)
{
    RCC_AHB1ENR |= 1u;        /* GPIOA */
    RCC_APB1ENR |= 1u << 17;  /* USART2 */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 4)) | (0xAu << 4);     /* PA2, PA3: alternate function */
    GPIOA_AFRL = (GPIOA_AFRL & ~(0xFFu << 8)) | (0x77u << 8);     /* AF7: USART2 */
    USART_BRR = (apb1_hz + BAUD / 2u) / BAUD;
    USART_CR1 = (1u << 13) | (1u << 3) | (1u << 2);               /* UE, TE, RE */
}

void board_init(void)
{
    clock_init();
    usart2_init();
    cortexm_cycles_init();
}

void board_uart_putc(uint8_t byte)
{
    while (!(USART_SR & SR_TXE)) {
    }
    USART_DR = byte;
}

int board_uart_getc(uint32_t timeout_ms)
{
    uint32_t start = cortexm_millis(core_hz);
    for (;;) {
        uint32_t sr = USART_SR;
        if (sr & (SR_RXNE | SR_ORE)) {
            return (int)(USART_DR & 0xFFu); /* reading DR after SR also clears an overrun */
        }
        if (cortexm_millis(core_hz) - start >= timeout_ms) {
            return -1;
        }
    }
}

uint32_t board_clock_hz(void)
{
    return core_hz;
}

const char *board_name(void)
{
    return BOARD.name;
}
