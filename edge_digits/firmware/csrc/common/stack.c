#include "stack.h"

#define STACK_PAINT 0xA5C3A5C3u

extern uint32_t _sstack, _estack;

void stack_paint(void)
{
    uint32_t marker;
    uint32_t *p = &_sstack;
    /* Paint up to just below this frame; the 64-byte gap keeps our own locals intact. */
    uint32_t *limit = (uint32_t *)((uintptr_t)&marker - 64u);
    while (p < limit) {
        *p++ = STACK_PAINT;
    }
}

uint32_t stack_size_bytes(void)
{
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)&_sstack);
}

uint32_t stack_used_bytes(void)
{
    const uint32_t *p = &_sstack;
    while (p < &_estack && *p == STACK_PAINT) {
        ++p;
    }
    return (uint32_t)((uintptr_t)&_estack - (uintptr_t)p);
}
