/* The IMAGE_DEF block the RP2350 boot ROM needs before it runs a flash image, written from the RP2350
 * datasheet (section 5.9, "Metadata block details": blocks, items, "Minimum Arm IMAGE_DEF"); no
 * pico-sdk code. rp2350.ld places it right after the vector table, inside the first 4 KB of flash
 * that the boot ROM searches.
 *
 * A block is: the start marker, its items, a LAST item giving the items' size in words, a link to the
 * next block of the loop (a byte offset from this block's start; 0: this block is the whole loop),
 * and the end marker. Its one item is IMAGE_TYPE, a 1-byte-size item: type 0x42, size 1 (word), then
 * 16 flag bits: image type EXE (bits 3:0 = 1), security Secure (bits 5:4 = 2), CPU Arm (bits
 * 10:8 = 0), chip RP2350 (bits 14:12 = 1), not try-before-you-buy (bit 15 = 0): 0x1021. With no
 * VECTOR_TABLE item the boot ROM takes the vector table at the start of the image (0x10000000).
 * edge_digits/firmware/uf2.py checks this block in the built image. */
#include <stdint.h>

#define BLOCK_MARKER_START 0xffffded3u
#define BLOCK_MARKER_END 0xab123579u
#define ITEM_IMAGE_TYPE 0x42u /* bit 7 clear: a 1-byte size follows the type */
#define ITEM_LAST 0xffu       /* a 2-byte size (the other items' words) follows the type */
#define IMAGE_TYPE_EXE 0x1u
#define EXE_SECURITY_S (0x2u << 4)
#define EXE_CPU_ARM (0x0u << 8)
#define EXE_CHIP_RP2350 (0x1u << 12)
#define IMAGE_TYPE_FLAGS (IMAGE_TYPE_EXE | EXE_SECURITY_S | EXE_CPU_ARM | EXE_CHIP_RP2350)

__attribute__((section(".image_def"), used, aligned(4))) static const uint32_t image_def[5] = {
    BLOCK_MARKER_START,
    ITEM_IMAGE_TYPE | (1u << 8) | (IMAGE_TYPE_FLAGS << 16), /* IMAGE_TYPE, 1 word, flags 0x1021 */
    ITEM_LAST | (1u << 8),                                  /* LAST: 1 word of items before it */
    0u,                                                     /* link: this block loops to itself */
    BLOCK_MARKER_END,
};
