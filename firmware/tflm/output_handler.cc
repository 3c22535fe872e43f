#include "output_handler.h"

#include <cstdio>

#include "model_test_input.h"
#include "tensorflow/lite/micro/micro_time.h"

namespace edge_digits {

int HandleOutput(const int8_t* scores, size_t count, uint32_t ticks, size_t arena_used) {
  size_t best = 0;
  int mismatches = 0;
  for (size_t i = 0; i < count; ++i) {
    if (scores[i] > scores[best]) best = i;
    if (i < kTestOutputBytes && scores[i] != kTestExpectedOutput[i]) ++mismatches;
  }
  std::printf("class %u (label %d)\nscores", static_cast<unsigned>(best), kTestLabel);
  for (size_t i = 0; i < count; ++i) std::printf(" %d", scores[i]);
  std::printf("\nticks %lu (%ld per second)\narena used %lu bytes\n", static_cast<unsigned long>(ticks),
              static_cast<long>(tflite::ticks_per_second()), static_cast<unsigned long>(arena_used));
  std::printf("golden outputs: %s\n", mismatches == 0 ? "identical" : "DIFFERENT");
  return mismatches == 0 ? 0 : 1;
}

}  // namespace edge_digits
