/* edge-digits firmware: answer INFO, INFER and BENCH frames on the UART.
 * Every frame in gets exactly one frame out; broken input gets an error frame
 * and the parser starts over, so nothing the host sends can wedge the loop. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "ed_info.h"
#include "ed_proto.h"
#include "model.h"
#include "stack.h"

#define FRAME_TIMEOUT_MS 500u
#define INFO_CAP 768u
#define BENCH_MAX 10000u

#if ED_INPUT_SIZE > ED_MAX_PAYLOAD
#error "the model input does not fit in one frame"
#endif

static struct ed_parser parser;
static int8_t input[ED_INPUT_SIZE];
static int8_t output[ED_OUTPUT_SIZE];
static uint8_t frame[ED_MAX_PAYLOAD + ED_FRAME_OVERHEAD];
static uint8_t reply[ED_MAX_PAYLOAD];

static void send(uint8_t command, const uint8_t *payload, uint16_t len)
{
    size_t n = ed_frame_encode(command, payload, len, frame, sizeof(frame));
    size_t i;
    for (i = 0; i < n; ++i) {
        board_uart_putc(frame[i]);
    }
}

static void send_error(uint8_t code, const char *message)
{
    size_t len = strlen(message);
    if (len > 120u) {
        len = 120u;
    }
    reply[0] = code;
    memcpy(reply + 1, message, len);
    send(ED_CMD_ERROR, reply, (uint16_t)(len + 1u));
}

static void put_u32(uint8_t *dst, uint32_t v)
{
    dst[0] = (uint8_t)v;
    dst[1] = (uint8_t)(v >> 8);
    dst[2] = (uint8_t)(v >> 16);
    dst[3] = (uint8_t)(v >> 24);
}

static size_t append(char *dst, size_t at, size_t cap, const char *text)
{
    while (*text && at + 1u < cap) {
        dst[at++] = *text++;
    }
    dst[at] = '\0';
    return at;
}

static size_t append_u32(char *dst, size_t at, size_t cap, uint32_t v)
{
    char digits[11];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (v % 10u));
        v /= 10u;
    } while (v && n < 10);
    while (n > 0 && at + 1u < cap) {
        dst[at++] = digits[--n];
    }
    dst[at] = '\0';
    return at;
}

static void handle_info(void)
{
    char *text = (char *)reply;
    size_t at = append(text, 0, INFO_CAP, ED_INFO_JSON_PREFIX);
    at = append(text, at, INFO_CAP, ",\"board\":\"");
    at = append(text, at, INFO_CAP, board_name());
    at = append(text, at, INFO_CAP, "\",\"cpuid\":");
    at = append_u32(text, at, INFO_CAP, board_cpuid());
    at = append(text, at, INFO_CAP, ",\"clock_hz\":");
    at = append_u32(text, at, INFO_CAP, board_clock_hz());
    at = append(text, at, INFO_CAP, ",\"cycle_source\":\"");
    at = append(text, at, INFO_CAP, board_cycle_source());
    at = append(text, at, INFO_CAP, "\",\"stack_used_bytes\":");
    at = append_u32(text, at, INFO_CAP, stack_used_bytes());
    at = append(text, at, INFO_CAP, ",\"stack_size_bytes\":");
    at = append_u32(text, at, INFO_CAP, stack_size_bytes());
    at = append(text, at, INFO_CAP, "}");
    send(ED_CMD_INFO | ED_RESPONSE_FLAG, reply, (uint16_t)at);
}

static int run_once(uint32_t *cycles)
{
    uint32_t start = board_cycles();
    int status = ed_invoke(input, output);
    *cycles = board_cycles() - start;
    return status;
}

static void handle_infer(const uint8_t *payload, uint16_t len)
{
    uint32_t cycles;
    unsigned i;
    unsigned best = 0;
    if (len != ED_INPUT_SIZE) {
        send_error(ED_ERR_BAD_LENGTH, "INFER needs exactly the model's input bytes");
        return;
    }
    memcpy(input, payload, ED_INPUT_SIZE);
    if (run_once(&cycles) != 0) {
        send_error(ED_ERR_INFERENCE, "ed_invoke failed");
        return;
    }
    for (i = 1; i < ED_OUTPUT_SIZE; ++i) {
        if (output[i] > output[best]) {
            best = i;
        }
    }
    reply[0] = (uint8_t)best;
    memcpy(reply + 1, output, ED_OUTPUT_SIZE);
    put_u32(reply + 1 + ED_OUTPUT_SIZE, cycles);
    send(ED_CMD_INFER | ED_RESPONSE_FLAG, reply, (uint16_t)(ED_OUTPUT_SIZE + 5u));
}

static void handle_bench(const uint8_t *payload, uint16_t len)
{
    uint32_t count;
    uint32_t i;
    uint32_t cycles;
    uint32_t lo = 0xFFFFFFFFu;
    uint32_t hi = 0;
    uint32_t total_lo = 0;
    uint32_t total_hi = 0;
    if (len != 2u) {
        send_error(ED_ERR_BAD_LENGTH, "BENCH needs a 2-byte count");
        return;
    }
    count = (uint32_t)payload[0] | ((uint32_t)payload[1] << 8);
    if (count == 0u || count > BENCH_MAX) {
        send_error(ED_ERR_BAD_LENGTH, "BENCH count must be 1..10000");
        return;
    }
    for (i = 0; i < count; ++i) {
        if (run_once(&cycles) != 0) {
            send_error(ED_ERR_INFERENCE, "ed_invoke failed");
            return;
        }
        lo = cycles < lo ? cycles : lo;
        hi = cycles > hi ? cycles : hi;
        total_lo += cycles;
        if (total_lo < cycles) {
            total_hi++;
        }
    }
    reply[0] = (uint8_t)count;
    reply[1] = (uint8_t)(count >> 8);
    put_u32(reply + 2, total_lo);
    put_u32(reply + 6, total_hi);
    put_u32(reply + 10, lo);
    put_u32(reply + 14, hi);
    send(ED_CMD_BENCH | ED_RESPONSE_FLAG, reply, 18u);
}

static void dispatch(void)
{
    switch (parser.command) {
    case ED_CMD_INFO:
        handle_info();
        break;
    case ED_CMD_INFER:
        handle_infer(parser.payload, parser.length);
        break;
    case ED_CMD_BENCH:
        handle_bench(parser.payload, parser.length);
        break;
    default:
        send_error(ED_ERR_UNKNOWN_COMMAND, "unknown command");
        break;
    }
}

int main(void)
{
    board_init();
    ed_parser_reset(&parser);
    for (;;) {
        int c = board_uart_getc(FRAME_TIMEOUT_MS);
        if (c < 0) {
            if (parser.state != 0u) {
                ed_parser_reset(&parser);
                send_error(ED_ERR_TIMEOUT, "frame cut short: no byte for 500 ms");
            }
            continue;
        }
        switch (ed_parser_feed(&parser, (uint8_t)c)) {
        case ED_PARSE_FRAME:
            dispatch();
            break;
        case ED_PARSE_ERROR:
            send_error(parser.error, parser.error == ED_ERR_BAD_CRC ? "bad CRC" : "payload longer than 1024 bytes");
            ed_parser_reset(&parser);
            break;
        default:
            break;
        }
    }
}
