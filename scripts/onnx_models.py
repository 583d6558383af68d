#!/usr/bin/env python3
"""Write kiln's three benchmark models as ONNX (opset 17) for the ONNX Runtime baseline.

    python3 scripts/onnx_models.py OUT_DIR

Writes OUT_DIR/mobilenetv2.onnx, OUT_DIR/squeezenet1.1.onnx and OUT_DIR/resnet50.onnx.
The architectures mirror examples/zoo.rs layer for layer (batch 1, NCHW, float32,
224x224 input named "input", output "probs" [1, 1000]):

* every convolution carries a bias (batch normalisation folded in), padding k/2,
  followed by Relu, Clip(0, 6) (WebNN clamp, "relu6") or nothing;
* MobileNetV2: inverted residual blocks, residual Add when stride 1 and cin == cout;
* SqueezeNet 1.1: unpadded first 3x3/2 conv, 3x3/2 ceil-mode max pools, fire modules
  (squeeze 1x1, expand 1x1 and 3x3 concatenated on channels), conv10 + relu, global
  average pool, reshape, softmax (no Gemm);
* ResNet-50 v1.5: stride in the 3x3 conv, projection shortcut (1x1 conv, stride) when
  the shape changes, padded 3x3/2 max pool after the 7x7/2 stem;
* heads: GlobalAveragePool, Reshape [1, C], Gemm (B is [C, 1000], C is [1, 1000]), Softmax(axis 1).

Weights are seeded random, He-uniform (uniform in [-sqrt(6/fan_in), sqrt(6/fan_in))
for conv/FC weights, [-0.05, 0.05) for biases), drawn in the same order as zoo.rs with
numpy's PCG64 seeded by zoo.rs's seed. The values therefore differ from kiln's bytes
(zoo.rs uses xorshift64*); the models are meant for latency comparison only.

Each model is validated with onnx.checker (full check) and, unless --no-run, run once
through onnxruntime to check the output shape [1, 1000] and that each row sums to 1.
"""

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Builder:
    """Accumulates ONNX nodes and initializers; draws weights in zoo.rs order."""

    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.count = 0  # weight counter, names w0, w1, ... like zoo.rs
        self.tmp = 0

    def fresh(self, prefix):
        self.tmp += 1
        return f"{prefix}_{self.tmp}"

    def uniform(self, shape, scale):
        values = self.rng.uniform(-scale, scale, size=shape).astype(np.float32)
        name = f"w{self.count}"
        self.count += 1
        self.inits.append(numpy_helper.from_array(values, name))
        return name

    def const_i64(self, values, prefix):
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def node(self, op, inputs, prefix=None, **attrs):
        out = self.fresh(prefix or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def act(self, x, act):
        if act is None:
            return x
        if act == "relu":
            return self.node("Relu", [x])
        if act == "relu6":
            # opset >= 11: min and max are (optional) inputs, not attributes.
            if not hasattr(self, "_clip_bounds"):
                lo = self.fresh("clip_min")
                hi = self.fresh("clip_max")
                self.inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), lo))
                self.inits.append(numpy_helper.from_array(np.array(6.0, dtype=np.float32), hi))
                self._clip_bounds = (lo, hi)
            return self.node("Clip", [x, *self._clip_bounds], prefix="relu6")
        raise ValueError(act)

    def conv(self, x, cin, cout, k, stride, groups, act, pad=None):
        """Conv with He-uniform weights and a small bias (folded BN), then act."""
        fan_in = (cin // groups) * k * k
        w = self.uniform([cout, cin // groups, k, k], float(np.sqrt(6.0 / fan_in)))
        b = self.uniform([cout], 0.05)
        p = k // 2 if pad is None else pad
        y = self.node(
            "Conv",
            [x, w, b],
            kernel_shape=[k, k],
            pads=[p, p, p, p],
            strides=[stride, stride],
            group=groups,
            dilations=[1, 1],
        )
        return self.act(y, act)

    def fc(self, x, cin, cout):
        w = self.uniform([cin, cout], float(np.sqrt(6.0 / cin)))
        c = self.uniform([1, cout], 0.05)
        return self.node("Gemm", [x, w, c], alpha=1.0, beta=1.0, transA=0, transB=0)

    def global_avg_reshape(self, x, channels):
        g = self.node("GlobalAveragePool", [x])
        shape = self.const_i64([1, channels], "shape")
        return self.node("Reshape", [g, shape])

    def head(self, x, channels):
        flat = self.global_avg_reshape(x, channels)
        logits = self.fc(flat, channels, 1000)
        return self.node("Softmax", [logits], axis=1)

    def model(self, x_name, out):
        inp = helper.make_tensor_value_info(x_name, TensorProto.FLOAT, [1, 3, 224, 224])
        # Rename the final tensor to "probs" (kiln's output name).
        last = self.nodes[-1]
        assert list(last.output) == [out]
        last.output[0] = "probs"
        outp = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 1000])
        graph = helper.make_graph(self.nodes, self.name, [inp], [outp], initializer=self.inits)
        m = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="kiln scripts/onnx_models.py",
        )
        # Keep the IR version loadable by the pinned onnxruntime.
        m.ir_version = 8
        return m


