/* The edge-digits device protocol: framing, CRC-16 and a byte-at-a-time parser.
 *
 * A frame is: magic (0xED 0x1A), command (1 byte), payload length (2 bytes,
 * little-endian), payload, CRC-16/CCITT-FALSE (2 bytes, little-endian) over
 * command, length and payload. Plain C99 with no allocation, so the same file
 * runs on the microcontroller and in the host fuzzer.
 */
#ifndef ED_PROTO_H
#define ED_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define ED_MAGIC0 0xEDu
#define ED_MAGIC1 0x1Au
#define ED_MAX_PAYLOAD 1024u
#define ED_FRAME_OVERHEAD 7u /* magic 2, command 1, length 2, crc 2 */

enum ed_command {
    ED_CMD_INFO = 0x01,
    ED_CMD_INFER = 0x02,
    ED_CMD_BENCH = 0x03,
    ED_RESPONSE_FLAG = 0x80, /* a response carries its request's command | 0x80 */
    ED_CMD_ERROR = 0x7F
};

enum ed_error {
    ED_ERR_BAD_CRC = 1,
    ED_ERR_TOO_LONG = 2,
    ED_ERR_BAD_LENGTH = 3,
    ED_ERR_UNKNOWN_COMMAND = 4,
    ED_ERR_INFERENCE = 5,
    ED_ERR_TIMEOUT = 6
};

enum ed_parse_result {
    ED_PARSE_MORE = 0,  /* keep feeding bytes */
    ED_PARSE_FRAME = 1, /* a whole frame with a good CRC is in the parser */
    ED_PARSE_ERROR = 2  /* a broken frame was dropped; parser.error says why */
};

struct ed_parser {
    uint8_t state;
    uint8_t command;
    uint16_t length;
    uint16_t received;
    uint16_t crc;
    uint8_t crc_lo;
    uint8_t error;
    uint8_t payload[ED_MAX_PAYLOAD];
};

uint16_t ed_crc16(uint16_t crc, const uint8_t *data, size_t len);
void ed_parser_reset(struct ed_parser *p);
/* Feed one received byte. After ED_PARSE_FRAME or ED_PARSE_ERROR the parser is
 * ready for the next frame; bytes before a magic pair are skipped. */
enum ed_parse_result ed_parser_feed(struct ed_parser *p, uint8_t byte);
/* Write a frame into out (capacity out_cap); returns its size, or 0 when the
 * payload is longer than ED_MAX_PAYLOAD or out is too small. */
size_t ed_frame_encode(uint8_t command, const uint8_t *payload, uint16_t len, uint8_t *out, size_t out_cap);

#endif /* ED_PROTO_H */
