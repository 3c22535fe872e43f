/* libFuzzer harness for the frame parser: any byte sequence must leave the
 * parser in a valid state, never read or write outside its buffers, and every
 * frame it accepts must re-encode to exactly the input bytes it came from.
 *
 * From firmware/host (the parser lives in edge_digits/firmware/csrc/common):
 *
 *   C=../../edge_digits/firmware/csrc/common
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I$C fuzz_proto.c $C/ed_proto.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ed_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ed_parser parser;
    static uint8_t encoded[ED_MAX_PAYLOAD + ED_FRAME_OVERHEAD];
    size_t i;
    ed_parser_reset(&parser);
    for (i = 0; i < size; ++i) {
        enum ed_parse_result r = ed_parser_feed(&parser, data[i]);
        if (parser.length > ED_MAX_PAYLOAD) {
            abort();
        }
        if (r == ED_PARSE_FRAME) {
            size_t n = ed_frame_encode(parser.command, parser.payload, parser.length, encoded, sizeof(encoded));
            if (n != (size_t)parser.length + ED_FRAME_OVERHEAD) {
                abort();
            }
            /* An accepted frame is exactly the last n input bytes, re-encoded. */
            if (n > i + 1 || memcmp(encoded, data + i + 1 - n, n) != 0) {
                abort();
            }
        } else if (r == ED_PARSE_ERROR && parser.error != ED_ERR_BAD_CRC && parser.error != ED_ERR_TOO_LONG) {
            abort();
        }
    }
    return 0;
}
