#!/usr/bin/env python3
"""Time a TFLite model on LiteRT (pip ai-edge-litert) with its default XNNPACK delegate,
like `kiln bench`.

    python3 scripts/bench_litert.py MODEL.tflite --threads N --runs R [--json]

Interpreter: ai_edge_litert.interpreter.Interpreter(model_content=..., num_threads=N)
with the default op resolver (builtin kernels with the XNNPACK delegate applied, as
LiteRT ships it). compile_ms is the interpreter creation from the model's bytes, read
beforehand, plus allocate_tensors() (delegate preparation, weight packing). Then one
warm-up run and R timed runs of invoke() on fixed seeded inputs for every input
(created once and set before each run, outside the timed region: floats uniform in
[-1, 1], uint8 in [0, 255], int8 in [-128, 127], other integers in [0, 4)); median_ms
and min_ms are over the R runs, the median taken as sorted[R / 2] like kiln bench.

--json prints {model, backend, compile_ms, median_ms, min_ms, threads, runs} on one
line, the keys of `kiln bench --json` (gflops is not computed here).
"""

import argparse
import json
import sys
import time

import numpy as np


def make_input(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if dtype == np.int8:
        return rng.integers(-128, 128, size=shape, dtype=np.int8)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 4, size=shape).astype(dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads < 1 or args.runs < 1:
        ap.error("--threads and --runs must be at least 1")

    from ai_edge_litert.interpreter import Interpreter

    with open(args.model, "rb") as f:
        data = f.read()
    start = time.perf_counter()
    it = Interpreter(model_content=data, num_threads=args.threads)
    it.allocate_tensors()
    compile_ms = (time.perf_counter() - start) * 1e3

    rng = np.random.default_rng(0)
    feeds = [(d["index"], make_input(rng, d["shape"], d["dtype"])) for d in it.get_input_details()]

    def run():
        for index, value in feeds:
            it.set_tensor(index, value)
        t0 = time.perf_counter()
        it.invoke()
        return (time.perf_counter() - t0) * 1e3

    run()
    times = sorted(run() for _ in range(args.runs))
    result = {
        "model": args.model,
        "backend": "litert-xnnpack",
        "compile_ms": compile_ms,
        "median_ms": times[len(times) // 2],
        "min_ms": times[0],
        "threads": args.threads,
        "runs": args.runs,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model}: LiteRT (XNNPACK), {args.threads} thread(s): median {result['median_ms']:.3f} ms, "
              f"min {result['min_ms']:.3f} ms over {args.runs} runs; interpreter + allocate {compile_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
