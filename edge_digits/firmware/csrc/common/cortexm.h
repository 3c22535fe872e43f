/* Cortex-M system registers used by every target (ARMv7-M architecture manual addresses). */
#ifndef ED_CORTEXM_H
#define ED_CORTEXM_H

#include <stdint.h>

#define ED_REG(addr) (*(volatile uint32_t *)(addr))

#define SYST_CSR ED_REG(0xE000E010u)
#define SYST_RVR ED_REG(0xE000E014u)
#define SYST_CVR ED_REG(0xE000E018u)
#define SCB_CPUID ED_REG(0xE000ED00u)
#define SCB_ICSR ED_REG(0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26) /* SysTick's interrupt is pending: it has not run yet */
#define SCB_CPACR ED_REG(0xE000ED88u)
#define DEMCR ED_REG(0xE000EDFCu)
#define DWT_CTRL ED_REG(0xE0001000u)
#define DWT_CYCCNT ED_REG(0xE0001004u)

/* Start a cycle counter: the DWT's when it counts, else SysTick with a wrap
 * interrupt. Returns 1 when the DWT is used. */
int cortexm_cycles_init(void);
uint32_t cortexm_cycles(void);
int cortexm_uses_dwt(void);
/* Milliseconds since cortexm_cycles_init, from the same counter. */
uint32_t cortexm_millis(uint32_t clock_hz);

#endif /* ED_CORTEXM_H */
