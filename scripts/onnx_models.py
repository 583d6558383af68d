#!/usr/bin/env python3
"""Write kiln's benchmark models as ONNX (opset 17): the ORT baseline and ONNX test models.

    python3 scripts/onnx_models.py OUT_DIR [--models NAME,...] [--no-run]

By default writes the three benchmark CNNs, OUT_DIR/mobilenetv2.onnx,
OUT_DIR/squeezenet1.1.onnx and OUT_DIR/resnet50.onnx; `--models` picks any of
mobilenetv2, squeezenet1.1, resnet50, bert_encoder, yolov8n, byte_classifier, speech_rnn (or "all"). The CNN architectures
mirror examples/zoo.rs layer for layer (batch 1, NCHW, float32, 224x224 input named
"input", output "probs" [1, 1000]):

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

bert_encoder is one BERT-base encoder layer (no zoo.rs counterpart) as a PyTorch
export of transformers' BertLayer (eval mode, no fusion) looks at opset 17: input
"input" float32 [1, 128, 768] (hidden states), "attention_mask" float32 [1, 1, 1, 128]
(the additive extended mask: 0 to attend, -10000 to mask), output "output"
[1, 128, 768]. Self-attention with 12 heads of 64 (MatMul + Add projections, Reshape
with int64 shape initializers, Transpose, MatMul, Div by sqrt(64), Add mask,
Softmax(-1)), output projection + residual + LayerNormalization(eps 1e-12), FFN
768 -> 3072 -> 768 with exact GELU as x * (1 + Erf(x / sqrt 2)) * 0.5, residual and a
second LayerNormalization. Weights are seeded random normal(0, 0.02) (BERT's
initializer_range), biases normal(0, 0.02), LayerNorm scales 1 + normal(0, 0.1) and
shifts normal(0, 0.05).

yolov8n is YOLOv8n (width 0.25, depth 0.33) at 320x320 as ultralytics exports it at
opset 17, BN folded: input "images" [1, 3, 320, 320], output "output0" [1, 84, 2100].
Conv + SiLU as Mul(x, Sigmoid(x)); C2f (Split, bottlenecks with residual Add in the
backbone, Concat); SPPF (three MaxPool 5x5/1, Concat); the PAN neck with Resize
(nearest, constant scales) and Concat; the Detect head (box branch 64 channels, class
branch 80) per scale, Reshape and Concat of the scales, Split, DFL (Reshape, Transpose,
Softmax, 1x1 Conv with weights 0..15) and box decode (Slice, Sub/Add with the anchor
constant, Div, Concat, Mul by the strides), Concat with Sigmoid of the class logits.
Its He-uniform conv weights are rescaled per output channel as folded batch
normalisation would leave them (unit standard deviation over seeded calibration
images, from a float64 numpy forward pass); see yolov8n().

byte_classifier is a file-type classifier over 1024 bytes: input "bytes" int32
[1, 1024] (0..255), one-hot by Unsqueeze, Equal against the int32 range 0..255 and
Cast (kiln does not map OneHot), Transpose to [1, 256, 1024], four 1-D Conv + Relu
(k 8/4, k 5/2, k 3, k 3; MaxPool 2 after the second and third), GlobalAveragePool,
Reshape, Gemm to 20 classes, Softmax; output "probs" [1, 20].

speech_rnn is a voice-activity-style recurrent model as torch.onnx exports nn.LSTM and
nn.GRU with batch_first=True: input "features" float32 [1, 100, 40] (frames of 40
features), Transpose to [100, 1, 40], an LSTM (hidden 64, zero initial states as
initializers, B = [W_b, R_b]), Squeeze of the direction axis, a bidirectional GRU
(hidden 32, linear_before_reset=1 as PyTorch computes it), Transpose and Reshape to
[100, 64], Gemm to 2 classes and Softmax; outputs "probs" [100, 2] and the LSTM's last
states "hn" and "cn" [1, 1, 64]. Weights uniform in +-1/sqrt(hidden), PyTorch's init.

Each model is validated with onnx.checker (full check) and, unless --no-run, run once
through onnxruntime to check the output shape ([1, 1000] with rows summing to 1 for
the CNNs, [1, 128, 768] and finite for bert_encoder, [1, 84, 2100], finite and at
least half the class scores in (0.01, 0.99) for yolov8n, [1, 20] summing to 1 for
byte_classifier).
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

    def init_array(self, name):
        return next(numpy_helper.to_array(t) for t in self.inits if t.name == name)

    def set_init(self, name, values):
        i = next(i for i, t in enumerate(self.inits) if t.name == name)
        self.inits[i] = numpy_helper.from_array(values, name)

    def const_i64(self, values, prefix):
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def node(self, op, inputs, prefix=None, **attrs):
        out = self.fresh(prefix or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def node_n(self, op, inputs, n, prefix=None, **attrs):
        """A node with n outputs (Split)."""
        base = self.fresh(prefix or op.lower())
        outs = [f"{base}_out{i}" for i in range(n)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=base, **attrs))
        return outs

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
        if act == "silu":
            # torch.onnx exports nn.SiLU as x * Sigmoid(x).
            return self.node("Mul", [x, self.node("Sigmoid", [x])], prefix="silu")
        raise ValueError(act)

    def conv(self, x, cin, cout, k, stride, groups, act, pad=None, gain=1.0):
        """Conv with He-uniform weights (times gain) and a small bias (folded BN), then act."""
        fan_in = (cin // groups) * k * k
        w = self.uniform([cout, cin // groups, k, k], gain * float(np.sqrt(6.0 / fan_in)))
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

    def conv1d(self, x, cin, cout, k, stride, pad, act, fan_in=None):
        """1-D Conv ([N, C, L], kernel [cout, cin, k]) with He-uniform weights and a small bias."""
        fan_in = cin * k if fan_in is None else fan_in
        w = self.uniform([cout, cin, k], float(np.sqrt(6.0 / fan_in)))
        b = self.uniform([cout], 0.05)
        y = self.node("Conv", [x, w, b], kernel_shape=[k], pads=[pad, pad], strides=[stride], group=1, dilations=[1])
        return self.act(y, act)

    def const(self, values, dtype, prefix):
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

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

    def model(self, x_name, out, in_shape=(1, 3, 224, 224), in_type=TensorProto.FLOAT, out_name="probs", out_shape=(1, 1000)):
        inp = helper.make_tensor_value_info(x_name, in_type, list(in_shape))
        # Rename the final tensor to out_name ("probs", kiln's output name, for the CNNs).
        last = self.nodes[-1]
        assert list(last.output) == [out]
        last.output[0] = out_name
        outp = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, list(out_shape))
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


def _np_conv(x, w, bias, stride, pad):
    """float64 reference conv2d: x [N, C, H, W], w [O, C, k, k] -> [N, O, H', W']."""
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    n, c, h, wd = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * wd, c * k * k)
    out = cols @ w.reshape(w.shape[0], -1).T + bias
    return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2)


def yolov8n(size=320, nc=80, reg_max=16, calib=8):
    """YOLOv8n (width 0.25, depth 0.33) as ultralytics exports it to ONNX, BN folded."""
    b = Builder("yolov8n", 0x796F_6C6F_7638)
    # Folded batch normalisation, emulated: every conv's He-uniform weights and bias are
    # rescaled per output channel so that its output has mean beta (the drawn bias) and
    # standard deviation 1 over a calibration batch (seeded uniform(-1, 1) images), as a
    # trained BN's running statistics would make it. A float64 numpy forward pass alongside
    # the graph provides the statistics; without it, 60 SiLU layers deep, activations
    # vanish or explode.
    val = {"images": b.rng.uniform(-1.0, 1.0, size=(calib, 3, size, size))}

    def conv(x, cin, cout, k=1, s=1, act="silu"):
        # ultralytics Conv: conv2d(k, s, pad k/2) + BN (folded into the bias) + SiLU.
        y = b.conv(x, cin, cout, k, s, 1, act)
        node = b.nodes[-3] if act else b.nodes[-1]
        wname, bname = node.input[1], node.input[2]
        w, beta = b.init_array(wname).astype(np.float64), b.init_array(bname).astype(np.float64)
        pre = _np_conv(val[x], w, np.zeros(cout), s, k // 2)
        mean, std = pre.mean(axis=(0, 2, 3)), pre.std(axis=(0, 2, 3)) + 1e-6
        w = w / std[:, None, None, None]
        bias = beta - mean / std
        b.set_init(wname, w.astype(np.float32))
        b.set_init(bname, bias.astype(np.float32))
        pre = _np_conv(val[x], w, bias, s, k // 2)
        val[y] = pre / (1.0 + np.exp(-pre)) if act else pre
        return y

    def add(x, y):
        out = b.node("Add", [x, y])
        val[out] = val[x] + val[y]
        return out

    def concat(xs):
        out = b.node("Concat", xs, axis=1)
        val[out] = np.concatenate([val[x] for x in xs], axis=1)
        return out

    def bottleneck(x, c, shortcut):
        y = conv(conv(x, c, c, 3), c, c, 3)
        return add(x, y) if shortcut else y

    def c2f(x, cin, cout, n, shortcut):
        c = cout // 2
        y = conv(x, cin, 2 * c)
        # torch's chunk(2, 1) exports as Split with a split-sizes input.
        ys = b.node_n("Split", [y, b.const_i64([c, c], "split")], 2, axis=1)
        val[ys[0]], val[ys[1]] = val[y][:, :c], val[y][:, c:]
        for _ in range(n):
            ys.append(bottleneck(ys[-1], c, shortcut))
        return conv(concat(ys), (2 + n) * c, cout)

    def sppf(x, cin, cout):
        c = cin // 2
        ys = [conv(x, cin, c)]
        for _ in range(3):
            p = b.node("MaxPool", [ys[-1]], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2], dilations=[1, 1], ceil_mode=0)
            padded = np.pad(val[ys[-1]], ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-np.inf)
            val[p] = np.lib.stride_tricks.sliding_window_view(padded, (5, 5), axis=(2, 3)).max(axis=(4, 5))
            ys.append(p)
        return conv(concat(ys), 4 * c, cout)

    scales = b.const([1.0, 1.0, 2.0, 2.0], np.float32, "resize_scales")

    def upsample(x):
        # nn.Upsample(scale_factor=2, mode="nearest"): Resize with an empty roi and constant scales.
        y = b.node(
            "Resize",
            [x, "", scales],
            coordinate_transformation_mode="asymmetric",
            cubic_coeff_a=-0.75,
            mode="nearest",
            nearest_mode="floor",
        )
        val[y] = val[x].repeat(2, axis=2).repeat(2, axis=3)
        return y

    # Backbone (yolov8.yaml at scale n: channels x0.25, max 1024 -> 256; repeats 3 -> 1, 6 -> 2).
    x = conv("images", 3, 16, 3, 2)  # 0 P1/2
    x = conv(x, 16, 32, 3, 2)  # 1 P2/4
    x = c2f(x, 32, 32, 1, True)  # 2
    x = conv(x, 32, 64, 3, 2)  # 3 P3/8
    p3 = c2f(x, 64, 64, 2, True)  # 4
    x = conv(p3, 64, 128, 3, 2)  # 5 P4/16
    p4 = c2f(x, 128, 128, 2, True)  # 6
    x = conv(p4, 128, 256, 3, 2)  # 7 P5/32
    x = c2f(x, 256, 256, 1, True)  # 8
    p5 = sppf(x, 256, 256)  # 9
    # Neck (PAN), C2f without shortcut.
    x = concat([upsample(p5), p4])  # 10, 11
    h4 = c2f(x, 384, 128, 1, False)  # 12
    x = concat([upsample(h4), p3])  # 13, 14
    o3 = c2f(x, 192, 64, 1, False)  # 15 (P3/8)
    x = concat([conv(o3, 64, 64, 3, 2), h4])  # 16, 17
    o4 = c2f(x, 192, 128, 1, False)  # 18 (P4/16)
    x = concat([conv(o4, 128, 128, 3, 2), p5])  # 19, 20
    o5 = c2f(x, 384, 256, 1, False)  # 21 (P5/32)

    # Detect head: per scale a box branch (4 * reg_max channels) and a class branch (nc).
    no = 4 * reg_max + nc
    c2, c3 = max(16, 64 // 4, 4 * reg_max), max(64, min(nc, 100))
    flat_shape = b.const_i64([1, no, -1], "shape")
    outs = []
    for feat, ch in [(o3, 64), (o4, 128), (o5, 256)]:
        # The last 1x1 convs are plain nn.Conv2d (no BN, no SiLU), scaled alike.
        box = conv(conv(conv(feat, ch, c2, 3), c2, c2, 3), c2, 4 * reg_max, act=None)
        cls = conv(conv(conv(feat, ch, c3, 3), c3, c3, 3), c3, nc, act=None)
        y = b.node("Concat", [box, cls], axis=1)
        outs.append(b.node("Reshape", [y, flat_shape]))
    x = b.node("Concat", outs, axis=2)  # [1, no, N]

    # Anchors (cell centres) and strides, constants in the export (make_anchors, offset 0.5).
    points, strides = [], []
    for stride in (8, 16, 32):
        h = w = size // stride
        sy, sx = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
        points.append(np.stack([sx.ravel(), sy.ravel()], axis=0))
        strides.append(np.full((1, h * w), stride))
    anchors = np.concatenate(points, axis=1)[None].astype(np.float32)  # [1, 2, N]
    stride_row = np.concatenate(strides, axis=1).astype(np.float32)  # [1, N]
    n = anchors.shape[2]

    box, cls = b.node_n("Split", [x, b.const_i64([4 * reg_max, nc], "split")], 2, axis=1)
    # DFL: view [1, 4, 16, N], transpose(2, 1), softmax(1), 1x1 conv with weights 0..15, view [1, 4, N].
    d = b.node("Reshape", [box, b.const_i64([1, 4, reg_max, n], "shape")])
    d = b.node("Transpose", [d], perm=[0, 2, 1, 3])
    d = b.node("Softmax", [d], axis=1)
    dfl_w = b.const(np.arange(reg_max, dtype=np.float32).reshape(1, reg_max, 1, 1), np.float32, "dfl_weight")
    d = b.node("Conv", [d, dfl_w], kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1], group=1, dilations=[1, 1])
    d = b.node("Reshape", [d, b.const_i64([1, 4, n], "shape")])
    # dist2bbox(xywh=True): lt, rb = chunk(2, 1) (two Slices in the export).
    axis1 = b.const_i64([1], "axes")
    lt = b.node("Slice", [d, b.const_i64([0], "starts"), b.const_i64([2], "ends"), axis1])
    rb = b.node("Slice", [d, b.const_i64([2], "starts"), b.const_i64([4], "ends"), axis1])
    anchor = b.const(anchors, np.float32, "anchors")
    x1y1 = b.node("Sub", [anchor, lt])
    x2y2 = b.node("Add", [anchor, rb])
    c_xy = b.node("Div", [b.node("Add", [x1y1, x2y2]), b.const(2.0, np.float32, "two")])
    wh = b.node("Sub", [x2y2, x1y1])
    dbox = b.node("Concat", [c_xy, wh], axis=1)
    dbox = b.node("Mul", [dbox, b.const(stride_row, np.float32, "strides")])
    out = b.node("Concat", [dbox, b.node("Sigmoid", [cls])], axis=1)
    return b.model("images", out, in_shape=(1, 3, size, size), out_name="output0", out_shape=(1, 4 + nc, n))


def byte_classifier(length=1024, classes=20):
    """A byte-sequence file-type classifier: one-hot bytes, 1-D convolutions, pooled, Gemm."""
    b = Builder("byte_classifier", 0x6279_7465_73)
    # F.one_hot-style encoding as exports write it without OneHot: Unsqueeze the int32
    # bytes to [1, L, 1], Equal against the range [256], Cast to float, channels first.
    x = b.node("Unsqueeze", ["bytes", b.const_i64([2], "axes")])
    x = b.node("Equal", [x, b.const(np.arange(256), np.int32, "byte_values")])
    x = b.node("Cast", [x], to=TensorProto.FLOAT)  # [1, L, 256]
    x = b.node("Transpose", [x], perm=[0, 2, 1])  # [1, 256, L]

    def pool(x):
        return b.node("MaxPool", [x], kernel_shape=[2], strides=[2], pads=[0, 0])

    # One input channel in 256 is set per position, so the first layer's fan-in is k.
    x = b.conv1d(x, 256, 64, 8, 4, 2, "relu", fan_in=8)  # [1, 64, 256]
    x = b.conv1d(x, 64, 128, 5, 2, 2, "relu")  # [1, 128, 128]
    x = pool(x)  # [1, 128, 64]
    x = b.conv1d(x, 128, 128, 3, 1, 1, "relu")
    x = pool(x)  # [1, 128, 32]
    x = b.conv1d(x, 128, 256, 3, 1, 1, "relu")  # [1, 256, 32]
    x = b.node("GlobalAveragePool", [x])  # [1, 256, 1]
    x = b.node("Reshape", [x, b.const_i64([1, 256], "shape")])
    x = b.fc(x, 256, classes)
    out = b.node("Softmax", [x], axis=1)
    return b.model("bytes", out, in_shape=(1, length), in_type=TensorProto.INT32, out_shape=(1, classes))


def speech_rnn(frames=100, features=40, hidden=64, gru_hidden=32, classes=2):
    """A voice-activity-style recurrent model as torch.onnx exports nn.LSTM and nn.GRU."""
    b = Builder("speech_rnn", 0x7370_6565_6368)
    # batch_first=True: the exporter transposes to [steps, batch, features] and back.
    x = b.node("Transpose", ["features"], perm=[1, 0, 2])
    s = float(1.0 / np.sqrt(hidden))
    w = b.uniform([1, 4 * hidden, features], s)  # iofc, as the exporter reorders PyTorch's ifgo
    r = b.uniform([1, 4 * hidden, hidden], s)
    bias = b.uniform([1, 8 * hidden], s)  # [W_b, R_b]
    h0 = b.const(np.zeros((1, 1, hidden)), np.float32, "h0")
    c0 = b.const(np.zeros((1, 1, hidden)), np.float32, "c0")
    b.nodes.append(
        helper.make_node("LSTM", [x, w, r, bias, "", h0, c0], ["lstm_y", "hn", "cn"], name="lstm", hidden_size=hidden)
    )
    y = b.node("Squeeze", ["lstm_y", b.const_i64([1], "axes")])  # [T, 1, H]
    # A bidirectional GRU; PyTorch's formulation is linear_before_reset=1.
    s = float(1.0 / np.sqrt(gru_hidden))
    gw = b.uniform([2, 3 * gru_hidden, hidden], s)
    gr = b.uniform([2, 3 * gru_hidden, gru_hidden], s)
    gb = b.uniform([2, 6 * gru_hidden], s)
    b.nodes.append(
        helper.make_node(
            "GRU",
            [y, gw, gr, gb],
            ["gru_y", "gru_h"],
            name="gru",
            hidden_size=gru_hidden,
            direction="bidirectional",
            linear_before_reset=1,
        )
    )
    z = b.node("Transpose", ["gru_y"], perm=[0, 2, 1, 3])  # [T, 1, 2, Hg]
    z = b.node("Reshape", [z, b.const_i64([frames, 2 * gru_hidden], "shape")])
    logits = b.fc(z, 2 * gru_hidden, classes)
    b.nodes.append(helper.make_node("Softmax", [logits], ["probs"], name="softmax", axis=1))
    inputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, frames, features])]
    outputs = [
        helper.make_tensor_value_info("probs", TensorProto.FLOAT, [frames, classes]),
        helper.make_tensor_value_info("hn", TensorProto.FLOAT, [1, 1, hidden]),
        helper.make_tensor_value_info("cn", TensorProto.FLOAT, [1, 1, hidden]),
    ]
    graph = helper.make_graph(b.nodes, b.name, inputs, outputs, initializer=b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kiln scripts/onnx_models.py")
    m.ir_version = 8
    return m


def bert_encoder(seq=128, hidden=768, heads=12, ffn=3072):
    """One BERT-base encoder layer, as torch.onnx exports transformers' BertLayer."""
    rng = np.random.default_rng(0x6265_7274)
    head = hidden // heads
    nodes, inits = [], []

    def init(name, values):
        inits.append(numpy_helper.from_array(values, name))
        return name

    def normal(name, shape, std, mean=0.0):
        return init(name, (mean + std * rng.standard_normal(shape)).astype(np.float32))

    def scalar(name, value):
        return init(name, np.array(value, dtype=np.float32))

    def shape(name, values):
        return init(name, np.array(values, dtype=np.int64))

    def node(op, inputs, out, **attrs):
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def linear(x, prefix, cin, cout):
        # torch.onnx exports nn.Linear on a 3-D input as MatMul with the transposed
        # weight ([in, out]) followed by Add of the bias.
        w = normal(f"{prefix}.weight", [cin, cout], 0.02)
        b = normal(f"{prefix}.bias", [cout], 0.02)
        return node("Add", [node("MatMul", [x, w], f"{prefix}/MatMul"), b], f"{prefix}/Add")

    def layer_norm(x, prefix):
        g = normal(f"{prefix}.weight", [hidden], 0.1, mean=1.0)
        b = normal(f"{prefix}.bias", [hidden], 0.05)
        return node("LayerNormalization", [x, g, b], f"{prefix}/LayerNormalization", axis=-1, epsilon=1e-12)

    heads_shape = shape("heads_shape", [1, seq, heads, head])
    merged_shape = shape("merged_shape", [1, seq, hidden])

    def split_heads(x, prefix, perm):
        r = node("Reshape", [x, heads_shape], f"{prefix}/Reshape")
        return node("Transpose", [r], f"{prefix}/Transpose", perm=perm)

    x = "input"
    a = "attention.self"
    q = split_heads(linear(x, f"{a}.query", hidden, hidden), f"{a}.query", [0, 2, 1, 3])
    # key: permute(0, 2, 1, 3) then transpose(-1, -2), one Transpose after export.
    k = split_heads(linear(x, f"{a}.key", hidden, hidden), f"{a}.key", [0, 2, 3, 1])
    v = split_heads(linear(x, f"{a}.value", hidden, hidden), f"{a}.value", [0, 2, 1, 3])
    scores = node("MatMul", [q, k], f"{a}/scores/MatMul")
    scores = node("Div", [scores, scalar("attention_scale", float(np.sqrt(head)))], f"{a}/scores/Div")
    scores = node("Add", [scores, "attention_mask"], f"{a}/scores/Add")
    probs = node("Softmax", [scores], f"{a}/Softmax", axis=-1)
    ctx = node("MatMul", [probs, v], f"{a}/context/MatMul")
    ctx = node("Transpose", [ctx], f"{a}/context/Transpose", perm=[0, 2, 1, 3])
    ctx = node("Reshape", [ctx, merged_shape], f"{a}/context/Reshape")
    attn = linear(ctx, "attention.output.dense", hidden, hidden)
    attn = node("Add", [attn, x], "attention.output/residual/Add")
    attn = layer_norm(attn, "attention.output.LayerNorm")

    h = linear(attn, "intermediate.dense", hidden, ffn)
    # transformers' exact GELU: x * 0.5 * (1 + erf(x / sqrt(2))), exported in this order.
    g = node("Div", [h, scalar("gelu_sqrt2", float(np.sqrt(2.0)))], "intermediate/gelu/Div")
    g = node("Erf", [g], "intermediate/gelu/Erf")
    g = node("Add", [g, scalar("gelu_one", 1.0)], "intermediate/gelu/Add")
    g = node("Mul", [h, g], "intermediate/gelu/Mul")
    g = node("Mul", [g, scalar("gelu_half", 0.5)], "intermediate/gelu/Mul_1")
    out = linear(g, "output.dense", ffn, hidden)
    out = node("Add", [out, attn], "output/residual/Add")
    out = layer_norm(out, "output.LayerNorm")
    nodes[-1].output[0] = "output"

    graph = helper.make_graph(
        nodes,
        "bert_encoder",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, seq, hidden]),
            helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, [1, 1, 1, seq]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, seq, hidden])],
        initializer=inits,
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="kiln scripts/onnx_models.py",
    )
    m.ir_version = 8
    return m


