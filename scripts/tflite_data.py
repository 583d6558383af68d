#!/usr/bin/env python3
"""Python side of scripts/fetch_onnx_data.sh for TFLite: models and test data in the node-test layout.

    tflite_data.py model NAME OUT_DIR --mediapipe-wheel WHEEL
                                   write OUT_DIR/NAME/model.tflite and
                                   OUT_DIR/NAME/test_data_set_0/{input,output}_N.pb
    tflite_data.py summary DATA_DIR    one line of counts for DATA_DIR/models
    tflite_data.py report DATA_DIR     per model: inputs/outputs (name, dtype, shape,
                                       quantization), operator counts, output statistics

Models (NAME): the MediaPipe models shipped in the mediapipe 0.10.14 wheel
(mediapipe/modules/*/*.tflite, copied byte for byte, each named by its file stem:
face_detection_short_range, face_detection_full_range_sparse, face_landmark,
hand_landmark_lite, hand_landmark_full, hand_recrop, iris_landmark, palm_detection_lite,
palm_detection_full, pose_detection, pose_landmark_full, selfie_segmentation,
selfie_segmentation_landscape; face_landmark_with_attention is left out, LiteRT has no
kernel for its custom ops) and the generated ones of scripts/tflite_models.py
(mobilenet_v2_f32, mobilenet_int8, mobilenet_uint8, ops_f32).

Test inputs are drawn from numpy's default_rng(0) in the interpreter's input order:
float32 uniform(-1, 1), uint8 integers uniform in 0..255, int8 in -128..127. Expected
outputs come from LiteRT (ai_edge_litert.interpreter.Interpreter with default options,
so with its default XNNPACK delegate, num_threads=1), in output order. Each tensor is a
TensorProto from onnx.numpy_helper.from_array named exactly as the TFLite tensor
(e.g. "serving_default_input_1:0", "StatefulPartitionedCall:0", "input_1",
"Identity_1"). Everything is written to a temporary folder next to the target and
renamed into place, so an interrupted run leaves no half case; the written files are
read back and run again, and must reproduce bit for bit.
"""

import argparse
import collections
import os
import sys
import zipfile

import numpy as np
from onnx import TensorProto, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_models  # noqa: E402
from onnx_data import fresh_tmp, replace_dir  # noqa: E402

MEDIAPIPE_PREFIX = "mediapipe/modules/"
# name -> member of the mediapipe wheel under MEDIAPIPE_PREFIX
MEDIAPIPE = {
    "face_detection_short_range": "face_detection/face_detection_short_range.tflite",
    "face_detection_full_range_sparse": "face_detection/face_detection_full_range_sparse.tflite",
    "face_landmark": "face_landmark/face_landmark.tflite",
    "hand_landmark_lite": "hand_landmark/hand_landmark_lite.tflite",
    "hand_landmark_full": "hand_landmark/hand_landmark_full.tflite",
    "hand_recrop": "holistic_landmark/hand_recrop.tflite",
    "iris_landmark": "iris_landmark/iris_landmark.tflite",
    "palm_detection_lite": "palm_detection/palm_detection_lite.tflite",
    "palm_detection_full": "palm_detection/palm_detection_full.tflite",
    "pose_detection": "pose_detection/pose_detection.tflite",
    "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite",
    "selfie_segmentation": "selfie_segmentation/selfie_segmentation.tflite",
    "selfie_segmentation_landscape": "selfie_segmentation/selfie_segmentation_landscape.tflite",
}
GENERATED = [n for n, _ in tflite_models.MODELS]
MODELS = list(MEDIAPIPE) + GENERATED


def say(msg):
    print(f"[tflite-data] {msg}", file=sys.stderr, flush=True)


def flatbuffer_io(data):
    """(input names, output names) of subgraph 0, as the strings stored in the file."""
    import tflite

    m = tflite.Model.GetRootAsModel(data, 0)
    sg = m.Subgraphs(0)
    ins = [sg.Tensors(int(i)).Name().decode() for i in sg.InputsAsNumpy()]
    outs = [sg.Tensors(int(i)).Name().decode() for i in sg.OutputsAsNumpy()]
    return ins, outs


def op_counts(data):
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    m = tflite.Model.GetRootAsModel(data, 0)
    counts = collections.Counter()
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        for i in range(sg.OperatorsLength()):
            oc = m.OperatorCodes(sg.Operators(i).OpcodeIndex())
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            name = names.get(code, str(code))
            if name == "CUSTOM":
                name = f"CUSTOM({oc.CustomCode().decode()})"
            counts[name] += 1
    return dict(sorted(counts.items()))


def interpreter(model_path):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model_path, num_threads=1)
    it.allocate_tensors()
    return it


def make_inputs(it):
    rng = np.random.default_rng(0)
    feeds = []
    for d in it.get_input_details():
        feeds.append((d["name"], tflite_models.make_input(rng, [int(s) for s in d["shape"]], d["dtype"])))
    return feeds


def run(it, feeds):
    for d, (_, x) in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [(d["name"], it.get_tensor(d["index"]).copy()) for d in it.get_output_details()]


def write_pb(path, array, name):
    tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
    with open(path, "wb") as f:
        f.write(tensor.SerializeToString())


