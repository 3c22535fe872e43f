// Prints one inference's result and compares it with the golden TFLM output.
#ifndef EDGE_DIGITS_OUTPUT_HANDLER_H_
#define EDGE_DIGITS_OUTPUT_HANDLER_H_

#include <cstddef>
#include <cstdint>

namespace edge_digits {

// Returns 0 when the scores equal the golden outputs compiled in, 1 otherwise.
int HandleOutput(const int8_t* scores, size_t count, uint32_t ticks, size_t arena_used);

}  // namespace edge_digits

#endif  // EDGE_DIGITS_OUTPUT_HANDLER_H_
