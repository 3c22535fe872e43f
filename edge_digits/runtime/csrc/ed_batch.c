/*
 * ed_batch.c - the batch entry point of the native runtime backend.
 *
 * Built with a generated engine (model.c, model.h and the kernels) into one
 * shared library that edge_digits.runtime.native calls through ctypes. The
 * caller passes every buffer with its length in bytes; nothing is read or
 * written unless both lengths are exactly n images. C99, no allocation.
 *
 * The engine keeps its activations in one static scratch buffer, so a
 * library runs one ed_invoke at a time: the Python side holds a lock.
 */
#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define ED_BATCH_OK 0
#define ED_BATCH_NULL (-1)          /* a NULL buffer with n > 0 */
#define ED_BATCH_BAD_LENGTH (-2)    /* a buffer length that is not n images */
#define ED_BATCH_INVOKE_FAILED (-3) /* ed_invoke refused an image */

/* Exported so the caller can check the library against the model it expects. */
int32_t ed_batch_input_size(void);
int32_t ed_batch_output_size(void);
int ed_invoke_batch(const int8_t *input, size_t input_len, int8_t *output, size_t output_len, size_t n);

int32_t ed_batch_input_size(void)
{
    return ED_INPUT_SIZE;
}

int32_t ed_batch_output_size(void)
{
    return ED_OUTPUT_SIZE;
}

/* Run n images: input holds n * ED_INPUT_SIZE int8 values (input_len bytes), output receives
 * n * ED_OUTPUT_SIZE (output_len bytes). 0 on success, a negative ED_BATCH_* code otherwise. */
int ed_invoke_batch(const int8_t *input, size_t input_len, int8_t *output, size_t output_len, size_t n)
{
    size_t i;
    if (n > SIZE_MAX / ED_INPUT_SIZE || n > SIZE_MAX / ED_OUTPUT_SIZE) {
        return ED_BATCH_BAD_LENGTH;
    }
    if (input_len != n * ED_INPUT_SIZE || output_len != n * ED_OUTPUT_SIZE) {
        return ED_BATCH_BAD_LENGTH;
    }
    if (n == 0) {
        return ED_BATCH_OK;
    }
    if (input == NULL || output == NULL) {
        return ED_BATCH_NULL;
    }
    for (i = 0; i < n; ++i) {
        if (ed_invoke(input + i * ED_INPUT_SIZE, output + i * ED_OUTPUT_SIZE) != 0) {
            return ED_BATCH_INVOKE_FAILED;
        }
    }
    return ED_BATCH_OK;
}