def read_pb(path):
    t = TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t.name, numpy_helper.to_array(t)


def stats(name, y):
    yf = y.astype(np.float64)
    return f"{name} {y.dtype} {list(y.shape)}: min {yf.min():.6g} max {yf.max():.6g} std {yf.std():.6g}"


def cmd_model(args):
    name = args.name
    dest = os.path.abspath(os.path.join(args.out_dir, name))
    if name in MEDIAPIPE:
        if not args.mediapipe_wheel:
            raise SystemExit(f"{name} needs --mediapipe-wheel")
        member = MEDIAPIPE_PREFIX + MEDIAPIPE[name]
        with zipfile.ZipFile(args.mediapipe_wheel) as z, z.open(member) as src:
            data = src.read()
        source = f"{os.path.basename(args.mediapipe_wheel)}:{member}"
    elif name in GENERATED:
        data, _ = tflite_models.build(name)
        source = "scripts/tflite_models.py"
    else:
        raise SystemExit(f"unknown model {name}; known: {', '.join(MODELS)}")

    tmp = fresh_tmp(dest)
    model_path = os.path.join(tmp, "model.tflite")
    with open(model_path, "wb") as f:
        f.write(data)
    fb_ins, fb_outs = flatbuffer_io(data)

    it = interpreter(model_path)
    feeds = make_inputs(it)
    outputs = run(it, feeds)
    if [n for n, _ in feeds] != fb_ins or [n for n, _ in outputs] != fb_outs:
        raise SystemExit(
            f"{name}: interpreter I/O {[n for n, _ in feeds]} -> {[n for n, _ in outputs]} differs from "
            f"the flatbuffer's {fb_ins} -> {fb_outs}"
        )
    tflite_models.check_outputs(name, outputs)

    data_dir = os.path.join(tmp, "test_data_set_0")
    os.makedirs(data_dir)
    for i, (n, x) in enumerate(feeds):
        write_pb(os.path.join(data_dir, f"input_{i}.pb"), x, n)
    for i, (n, y) in enumerate(outputs):
        write_pb(os.path.join(data_dir, f"output_{i}.pb"), y, n)

    # Read everything back and run again, from the files, in a fresh interpreter.
    back = [read_pb(os.path.join(data_dir, f"input_{i}.pb")) for i in range(len(feeds))]
    again = run(interpreter(model_path), back)
    for i, (n, y) in enumerate(again):
        pn, want = read_pb(os.path.join(data_dir, f"output_{i}.pb"))
        if pn != n or want.dtype != y.dtype or want.shape != y.shape or not np.array_equal(want, y):
            raise SystemExit(f"{name}: output_{i}.pb does not reproduce")

    replace_dir(tmp, dest)
    ins = ", ".join(f"{n} {x.dtype} {list(x.shape)}" for n, x in feeds)
    say(f"{name}: {sum(op_counts(data).values())} operators from {source}; inputs {ins}")
    for n, y in outputs:
        say(f"  output {stats(n, y)}")


def model_dirs(root):
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "model.tflite")))


def cmd_summary(args):
    models = model_dirs(os.path.join(args.data_dir, "models"))
    tensors = sum(
        len([f for f in os.listdir(os.path.join(args.data_dir, "models", m, "test_data_set_0")) if f.endswith(".pb")])
        for m in models
        if os.path.isdir(os.path.join(args.data_dir, "models", m, "test_data_set_0"))
    )
    total = 0
    for dirpath, _, files in os.walk(args.data_dir):
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    print(
        f"tflite-data: {len(models)} models ({', '.join(models)}), {tensors} tensors, "
        f"{total / 2**20:.0f} MiB in {args.data_dir}"
    )


def cmd_report(args):
    from ai_edge_litert.interpreter import Interpreter

    root = os.path.join(args.data_dir, "models")
    for name in model_dirs(root):
        d = os.path.join(root, name)
        path = os.path.join(d, "model.tflite")
        with open(path, "rb") as f:
            data = f.read()
        it = Interpreter(model_path=path, num_threads=1)
        ops = op_counts(data)
        print(f"## {name}: {sum(ops.values())} operators, {len(data) / 1e6:.2f} MB")
        for kind, details in (("input ", it.get_input_details()), ("output", it.get_output_details())):
            for det in details:
                scale, zp = det["quantization"]
                q = f", scale {scale:.6g} zero point {zp}" if scale else ""
                print(f"- {kind} {det['name']} {np.dtype(det['dtype']).name} {[int(s) for s in det['shape']]}{q}")
        print("- ops: " + ", ".join(f"{k} {v}" for k, v in ops.items()))
        for i in range(len(it.get_output_details())):
            n, y = read_pb(os.path.join(d, "test_data_set_0", f"output_{i}.pb"))
            print(f"- output_{i}.pb: {stats(n, y)}")
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("model")
    p.add_argument("name", choices=MODELS)
    p.add_argument("out_dir")
    p.add_argument("--mediapipe-wheel")
    p.set_defaults(fn=cmd_model)
    p = sub.add_parser("summary")
    p.add_argument("data_dir")
    p.set_defaults(fn=cmd_summary)
    p = sub.add_parser("report")
    p.add_argument("data_dir")
    p.set_defaults(fn=cmd_report)
    args = ap.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
