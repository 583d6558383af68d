/* Runs examples/small_cnn.webnn compiled ahead of time:
 *   kiln compile examples/small_cnn.webnn -o out
 *   cc -O2 -I out examples/aot-c/main.c out/small_cnn.o -lm -o small_cnn && ./small_cnn */
#include "small_cnn.h"
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    static float x[SMALL_CNN_INPUT_0_ELEMENTS], probs[SMALL_CNN_OUTPUT_0_ELEMENTS];
    for (int i = 0; i < SMALL_CNN_INPUT_0_ELEMENTS; i++) x[i] = (float)(i * 37 % 101) / 101.0f - 0.5f;
    void *scratch = aligned_alloc(SMALL_CNN_SCRATCH_ALIGNMENT, SMALL_CNN_SCRATCH_BYTES);
    const void *inputs[] = {x};
    void *outputs[] = {probs};
    int rc = small_cnn_run(inputs, outputs, scratch); /* KILN_OK or a KILN_ERROR_* code */
    if (rc != KILN_OK) return rc;
    for (int i = 0; i < SMALL_CNN_OUTPUT_0_ELEMENTS; i++) printf("%.7g\n", probs[i]);
    free(scratch);
    return 0;
}
