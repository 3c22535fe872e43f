#include "ed_proto.h"

enum {
    S_MAGIC0 = 0,
    S_MAGIC1,
    S_COMMAND,
    S_LEN0,
    S_LEN1,
    S_PAYLOAD,
    S_CRC0,
    S_CRC1
};

uint16_t ed_crc16(uint16_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    int bit;
    for (i = 0; i < len; ++i) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (bit = 0; bit < 8; ++bit) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

void ed_parser_reset(struct ed_parser *p)
{
    p->state = S_MAGIC0;
    p->command = 0;
    p->length = 0;
    p->received = 0;
    p->crc = 0xFFFFu;
    p->crc_lo = 0;
    p->error = 0;
}

static void crc_byte(struct ed_parser *p, uint8_t byte)
{
    p->crc = ed_crc16(p->crc, &byte, 1);
}

enum ed_parse_result ed_parser_feed(struct ed_parser *p, uint8_t byte)
{
    switch (p->state) {
    case S_MAGIC0:
        if (byte == ED_MAGIC0) {
            p->state = S_MAGIC1;
        }
        return ED_PARSE_MORE;
    case S_MAGIC1:
        if (byte == ED_MAGIC1) {
            ed_parser_reset(p);
            p->state = S_COMMAND;
        } else if (byte != ED_MAGIC0) {
            p->state = S_MAGIC0;
        }
        return ED_PARSE_MORE;
    case S_COMMAND:
        p->command = byte;
        crc_byte(p, byte);
        p->state = S_LEN0;
        return ED_PARSE_MORE;
    case S_LEN0:
        p->length = byte;
        crc_byte(p, byte);
        p->state = S_LEN1;
        return ED_PARSE_MORE;
    case S_LEN1:
        p->length = (uint16_t)(p->length | ((uint16_t)byte << 8));
        crc_byte(p, byte);
        if (p->length > ED_MAX_PAYLOAD) {
            ed_parser_reset(p);
            p->error = ED_ERR_TOO_LONG;
            return ED_PARSE_ERROR;
        }
        p->received = 0;
        p->state = p->length ? S_PAYLOAD : S_CRC0;
        return ED_PARSE_MORE;
    case S_PAYLOAD:
        if (p->received < ED_MAX_PAYLOAD) {
            p->payload[p->received] = byte;
        }
        p->received++;
        crc_byte(p, byte);
        if (p->received >= p->length) {
            p->state = S_CRC0;
        }
        return ED_PARSE_MORE;
    case S_CRC0:
        p->crc_lo = byte;
        p->state = S_CRC1;
        return ED_PARSE_MORE;
    case S_CRC1:
    default: {
        uint16_t got = (uint16_t)(p->crc_lo | ((uint16_t)byte << 8));
        uint16_t want = p->crc;
        uint8_t command = p->command;
        uint16_t length = p->length;
        p->state = S_MAGIC0;
        if (got != want) {
            p->error = ED_ERR_BAD_CRC;
            return ED_PARSE_ERROR;
        }
        p->command = command;
        p->length = length;
        return ED_PARSE_FRAME;
    }
    }
}

size_t ed_frame_encode(uint8_t command, const uint8_t *payload, uint16_t len, uint8_t *out, size_t out_cap)
{
    uint16_t crc;
    size_t i;
    if (len > ED_MAX_PAYLOAD || out_cap < (size_t)len + ED_FRAME_OVERHEAD) {
        return 0;
    }
    out[0] = ED_MAGIC0;
    out[1] = ED_MAGIC1;
    out[2] = command;
    out[3] = (uint8_t)(len & 0xFFu);
    out[4] = (uint8_t)(len >> 8);
    for (i = 0; i < len; ++i) {
        out[5 + i] = payload[i];
    }
    crc = ed_crc16(0xFFFFu, out + 2, (size_t)len + 3u);
    out[5 + len] = (uint8_t)(crc & 0xFFu);
    out[6 + len] = (uint8_t)(crc >> 8);
    return (size_t)len + ED_FRAME_OVERHEAD;
}
