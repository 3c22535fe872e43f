// TFLM benchmark: run the first kTestImageCount MNIST test images through one
// model with TensorFlow Lite Micro and print, per image, its int8 outputs and
// the SysTick cycles of interpreter.Invoke(). Then print the arena bytes used
// and the stack high-water mark, and exit QEMU through semihosting.
//
// Output lines (parsed by tools/run_bench.py):
//   BOARD <name> CPUID <hex> CLOCK <hz> COUNTER <DWT|SysTick> KERNELS <set> OPS <registration>
//     FEATURES <...>
//   IMG <index> <o0> ... <o9> <cycles>
//   ARENA <used bytes> <arena bytes>
//   STACK <high-water bytes> <stack bytes>
//   DONE  (or ERROR <what>)
#include <stdint.h>
#include <string.h>

#include <new>

#include "board.h"
#include "model_data.h"
// The model's ops: edge-digits' model_ops.h (TFLM's default registrations, every input type), or
// with -DTFLM_BENCH_INT8_OPS model_ops_int8.h (TFLM's int8-only registrations).
#if defined(TFLM_BENCH_INT8_OPS)
#include "model_ops_int8.h"
#else
#include "model_ops.h"
#endif
extern "C" {
#include "stack.h"
}
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "test_images.h"

#ifndef ARENA_BYTES
#define ARENA_BYTES (96 * 1024)
#endif

#if defined(CMSIS_NN)
#define KERNEL_SET "cmsis-nn"
#else
#define KERNEL_SET "reference"
#endif
#if defined(TFLM_BENCH_INT8_OPS)
#define OP_REGISTRATION "int8"
#else
#define OP_REGISTRATION "default"
#endif

namespace {

alignas(16) uint8_t g_arena[ARENA_BYTES];
// The resolver and interpreter live in static storage, built with placement
// new and never destroyed, so no destructor is registered and neither sits on
// the stack.
alignas(edge_digits::ModelOpResolver) uint8_t
    g_resolver_storage[sizeof(edge_digits::ModelOpResolver)];
alignas(tflite::MicroInterpreter) uint8_t
    g_interpreter_storage[sizeof(tflite::MicroInterpreter)];

void put_str(const char* s) {
  while (*s != '\0') board_uart_putc(static_cast<uint8_t>(*s++));
}

void put_u32(uint32_t v) {
  char digits[10];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  while (n > 0) board_uart_putc(static_cast<uint8_t>(digits[--n]));
}

void put_i32(int32_t v) {
  if (v < 0) {
    board_uart_putc('-');
    put_u32(static_cast<uint32_t>(-(v + 1)) + 1u);
  } else {
    put_u32(static_cast<uint32_t>(v));
  }
}

void put_hex(uint32_t v) {
  static const char kHex[] = "0123456789abcdef";
  put_str("0x");
  for (int shift = 28; shift >= 0; shift -= 4) {
    board_uart_putc(static_cast<uint8_t>(kHex[(v >> shift) & 0xFu]));
  }
}

[[noreturn]] void fail(const char* what) {
  put_str("ERROR ");
  put_str(what);
  put_str("\n");
  board_exit(1);
  for (;;) {
  }
}

// Which instruction-set features the compiler targeted, as CMSIS-NN sees them.
void put_features() {
#if defined(__ARM_FEATURE_MVE)
  put_str(" MVE");
#endif
#if defined(__ARM_FEATURE_DSP)
  put_str(" DSP");
#endif
#if defined(__ARM_FP)
  put_str(" FP");
#endif
}

}  // namespace

int main() {
  board_init();
  put_str("BOARD ");
  put_str(board_name());
  put_str(" CPUID ");
  put_hex(board_cpuid());
  put_str(" CLOCK ");
  put_u32(board_clock_hz());
  put_str(" COUNTER ");
  put_str(board_cycle_source());
  put_str(" KERNELS " KERNEL_SET " OPS " OP_REGISTRATION " FEATURES");
  put_features();
  put_str("\n");

  const tflite::Model* model = tflite::GetModel(g_model_model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) fail("schema version");

  auto* resolver = new (g_resolver_storage) edge_digits::ModelOpResolver();
  if (edge_digits::RegisterModelOps(*resolver) != kTfLiteOk) fail("ops");
  auto* interpreter = new (g_interpreter_storage)
      tflite::MicroInterpreter(model, *resolver, g_arena, sizeof(g_arena));
  if (interpreter->AllocateTensors() != kTfLiteOk) fail("AllocateTensors");

  TfLiteTensor* input = interpreter->input(0);
  TfLiteTensor* output = interpreter->output(0);
  if (input->type != kTfLiteInt8 || input->bytes != kTestImageBytes) {
    fail("input tensor");
  }
  if (output->type != kTfLiteInt8) fail("output tensor");

  for (uint32_t i = 0; i < kTestImageCount; ++i) {
    memcpy(input->data.int8, g_test_images[i], kTestImageBytes);
    const uint32_t start = board_cycles();
    const TfLiteStatus status = interpreter->Invoke();
    const uint32_t cycles = board_cycles() - start;
    if (status != kTfLiteOk) fail("Invoke");
    put_str("IMG ");
    put_u32(i);
    for (size_t k = 0; k < output->bytes; ++k) {
      put_str(" ");
      put_i32(output->data.int8[k]);
    }
    put_str(" ");
    put_u32(cycles);
    put_str("\n");
  }

  put_str("ARENA ");
  put_u32(static_cast<uint32_t>(interpreter->arena_used_bytes()));
  put_str(" ");
  put_u32(static_cast<uint32_t>(sizeof(g_arena)));
  put_str("\nSTACK ");
  put_u32(stack_used_bytes());
  put_str(" ");
  put_u32(stack_size_bytes());
  put_str("\nDONE\n");
  board_exit(0);
  return 0;
}