def mobilenet_v2():
    b = Builder("mobilenetv2", 0x6D6F_6269_6C65)
    x = b.conv("input", 3, 32, 3, 2, 1, "relu6")
    cin = 32
    # (expansion t, output channels c, repeats n, first stride s)
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x
            if t != 1:
                y = b.conv(y, cin, hidden, 1, 1, 1, "relu6")
            y = b.conv(y, hidden, hidden, 3, stride, hidden, "relu6")
            y = b.conv(y, hidden, c, 1, 1, 1, None)
            x = b.node("Add", [x, y]) if stride == 1 and cin == c else y
            cin = c
    x = b.conv(x, 320, 1280, 1, 1, 1, "relu6")
    out = b.head(x, 1280)
    return b.model("input", out)


def squeezenet_1_1():
    b = Builder("squeezenet1.1", 0x7371_7565_657A)

    def pool(x):
        return b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0], ceil_mode=1)

    def fire(x, cin, squeeze, expand):
        s = b.conv(x, cin, squeeze, 1, 1, 1, "relu")
        e1 = b.conv(s, squeeze, expand, 1, 1, 1, "relu")
        e3 = b.conv(s, squeeze, expand, 3, 1, 1, "relu")
        return b.node("Concat", [e1, e3], axis=1)

    # SqueezeNet's first convolution has no padding.
    x = b.conv("input", 3, 64, 3, 2, 1, "relu", pad=0)
    x = pool(x)
    x = fire(x, 64, 16, 64)
    x = fire(x, 128, 16, 64)
    x = pool(x)
    x = fire(x, 128, 32, 128)
    x = fire(x, 256, 32, 128)
    x = pool(x)
    x = fire(x, 256, 48, 192)
    x = fire(x, 384, 48, 192)
    x = fire(x, 384, 64, 256)
    x = fire(x, 512, 64, 256)
    x = b.conv(x, 512, 1000, 1, 1, 1, "relu")
    x = b.global_avg_reshape(x, 1000)
    out = b.node("Softmax", [x], axis=1)
    return b.model("input", out)


def resnet50():
    b = Builder("resnet50", 0x7265_736E_6574)

    def bottleneck(x, cin, width, stride):
        cout = width * 4
        y = b.conv(x, cin, width, 1, 1, 1, "relu")
        y = b.conv(y, width, width, 3, stride, 1, "relu")
        y = b.conv(y, width, cout, 1, 1, 1, None)
        shortcut = b.conv(x, cin, cout, 1, stride, 1, None) if stride != 1 or cin != cout else x
        return b.node("Relu", [b.node("Add", [y, shortcut])])

    x = b.conv("input", 3, 64, 7, 2, 1, "relu")
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            x = bottleneck(x, cin, width, stride if i == 0 else 1)
            cin = width * 4
    out = b.head(x, 2048)
    return b.model("input", out)


MODELS = [("mobilenetv2", mobilenet_v2), ("squeezenet1.1", squeezenet_1_1), ("resnet50", resnet50)]


def count_flops(model):
    """Multiply-adds x2 of Conv and Gemm (the dominant terms), from inferred shapes."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    flops = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            out = shapes[n.output[0]]
            w = shapes[n.input[1]]
            flops += 2 * int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type == "Gemm":
            a, bm = shapes[n.input[0]], shapes[n.input[1]]
            flops += 2 * a[0] * a[1] * bm[1]
    return flops


def validate(path, run=True):
    onnx.checker.check_model(path, full_check=True)
    if not run:
        return
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    (probs,) = sess.run(None, {"input": x})
    if probs.shape != (1, 1000):
        raise SystemExit(f"{path}: output shape {probs.shape}, expected (1, 1000)")
    total = float(probs.sum(axis=1)[0])
    if not np.isfinite(probs).all() or abs(total - 1.0) > 1e-4:
        raise SystemExit(f"{path}: probabilities sum to {total}, expected 1")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--no-run", action="store_true", help="skip the onnxruntime smoke run")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, build in MODELS:
        model = build()
        path = os.path.join(args.out_dir, f"{name}.onnx")
        onnx.save(model, path)
        total = validate(path, run=not args.no_run)
        ops = {}
        for n in model.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == TensorProto.FLOAT)
        summary = ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
        check = "" if total is None else f", sum(probs) = {total:.6f}"
        print(
            f"{path}: {len(model.graph.node)} nodes ({summary}), {params / 1e6:.2f} M params, "
            f"{count_flops(model) / 1e9:.2f} GFLOP (conv+gemm){check}"
        )


if __name__ == "__main__":
    sys.exit(main())
