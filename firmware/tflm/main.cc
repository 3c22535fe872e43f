// edge-digits on TensorFlow Lite Micro: load the converted model, run the
// compiled-in MNIST test image, print class, scores and elapsed ticks, and
// check the int8 scores against the golden outputs from the TFLM Python runtime.
#include <cstdint>
#include <cstdio>

#include "model_data.h"
#include "model_ops.h"
#include "model_test_input.h"
#include "output_handler.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_time.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef EDGE_DIGITS_ARENA_BYTES
#error "define EDGE_DIGITS_ARENA_BYTES (CMake reads tflm_arena_recommended_bytes from manifest.json)"
#endif

namespace {
alignas(16) uint8_t g_arena[EDGE_DIGITS_ARENA_BYTES];
}  // namespace

int main() {
  const tflite::Model* model = tflite::GetModel(g_model_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    std::printf("error: model schema %u, this TFLM expects %d\n",
                static_cast<unsigned>(model->version()), TFLITE_SCHEMA_VERSION);
    return 1;
  }

  edge_digits::ModelOpResolver resolver;
  if (edge_digits::RegisterModelOps(resolver) != kTfLiteOk) {
    std::printf("error: could not register the model's ops\n");
    return 1;
  }

  tflite::MicroInterpreter interpreter(model, resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    std::printf("error: arena of %u bytes is too small\n", static_cast<unsigned>(sizeof(g_arena)));
    return 1;
  }

  TfLiteTensor* input = interpreter.input(0);
  if (input->type != kTfLiteInt8 || input->bytes != kTestInputBytes) {
    std::printf("error: input tensor is not the %u int8 values the test image holds\n",
                static_cast<unsigned>(kTestInputBytes));
    return 1;
  }
  for (unsigned i = 0; i < kTestInputBytes; ++i) input->data.int8[i] = kTestInput[i];

  const uint32_t start = tflite::GetCurrentTimeTicks();
  if (interpreter.Invoke() != kTfLiteOk) {
    std::printf("error: invoke failed\n");
    return 1;
  }
  const uint32_t ticks = tflite::GetCurrentTimeTicks() - start;

  const TfLiteTensor* output = interpreter.output(0);
  if (output->type != kTfLiteInt8 || output->bytes != kTestOutputBytes) {
    std::printf("error: output tensor is not %u int8 scores\n", static_cast<unsigned>(kTestOutputBytes));
    return 1;
  }
  return edge_digits::HandleOutput(output->data.int8, output->bytes, ticks, interpreter.arena_used_bytes());
}
