#!/usr/bin/env python3
"""Time an ONNX model on ONNX Runtime's CPU execution provider, like `kiln bench`.

    python3 scripts/bench_ort.py MODEL.onnx --threads N --runs R [--json]

Session: CPUExecutionProvider, graph optimisation level ORT_ENABLE_ALL,
intra_op_num_threads = N, inter_op_num_threads = 1, sequential execution.
compile_ms is the InferenceSession creation time from the model's bytes, read
beforehand (protobuf parse + graph optimisation + kernel preparation; kiln bench
likewise times compile() after loading the graph). Then one warm-up run and R
timed runs on a fixed random input (created once, outside the timed region);
median_ms and min_ms are over the R runs, the median taken as sorted[R / 2]
like kiln bench. gflops is the graph's FLOP count under kiln's cost model
(ir/src/cost.rs) over the median time.

--json prints {model, backend, compile_ms, median_ms, min_ms, gflops, threads, runs}
on one line, the keys of `kiln bench --json`.
"""

import argparse
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort


def graph_flops(path):
    """FLOPs of the graph with kiln's cost model (ir/src/cost.rs): a multiply-add is 2,
    element-wise operators 1 per output element, pools 1 per window element, softmax 3
    per output element, data movement (Reshape, Concat, ...) 0."""
    model = onnx.load(path)
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    movement = {"Reshape", "Transpose", "Concat", "Split", "Slice", "Expand", "Gather", "Pad", "Cast", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
    flops = 0
    for n in model.graph.node:
        out = int(np.prod(shapes[n.output[0]]))
        if n.op_type == "Conv":
            flops += 2 * out * int(np.prod(shapes[n.input[1]][1:]))
        elif n.op_type == "Gemm":
            a = shapes[n.input[0]]
            trans_a = any(at.name == "transA" and at.i for at in n.attribute)
            flops += 2 * out * (a[0] if trans_a else a[1])
        elif n.op_type == "MatMul":
            flops += 2 * out * shapes[n.input[0]][-1]
        elif n.op_type in ("GlobalAveragePool", "GlobalMaxPool"):
            flops += out * int(np.prod(shapes[n.input[0]][2:]))
        elif n.op_type in ("MaxPool", "AveragePool"):
            kernel = next(at.ints for at in n.attribute if at.name == "kernel_shape")
            flops += out * int(np.prod(kernel))
        elif n.op_type == "Softmax":
            flops += 3 * out
        elif n.op_type not in movement:
            flops += out
    return flops


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs after one warm-up (default 20)")
    ap.add_argument("--json", action="store_true", help="one JSON line with kiln bench's keys")
    args = ap.parse_args()
    if args.threads < 1 or args.runs < 1:
        ap.error("--threads and --runs must be at least 1")

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1

    # Read the file before the clock starts: kiln bench times compile() only, after
    # loading the graph and its weights, so disk I/O is kept out of both numbers.
    with open(args.model, "rb") as f:
        model_bytes = f.read()
    t0 = time.perf_counter()
    sess = ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
    compile_ms = (time.perf_counter() - t0) * 1e3

    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    feeds = {inp.name: x}
    out_names = [o.name for o in sess.get_outputs()]

    sess.run(out_names, feeds)  # warm-up
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sess.run(out_names, feeds)
        times.append((time.perf_counter() - t) * 1e3)

    # Same order statistic as kiln bench: sorted[len / 2] (the upper median for even R).
    times.sort()
    median_ms = times[len(times) // 2]
    min_ms = times[0]
    gflops = graph_flops(args.model) / (median_ms * 1e6)
    result = {
        "model": args.model,
        "backend": f"onnxruntime-{ort.__version__}-cpu",
        "compile_ms": round(compile_ms, 3),
        "median_ms": round(median_ms, 3),
        "min_ms": round(min_ms, 3),
        "gflops": round(gflops, 3),
        "threads": args.threads,
        "runs": args.runs,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.model}: onnxruntime {ort.__version__} CPU, {args.threads} thread(s), {args.runs} runs\n"
            f"  session   {compile_ms:9.2f} ms\n"
            f"  median    {median_ms:9.3f} ms\n"
            f"  min       {min_ms:9.3f} ms\n"
            f"  {gflops:.2f} GFLOP/s"
        )


if __name__ == "__main__":
    sys.exit(main())
