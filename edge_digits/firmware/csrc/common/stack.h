/* Stack painting: fill the unused stack with a pattern at reset, and later
 * find how deep the stack ever grew (its high-water mark). */
#ifndef ED_STACK_H
#define ED_STACK_H

#include <stdint.h>

void stack_paint(void);
uint32_t stack_used_bytes(void);
uint32_t stack_size_bytes(void);

#endif /* ED_STACK_H */
