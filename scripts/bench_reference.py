"""The reference side of `kiln bench MODEL --compare onnxruntime|litert`.

kiln embeds this file (include_str!) and runs it as `PYTHON -c SCRIPT ENGINE MODEL
THREADS INPUTS_DIR`; it can also be run by hand the same way. It talks over
stdin/stdout, one JSON object per line:

- start: loads ENGINE (onnxruntime or litert), prints {"ready": true, "engine",
  "version", "compile_ms"} or {"error": "..."} and exits 1.
- `run N` on stdin: N timed runs, prints {"times_ms": [...]}.
- end of input (or any other line): exits.

INPUTS_DIR holds inputs.json, [{"name": NAME, "file": FILE.npy}, ...], the inputs
kiln feeds its own runs, so both engines compute on the same values.

onnxruntime: CPUExecutionProvider, ORT_ENABLE_ALL, intra_op_num_threads = THREADS,
inter_op_num_threads = 1, sequential execution; symbolic input dimensions are fixed
to the given inputs' sizes (add_free_dimension_override_by_name), so ORT plans for
the same static shapes kiln compiles for; compile_ms is the session creation.
litert (pip ai-edge-litert): Interpreter(model_path, num_threads=THREADS) with its
default XNNPACK delegate; compile_ms is the creation plus allocate_tensors(); each
timed run is invoke() after setting the inputs (outside the timed region), as in
scripts/bench_litert.py.
"""

import json
import sys
import time


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


def onnxruntime_runner(model, threads, feeds):
    import numpy as np
    import onnxruntime as ort

    def session(overrides):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        for name, value in overrides.items():
            opts.add_free_dimension_override_by_name(name, value)
        start = time.perf_counter()
        sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        return sess, (time.perf_counter() - start) * 1e3

    sess, compile_ms = session({})
    overrides = {}
    for info in sess.get_inputs():
        if info.name not in feeds:
            raise ValueError(f"ONNX Runtime wants input `{info.name}`, which kiln's graph does not have")
        for dim, size in zip(info.shape, feeds[info.name].shape):
            if isinstance(dim, str) and dim:
                overrides[dim] = int(size)
    if overrides:
        sess, compile_ms = session(overrides)
    wanted = {i.name: ORT_TYPES.get(i.type) for i in sess.get_inputs()}
    feeds = {n: (a.astype(wanted[n]) if wanted.get(n) and a.dtype != np.dtype(wanted[n]) else a)
             for n, a in feeds.items() if n in wanted}

    def run():
        start = time.perf_counter()
        sess.run(None, feeds)
        return (time.perf_counter() - start) * 1e3

    return ort.__version__, compile_ms, run


def litert_runner(model, threads, feeds):
    from importlib.metadata import version
    from ai_edge_litert.interpreter import Interpreter

    start = time.perf_counter()
    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    compile_ms = (time.perf_counter() - start) * 1e3
    bound = []
    for detail in it.get_input_details():
        if detail["name"] not in feeds:
            raise ValueError(f"LiteRT wants input `{detail['name']}`, which kiln's graph does not have")
        bound.append((detail["index"], feeds[detail["name"]].astype(detail["dtype"])))

    def run():
        for index, value in bound:
            it.set_tensor(index, value)
        start = time.perf_counter()
        it.invoke()
        return (time.perf_counter() - start) * 1e3

    return version("ai-edge-litert"), compile_ms, run


def main():
    engine, model, threads, inputs_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    try:
        import os
        import numpy as np

        with open(os.path.join(inputs_dir, "inputs.json")) as f:
            listed = json.load(f)
        feeds = {entry["name"]: np.load(os.path.join(inputs_dir, entry["file"])) for entry in listed}
        runner = {"onnxruntime": onnxruntime_runner, "litert": litert_runner}[engine]
        engine_version, compile_ms, run = runner(model, threads, feeds)
    except Exception as e:  # reported to kiln, which shows it as the reason
        say({"error": f"{type(e).__name__}: {e}"})
        sys.exit(1)
    say({"ready": True, "engine": engine, "version": engine_version, "compile_ms": compile_ms})
    for line in sys.stdin:
        command = line.split()
        if command[:1] == ["run"] and len(command) == 2:
            say({"times_ms": [run() for _ in range(int(command[1]))]})
        else:
            break


if __name__ == "__main__":
    main()
