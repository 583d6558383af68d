/* Times model_run of an artifact named `model` (scripts/aot_bench.sh): one
 * warm-up run, then RUNS timed runs on one thread; prints the median in ms.
 * Inputs are a fixed pattern in [-0.5, 0.5) (float32 models). */
#define _POSIX_C_SOURCE 199309L
#include "model.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const size_t input_bytes[MODEL_INPUT_COUNT + 1] = MODEL_INPUT_BYTES_ARRAY;
static const size_t output_bytes[MODEL_OUTPUT_COUNT + 1] = MODEL_OUTPUT_BYTES_ARRAY;

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 30;
    if (runs < 1) runs = 1;
    const void *inputs[MODEL_INPUT_COUNT + 1];
    void *outputs[MODEL_OUTPUT_COUNT + 1];
    for (int i = 0; i < MODEL_INPUT_COUNT; i++) {
        unsigned char *p = malloc(input_bytes[i] + 4);
        for (size_t j = 0; j + 4 <= input_bytes[i]; j += 4) {
            float v = (float)((j / 4 * 37) % 101) / 101.0f - 0.5f;
            memcpy(p + j, &v, 4);
        }
        inputs[i] = p;
    }
    for (int i = 0; i < MODEL_OUTPUT_COUNT; i++) outputs[i] = malloc(output_bytes[i]);
    void *scratch = aligned_alloc(MODEL_SCRATCH_ALIGNMENT, (MODEL_SCRATCH_BYTES + 63) / 64 * 64);
    if (model_run(inputs, outputs, scratch) != KILN_OK) return 1;
    double *ms = malloc(sizeof(double) * runs);
    for (int r = 0; r < runs; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        model_run(inputs, outputs, scratch);
        clock_gettime(CLOCK_MONOTONIC, &b);
        ms[r] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    }
    qsort(ms, runs, sizeof(double), compare);
    printf("%.3f\n", ms[runs / 2]);
    return 0;
}
