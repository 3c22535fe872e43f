/*
 * ed_host.c - run a generated engine over a stream of images on a PC.
 *
 * Reads int8 images of ED_INPUT_SIZE bytes from stdin until end of file and
 * writes ED_OUTPUT_SIZE int8 scores per image to stdout, so a test can push
 * all 10,000 MNIST test images through one process. Build it together with a
 * generated folder: cc -std=c99 -I DIR DIR/(all .c files) firmware/host/ed_host.c
 */
#include <stdio.h>

#include "model.h"

int main(void)
{
    static int8_t input[ED_INPUT_SIZE];
    static int8_t output[ED_OUTPUT_SIZE];
    size_t n;
    while ((n = fread(input, 1, sizeof input, stdin)) == sizeof input) {
        if (ed_invoke(input, output) != 0) {
            fprintf(stderr, "ed_invoke failed\n");
            return 2;
        }
        if (fwrite(output, 1, sizeof output, stdout) != sizeof output) {
            fprintf(stderr, "write failed\n");
            return 3;
        }
    }
    if (n != 0 || ferror(stdin)) {
        fprintf(stderr, "input is not a whole number of %d-byte images\n", ED_INPUT_SIZE);
        return 1;
    }
    return 0;
}
