/* Host driver for the frame parser: reads bytes on stdin, feeds them one by one
 * and prints one line per event ("frame CMD LEN HEXPAYLOAD" or "error CODE"),
 * so tests can check the C parser against the Python encoder. */
#include <stdio.h>

#include "ed_proto.h"

int main(void)
{
    static struct ed_parser parser;
    int c;
    ed_parser_reset(&parser);
    while ((c = getchar()) != EOF) {
        enum ed_parse_result r = ed_parser_feed(&parser, (uint8_t)c);
        if (r == ED_PARSE_FRAME) {
            unsigned i;
            printf("frame %u %u ", parser.command, parser.length);
            for (i = 0; i < parser.length; ++i) {
                printf("%02x", parser.payload[i]);
            }
            printf("\n");
        } else if (r == ED_PARSE_ERROR) {
            printf("error %u\n", parser.error);
        }
    }
    return 0;
}
