#!/usr/bin/env python3
"""Time an ONNX model on ONNX Runtime's CPU execution provider, like `kiln bench`.

    python3 scripts/bench_ort.py MODEL.onnx [--shape NAME=D0xD1x...]... --threads N --runs R [--json]

--shape takes kiln's syntax and meaning: NAME=D0xD1x... gives graph input NAME's
whole shape (rank and fixed dimensions must agree with the model), NAME=N gives the
symbolic dimension (dim_param) NAME the value N wherever no input-wide binding
covers it. Repeatable. Every dimension of every graph input (inputs that are not
initializers) must end up concrete: an unbound symbolic dimension is an error, as
in kiln. The bound dimensions are written into the graph-input declarations of the
loaded model, which is re-serialised for ORT (the unchanged file's bytes are used
when nothing was bound), so ORT optimises for the same static shapes kiln compiles
for.

Session: CPUExecutionProvider, graph optimisation level ORT_ENABLE_ALL,
intra_op_num_threads = N, inter_op_num_threads = 1, sequential execution.
compile_ms is the InferenceSession creation time from the model's bytes, prepared
beforehand (protobuf parse + graph optimisation + kernel preparation; kiln bench
likewise times compile() after loading the graph). Then one warm-up run and R
timed runs on fixed seeded random inputs for every graph input (created once,
outside the timed region; floats standard normal, integers in [0, 4), booleans
random); median_ms and min_ms are over the R runs, the median taken as
sorted[R / 2] like kiln bench. gflops is the graph's FLOP count under kiln's cost
model (ir/src/cost.rs), applied to the ONNX nodes, over the median time. Its
shapes come from onnx shape inference on the bound model; where that leaves a
node's output shape open (shapes computed at run time, as in PP-OCR's recogniser),
from one extra ORT run that returns every intermediate value, after the timing.

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
from onnx import helper


def parse_shape(arg):
    """kiln's --shape NAME=D0xD1x... (LoadOptions::parse_shape): positive dimensions."""
    name, sep, dims = arg.partition("=")
    if not sep:
        raise ValueError(f"--shape `{arg}`: expected NAME=D0xD1x... (e.g. input=1x3x224x224)")
    if not name:
        raise ValueError(f"--shape `{arg}`: the name is empty")
    try:
        values = [int(d.strip()) for d in dims.split("x")]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"--shape `{arg}`: every dimension must be a positive integer")
    return name, values


def graph_inputs(model):
    """Graph inputs that are not initializers (before IR 4 initializers are listed too)."""
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def bind_shapes(model, bindings):
    """Writes concrete dimensions into the graph-input declarations, kiln's way: an
    input-wide binding first, else the binding of the dimension's dim_param. Returns
    whether anything changed; raises ValueError on a mismatch or an unbound dimension."""
    changed = False
    for info in graph_inputs(model):
        tt = info.type.tensor_type
        if not info.type.HasField("tensor_type"):
            raise ValueError(f"input `{info.name}`: not a tensor")
        given = bindings.get(info.name)
        if not tt.HasField("shape"):
            if given is None:
                raise ValueError(f"input `{info.name}`: the model gives it no shape; give --shape {info.name}=D0x...")
            for v in given:
                tt.shape.dim.add().dim_value = v
            changed = True
            continue
        if given is not None and len(given) != len(tt.shape.dim):
            raise ValueError(
                f"input `{info.name}`: the model gives rank {len(tt.shape.dim)}, --shape gives rank {len(given)}")
        for i, d in enumerate(tt.shape.dim):
            fixed = d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None
            param = d.dim_param if d.HasField("dim_param") and d.dim_param else None
            bound = given[i] if given is not None else (bindings[param][0] if param in bindings else None)
            if fixed is not None:
                if bound is not None and bound != fixed:
                    raise ValueError(f"input `{info.name}`: dimension {i} is {fixed} in the model, --shape gives {bound}")
                continue
            if bound is None:
                what = f" (`{param}`)" if param else ""
                hint = f" or --shape {param}=N" if param else ""
                raise ValueError(
                    f"input `{info.name}`: dimension {i}{what} is symbolic and not bound; "
                    f"give --shape {info.name}=D0x...{hint}")
            d.Clear()
            d.dim_value = bound
            changed = True
    return changed


def random_feeds(model):
    """Seeded random data for every graph input, shaped by its (now concrete) declaration."""
    rng = np.random.default_rng(0)
    feeds = {}
    for info in graph_inputs(model):
        tt = info.type.tensor_type
        shape = [d.dim_value for d in tt.shape.dim]
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        if dtype == np.bool_:
            x = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif np.issubdtype(dtype, np.floating):
            x = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
        else:
            x = rng.integers(0, 4, size=shape).astype(dtype)
        feeds[info.name] = x
    return feeds


