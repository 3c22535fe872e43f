// TFLM's DebugLog hooks over the board UART (MicroPrintf ends up here). With
// TF_LITE_STRIP_ERROR_STRINGS (the release build) TFLM never calls them and the
// linker drops them.
#include <stdio.h>

#include "board.h"
#include "tensorflow/lite/micro/debug_log.h"

extern "C" void DebugLog(const char* format, va_list args) {
  char line[256];
  vsnprintf(line, sizeof(line), format, args);
  for (const char* p = line; *p != '\0'; ++p) {
    board_uart_putc(static_cast<uint8_t>(*p));
  }
}

extern "C" int DebugVsnprintf(char* buffer, size_t buf_size,
                              const char* format, va_list vlist) {
  return vsnprintf(buffer, buf_size, format, vlist);
}
