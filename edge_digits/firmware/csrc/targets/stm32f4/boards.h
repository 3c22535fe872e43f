/* Clock and UART settings for each supported STM32F4 board. The protocol UART
 * is USART2 on PA2 (TX) / PA3 (RX), alternate function 7, on all of them. */
#ifndef ED_STM32F4_BOARDS_H
#define ED_STM32F4_BOARDS_H

#include <stdint.h>

struct board_clock {
    const char *name;
    uint32_t hse_hz;      /* external clock; 0: leave the clock tree as reset/emulator set it */
    uint32_t hse_bypass;  /* 1: HSE is an external clock signal (ST-Link MCO), not a crystal */
    uint32_t pll_m, pll_n, pll_p, pll_q;
    uint32_t sysclk_hz;   /* core clock once the PLL runs */
    uint32_t apb1_div;    /* APB1 prescaler (USART2's clock is sysclk / apb1_div) */
    uint32_t flash_wait_states;
};

#if defined(ED_BOARD_NUCLEO_F446RE)
/* 8 MHz from the ST-Link's MCO -> VCO 336 MHz -> 168 MHz core, APB1 42 MHz. */
static const struct board_clock BOARD = {"nucleo-f446re", 8000000u, 1u, 8u, 336u, 2u, 7u, 168000000u, 4u, 5u};
#elif defined(ED_BOARD_BLACKPILL_F411)
/* 25 MHz crystal -> VCO 200 MHz -> 100 MHz core (the F411's maximum), APB1 50 MHz. */
static const struct board_clock BOARD = {"blackpill-f411", 25000000u, 0u, 25u, 200u, 2u, 4u, 100000000u, 2u, 3u};
#elif defined(ED_BOARD_NETDUINOPLUS2)
/* QEMU's netduinoplus2 (STM32F405) models no RCC: its core clock is fixed at 168 MHz. */
static const struct board_clock BOARD = {"netduinoplus2", 0u, 0u, 0u, 0u, 0u, 0u, 168000000u, 4u, 5u};
#else
#error "define one of ED_BOARD_NUCLEO_F446RE, ED_BOARD_BLACKPILL_F411, ED_BOARD_NETDUINOPLUS2"
#endif

#endif /* ED_STM32F4_BOARDS_H */