def bert_mask(seq=128, valid=100):
    """The additive attention mask of a padded batch of one: `valid` tokens, then padding."""
    mask = np.zeros((1, 1, 1, seq), dtype=np.float32)
    mask[..., valid:] = -10000.0
    return mask


MODELS = [
    ("mobilenetv2", mobilenet_v2),
    ("squeezenet1.1", squeezenet_1_1),
    ("resnet50", resnet50),
    ("bert_encoder", bert_encoder),
    ("yolov8n", yolov8n),
    ("byte_classifier", byte_classifier),
    ("speech_rnn", speech_rnn),
]
# What `onnx_models.py OUT_DIR` writes without --models (scripts/compare.sh relies on it).
DEFAULT_MODELS = ["mobilenetv2", "squeezenet1.1", "resnet50"]


def count_flops(model):
    """Multiply-adds x2 of Conv, Gemm and MatMul (the dominant terms), from inferred shapes."""
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
        elif n.op_type == "MatMul":
            out = shapes[n.output[0]]
            a = shapes[n.input[0]]
            flops += 2 * int(np.prod(out)) * a[-1]
    return flops


def validate(path, run=True):
    onnx.checker.check_model(path, full_check=True)
    if not run:
        return
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    if names == ["input", "attention_mask"]:  # bert_encoder
        x = np.random.default_rng(0).standard_normal((1, 128, 768), dtype=np.float32)
        (y,) = sess.run(None, {"input": x, "attention_mask": bert_mask()})
        if y.shape != (1, 128, 768) or not np.isfinite(y).all():
            raise SystemExit(f"{path}: output shape {y.shape} (expected (1, 128, 768)) or not finite")
        return None
    if names == ["images"]:  # yolov8n
        x = np.random.default_rng(0).uniform(-1.0, 1.0, (1, 3, 320, 320)).astype(np.float32)
        (y,) = sess.run(None, {"images": x})
        if y.shape != (1, 84, 2100) or not np.isfinite(y).all():
            raise SystemExit(f"{path}: output shape {y.shape} (expected (1, 84, 2100)) or not finite")
        scores = y[0, 4:]
        soft = float(((scores > 0.01) & (scores < 0.99)).mean())
        if soft < 0.5:
            raise SystemExit(f"{path}: only {soft:.0%} of the class scores lie in (0.01, 0.99); activations collapse")
        return None
    if names == ["features"]:  # speech_rnn
        x = np.random.default_rng(0).standard_normal((1, 100, 40), dtype=np.float32)
        probs, hn, cn = sess.run(None, {"features": x})
        if probs.shape != (100, 2) or hn.shape != (1, 1, 64) or cn.shape != (1, 1, 64):
            raise SystemExit(f"{path}: output shapes {probs.shape}, {hn.shape}, {cn.shape}")
        if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4) or not np.isfinite(cn).all():
            raise SystemExit(f"{path}: probabilities do not sum to 1 or states are not finite")
        return None
    if names == ["bytes"]:  # byte_classifier
        x = np.random.default_rng(0).integers(0, 256, (1, 1024), dtype=np.int32)
        (probs,) = sess.run(None, {"bytes": x})
        classes = 20
    else:
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
        (probs,) = sess.run(None, {"input": x})
        classes = 1000
    if probs.shape != (1, classes):
        raise SystemExit(f"{path}: output shape {probs.shape}, expected (1, {classes})")
    total = float(probs.sum(axis=1)[0])
    if not np.isfinite(probs).all() or abs(total - 1.0) > 1e-4:
        raise SystemExit(f"{path}: probabilities sum to {total}, expected 1")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--no-run", action="store_true", help="skip the onnxruntime smoke run")
    ap.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma-separated subset of {', '.join(n for n, _ in MODELS)}, or 'all' (default: %(default)s)",
    )
    args = ap.parse_args()
    builders = dict(MODELS)
    wanted = list(builders) if args.models == "all" else [m for m in args.models.split(",") if m]
    unknown = [m for m in wanted if m not in builders]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(builders)}")
    os.makedirs(args.out_dir, exist_ok=True)
    for name in wanted:
        model = builders[name]()
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
            f"{count_flops(model) / 1e9:.2f} GFLOP (conv+gemm+matmul){check}"
        )


if __name__ == "__main__":
    sys.exit(main())
