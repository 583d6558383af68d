/* The C driver of tests/aot.rs for an artifact named `model`: runs model_run and
 * model_run_parallel (3 tasks on pthreads) on in<i>.bin, checks the error codes,
 * writes seq<i>.bin and par<i>.bin. */
#include "model.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t input_bytes[MODEL_INPUT_COUNT + 1] = MODEL_INPUT_BYTES_ARRAY;
static const size_t output_bytes[MODEL_OUTPUT_COUNT + 1] = MODEL_OUTPUT_BYTES_ARRAY;

struct job { kiln_task_fn fn; void *const *table; uint64_t task, tasks; };
static void *worker(void *p) {
    struct job *j = p;
    j->fn(j->table, j->task, j->tasks);
    return NULL;
}
/* Runs the tasks on fresh threads, task 0 on the caller's. */
static void parallel_for(void *ctx, kiln_task_fn fn, void *const *table, uint64_t tasks) {
    pthread_t threads[16];
    struct job jobs[16];
    ++*(int *)ctx;
    if (tasks > 16) abort();
    for (uint64_t i = 1; i < tasks; i++) {
        jobs[i] = (struct job){fn, table, i, tasks};
        if (pthread_create(&threads[i], NULL, worker, &jobs[i])) abort();
    }
    fn(table, 0, tasks);
    for (uint64_t i = 1; i < tasks; i++) pthread_join(threads[i], NULL);
}

static void *read_file(const char *path, size_t bytes) {
    FILE *f = fopen(path, "rb");
    void *p = malloc(bytes ? bytes : 1);
    if (!f || !p || fread(p, 1, bytes, f) != bytes) { fprintf(stderr, "cannot read %s\n", path); exit(2); }
    fclose(f);
    return p;
}

static void write_outputs(const char *prefix, void *const *outputs) {
    char path[64];
    for (int i = 0; i < MODEL_OUTPUT_COUNT; i++) {
        snprintf(path, sizeof path, "%s%d.bin", prefix, i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(outputs[i], 1, output_bytes[i], f) != output_bytes[i]) exit(3);
        fclose(f);
    }
}

int main(void) {
    const void *inputs[MODEL_INPUT_COUNT + 1] = {0};
    void *outputs[MODEL_OUTPUT_COUNT + 1];
    char path[64];
    for (int i = 0; i < MODEL_INPUT_COUNT; i++) {
        snprintf(path, sizeof path, "in%d.bin", i);
        inputs[i] = read_file(path, input_bytes[i]);
    }
    for (int i = 0; i < MODEL_OUTPUT_COUNT; i++) outputs[i] = malloc(output_bytes[i]);
    size_t bytes = (MODEL_SCRATCH_BYTES_FOR_TASKS(3) + 64 + 63) / 64 * 64;
    char *scratch = aligned_alloc(MODEL_SCRATCH_ALIGNMENT, bytes);
    int calls = 0;
    if (MODEL_SCRATCH_BYTES > MODEL_SCRATCH_BYTES_FOR_TASKS(3)) return 19;
    /* A graph without inputs takes a null inputs array. */
    if (MODEL_INPUT_COUNT > 0 && model_run(NULL, outputs, scratch) != KILN_ERROR_NULL) return 20;
    if (model_run(inputs, NULL, scratch) != KILN_ERROR_NULL) return 26;
    if (model_run(inputs, outputs, NULL) != KILN_ERROR_NULL) return 21;
    if (model_run(inputs, outputs, scratch + 8) != KILN_ERROR_ALIGNMENT) return 22;
    if (model_run_parallel(inputs, outputs, scratch, 0, parallel_for, &calls) != KILN_ERROR_TASKS) return 23;
    if (model_run_parallel(inputs, outputs, scratch, 3, NULL, &calls) != KILN_ERROR_NULL) return 24;
    if (MODEL_INPUT_COUNT > 0) {
        const void *kept = inputs[0];
        inputs[0] = NULL;
        if (model_run(inputs, outputs, scratch) != KILN_ERROR_NULL) return 25;
        inputs[0] = kept;
    }
    int rc = model_run(inputs, outputs, scratch);
    if (rc != KILN_OK) return 30 + rc;
    write_outputs("seq", outputs);
    for (int i = 0; i < MODEL_OUTPUT_COUNT; i++) memset(outputs[i], 0xff, output_bytes[i]);
    rc = model_run_parallel(inputs, outputs, scratch, 3, parallel_for, &calls);
    if (rc != KILN_OK) return 40 + rc;
    if (calls == 0) return 50;
    write_outputs("par", outputs);
    return 0;
}
