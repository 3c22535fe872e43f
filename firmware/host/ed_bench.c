/*
 * ed_bench.c - time or count one generated engine: runs ed_invoke on one
 * fixed input ED_BENCH_RUNS times (default 1, for callgrind) and prints the
 * wall time per inference. Build with a generated folder like ed_host.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model.h"

int main(int argc, char **argv)
{
    static int8_t input[ED_INPUT_SIZE];
    static int8_t output[ED_OUTPUT_SIZE];
    long runs = argc > 1 ? atol(argv[1]) : 1;
    long i;
    int checksum = 0;
    clock_t start;
    double seconds;
    for (i = 0; i < ED_INPUT_SIZE; ++i) {
        input[i] = (int8_t)((i * 37) % 256 - 128);
    }
    start = clock();
    for (i = 0; i < runs; ++i) {
        if (ed_invoke(input, output) != 0) {
            return 1;
        }
        checksum += output[0];
    }
    seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    printf("runs %ld us_per_inference %.3f checksum %d\n", runs, 1e6 * seconds / (double)runs, checksum);
    return 0;
}