def concrete_shapes(model):
    """Shapes (all dimensions known) from onnx shape inference, and of initializers."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is best effort here; the ORT run fills what it leaves open
        inferred = model
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = [d.dim_value for d in tt.shape.dim]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    return shapes


def run_shapes(model, feeds, names):
    """Shapes of the values `names` from one ORT run that returns them as extra outputs."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    for name in names:
        if name not in have:
            probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    values = sess.run(list(names), feeds)
    return {n: list(np.shape(v)) for n, v in zip(names, values)}


# Data movement (and shape computation kiln folds at load time): 0 FLOPs in ir/src/cost.rs.
MOVEMENT = {
    "Reshape", "Transpose", "Concat", "Split", "Slice", "Expand", "Gather", "Pad", "Cast", "Flatten",
    "Squeeze", "Unsqueeze", "Identity", "Constant", "Shape", "Size", "ConstantOfShape",
}
NORMALIZATION = {"BatchNormalization", "InstanceNormalization", "LayerNormalization"}
REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin"}


def graph_flops(model, feeds):
    """FLOPs of the graph with kiln's cost model (ir/src/cost.rs): a multiply-add is 2,
    element-wise operators 1 per output element, pools 1 per window element, reductions
    1 per input element, normalisations 4 and softmax 3 per output element, data
    movement (Reshape, Concat, ...) 0. `model` has concrete input shapes."""
    shapes = concrete_shapes(model)
    wanted = []
    for n in model.graph.node:
        if n.op_type in MOVEMENT:
            continue
        wanted += [o for o in n.output if o]
        if n.op_type in ("Gemm", "MatMul", "ConvTranspose", "GlobalAveragePool", "GlobalMaxPool") or n.op_type in REDUCE:
            wanted.append(n.input[0])
        if n.op_type in ("Conv", "ConvTranspose"):
            wanted.append(n.input[1])
    missing = sorted({v for v in wanted if v not in shapes})
    if missing:
        shapes.update(run_shapes(model, feeds, missing))

    def count(name):
        return int(np.prod(shapes[name], dtype=np.int64))

    flops = 0
    for n in model.graph.node:
        op = n.op_type
        if op in MOVEMENT:
            continue
        out = sum(count(o) for o in n.output if o)
        if op == "Conv":  # W [M, C/group, kH, kW]
            flops += 2 * out * int(np.prod(shapes[n.input[1]][1:]))
        elif op == "ConvTranspose":  # W [C, M/group, kH, kW]
            flops += 2 * count(n.input[0]) * int(np.prod(shapes[n.input[1]][1:]))
        elif op == "Gemm":
            a = shapes[n.input[0]]
            trans_a = any(at.name == "transA" and at.i for at in n.attribute)
            flops += 2 * out * (a[0] if trans_a else a[1])
        elif op == "MatMul":
            flops += 2 * out * shapes[n.input[0]][-1]
        elif op in ("GlobalAveragePool", "GlobalMaxPool"):
            flops += out * int(np.prod(shapes[n.input[0]][2:]))
        elif op in ("MaxPool", "AveragePool", "LpPool"):
            kernel = next(at.ints for at in n.attribute if at.name == "kernel_shape")
            flops += out * int(np.prod(kernel))
        elif op in REDUCE:
            flops += count(n.input[0])
        elif op in NORMALIZATION:
            flops += 4 * out
        elif op in ("Softmax", "LogSoftmax"):
            flops += 3 * out
        else:
            flops += out
    return flops


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--shape", action="append", default=[], metavar="NAME=DIMS",
                    help="bind input NAME's shape (NAME=D0xD1x...) or symbolic dimension NAME (NAME=N); repeatable")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs after one warm-up (default 20)")
    ap.add_argument("--json", action="store_true", help="one JSON line with kiln bench's keys")
    args = ap.parse_args()
    if args.threads < 1 or args.runs < 1:
        ap.error("--threads and --runs must be at least 1")

    # Load and bind before the clock starts: kiln bench times compile() only, after
    # loading the graph and its weights, so disk I/O is kept out of both numbers.
    try:
        bindings = dict(parse_shape(s) for s in args.shape)
        model = onnx.load(args.model)
        changed = bind_shapes(model, bindings)
    except ValueError as e:
        print(f"bench_ort.py: {args.model}: {e}", file=sys.stderr)
        return 1
    if changed:
        model_bytes = model.SerializeToString()
    else:
        with open(args.model, "rb") as f:
            model_bytes = f.read()
    feeds = random_feeds(model)

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1

    t0 = time.perf_counter()
    sess = ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
    compile_ms = (time.perf_counter() - t0) * 1e3

    out_names = [o.name for o in sess.get_outputs()]
    sess.run(out_names, feeds)  # warm-up
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sess.run(out_names, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    del sess

    # Same order statistic as kiln bench: sorted[len / 2] (the upper median for even R).
    times.sort()
    median_ms = times[len(times) // 2]
    min_ms = times[0]
    gflops = graph_flops(model, feeds) / (median_ms * 1e6)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
