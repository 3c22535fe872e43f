#include "cortexm.h"

#include "board.h"

static volatile uint32_t systick_wraps;
static int use_dwt;

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    systick_wraps++;
}

int cortexm_cycles_init(void)
{
    uint32_t before;
    volatile int spin;
    DEMCR |= (1u << 24);    /* TRCENA: turn on the DWT */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;         /* CYCCNTENA */
    before = DWT_CYCCNT;
    for (spin = 0; spin < 100; ++spin) {
    }
    use_dwt = DWT_CYCCNT != before;
    if (!use_dwt) {
        systick_wraps = 0;
        SYST_RVR = 0x00FFFFFFu;
        SYST_CVR = 0;
        SYST_CSR = 0x7u; /* processor clock, interrupt on wrap, enabled */
    }
    return use_dwt;
}

int cortexm_uses_dwt(void)
{
    return use_dwt;
}

/* SysTick reloads at the wrap, a little before its interrupt counts the wrap (at once on silicon
 * unless interrupts are masked; at the next translation block under QEMU). A reading taken in between
 * sees the reloaded counter with the old wrap count, a time 2^24 cycles in the past, so a wrap whose
 * interrupt is still pending is counted here. A pending flag seen with a small counter value belongs
 * to a wrap that came after the value was read, and is left to the interrupt. */
uint32_t cortexm_cycles(void)
{
    uint32_t wraps;
    uint32_t value;
    uint32_t pending;
    if (use_dwt) {
        return DWT_CYCCNT;
    }
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
        pending = SCB_ICSR & ICSR_PENDSTSET;
    } while (wraps != systick_wraps);
    if (pending && value > (0x00FFFFFFu >> 1)) {
        wraps++;
    }
    return (wraps << 24) + (0x00FFFFFFu - value);
}

uint32_t cortexm_millis(uint32_t clock_hz)
{
    static uint32_t last;
    static uint32_t carry;
    static uint32_t millis;
    uint32_t now = cortexm_cycles();
    uint32_t per_ms = clock_hz / 1000u;
    uint32_t delta = now - last;
    if (delta >= 0x80000000u) {
        return millis; /* a reading older than the last one: time never runs back */
    }
    carry += delta;
    last = now;
    while (carry >= per_ms) {
        carry -= per_ms;
        millis++;
    }
    return millis;
}

/* Every Cortex-M target counts cycles the same way. */
uint32_t board_cycles(void)
{
    return cortexm_cycles();
}

const char *board_cycle_source(void)
{
    return use_dwt ? "DWT" : "SysTick";
}

uint32_t board_cpuid(void)
{
    return SCB_CPUID;
}
