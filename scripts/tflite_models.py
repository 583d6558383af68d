#!/usr/bin/env python3
"""Write TFLite test models for kiln's TFLite importer, flatbuffer by flatbuffer.

    python3 scripts/tflite_models.py OUT_DIR [--models NAME,...] [--no-run]

Writes OUT_DIR/<name>.tflite for mobilenet_v2_f32, mobilenet_int8, mobilenet_uint8 and
ops_f32 (`--models` picks a comma-separated subset, default all), each built with the
`tflite` package's generated builder functions (tflite.ModelStart,
tflite.Conv2DOptionsAddStrideW, ...) on a flatbuffers.Builder, laid out as TensorFlow's
MLIR converter writes a model: schema version 3, file identifier "TFL3", buffer 0 the
empty sentinel and one empty buffer per non-constant tensor, constant data aligned to
16 bytes, OperatorCode with both builtin_code and deprecated_builtin_code (=
min(code, 127)) and the op version the converter would give, a "min_runtime_version"
metadata entry and a "serving_default" SignatureDef, inputs named
"serving_default_<name>:0" and outputs "StatefulPartitionedCall:<i>". Weights are
seeded random (numpy default_rng with a fixed seed per model); the bytes are the same
on every run.

* mobilenet_v2_f32: MobileNetV2 1.0 at 224x224, NHWC float32: CONV_2D 3x3/2 to 32
  (RELU6 fused), 17 inverted residual blocks (t, c, n, s) = (1, 16, 1, 1),
  (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
  (6, 320, 1, 1) with expand 1x1 + RELU6 (not in the first block), DEPTHWISE_CONV_2D
  3x3 (filter [1, 3, 3, C], depth_multiplier 1) + RELU6, linear project 1x1 and ADD
  where stride 1 and cin == cout, CONV_2D 1x1 to 1280 + RELU6, MEAN over H and W
  (keep_dims false, as Keras' GlobalAveragePooling2D converts), FULLY_CONNECTED to
  1000, SOFTMAX. Padding SAME, every conv with a bias, batch normalisation folded away.
  He-uniform weights (U[-sqrt(6/fan_in), sqrt(6/fan_in))), biases U[-0.05, 0.05).
* mobilenet_int8: a small MobileNet at 96x96x3, fully integer as the converter writes
  a post-training-quantized model: float32 input -> QUANTIZE -> int8 CONV_2D 3x3/2 16,
  depthwise-separable blocks (DEPTHWISE_CONV_2D + RELU6, 1x1 CONV_2D + RELU6) to 24 and
  (stride 2) 32, one inverted residual (expand 96, depthwise, linear project 32, ADD),
  a separable block to 64 at stride 2, AVERAGE_POOL_2D 12x12, RESHAPE [1, 64],
  FULLY_CONNECTED 10, SOFTMAX (int8 output, scale 1/256, zero point -128) ->
  DEQUANTIZE -> float32 output. Conv and depthwise weights int8 per channel
  (quantized_dimension 0 resp. 3, symmetric in [-127, 127], zero point 0); the
  fully-connected weights int8 per tensor; biases int32 with scale input_scale *
  weight_scale[c]; activations int8 per tensor, asymmetric.
* mobilenet_uint8: old-style (TOCO) per-tensor uint8 at 64x64x3: uint8 input (scale
  1/128, zero point 128) and uint8 output; weights uint8 per tensor with their own
  (non-zero) zero points, int32 biases; CONV_2D 3x3/2 16, two branches (a depthwise-
  separable one to 24 channels and a 1x1 conv to 8) joined by CONCATENATION (inputs
  with their own scales, the kernel requantizes), MAX_POOL_2D 2x2/2, a separable block
  to 64 at stride 2, AVERAGE_POOL_2D 8x8, RESHAPE [1, 64], FULLY_CONNECTED 10,
  LOGISTIC (output scale 1/256, zero point 0).
* ops_f32: float32 operators that neither the MediaPipe models nor the MobileNets
  use, each at least once, on a 1x8x8x4 input; outputs "mix" [1, 8, 8, 4], "gathered"
  [1, 3, 3, 3] and "probs" [1, 2, 7]: TRANSPOSE_CONV (bias input, stride 2, SAME),
  RESIZE_NEAREST_NEIGHBOR, SUB, DEPTH_TO_SPACE, MAXIMUM (broadcast), RESIZE_BILINEAR
  with align_corners, PADV2, MINIMUM, DIV, RESIZE_BILINEAR (no align_corners, no
  half_pixel_centers), HARD_SWISH, LEAKY_RELU, ADD with fused TANH, PRELU, TANH,
  RELU_N1_TO_1, TRANSPOSE, SPLIT, UNPACK, PACK, GATHER, STRIDED_SLICE (begin_mask,
  end_mask, shrink_axis_mask), EXPAND_DIMS, SLICE (size -1), SUM, SQUEEZE, SOFTMAX with
  beta 0.5. LiteRT does not apply the fused TANH of the float ADD (any op resolver):
  "ops/add_tanh" comes out as the plain sum, and the expected outputs follow LiteRT.

The quantized models' activation ranges are calibrated: the same network is first
written in float32 (same weights, no QUANTIZE/DEQUANTIZE), run in LiteRT
(BUILTIN_WITHOUT_DEFAULT_DELEGATES, experimental_preserve_all_tensors) on four seeded
random inputs, and each tensor's min/max (widened to include 0, then rounded outward
to 6 significant bits so that last-bit float differences between CPUs cannot change
the bytes) gives its scale and zero point. Rounding is half away from zero, as in
TFLite's quantizer.

Unless --no-run, each model is run once in LiteRT (default options, one thread) on
seeded random inputs; the script prints per output min/max/std and fails when an
output is not finite or constant.
"""

import argparse
import collections
import os
import sys

import flatbuffers
import numpy as np
import tflite

BO = tflite.BuiltinOperator
OPT = tflite.BuiltinOptions
ACT = tflite.ActivationFunctionType
PAD = tflite.Padding
TT = tflite.TensorType

F32, I32, U8, I8 = TT.FLOAT32, TT.INT32, TT.UINT8, TT.INT8
NP_OF = {F32: np.float32, I32: np.int32, U8: np.uint8, I8: np.int8}
TT_OF = {np.dtype(v): k for k, v in NP_OF.items()}
OP_NAMES = {v: k for k, v in vars(BO).items() if not k.startswith("_")}

MIN_RUNTIME = b"1.14.0"


def round_half_away(x):
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


# ------------------------------------------------------------------ the graph


class Graph:
    """One subgraph and its buffers, serialised as a TFLite model by finish()."""

    def __init__(self, name):
        self.name = name
        self.tensors = []  # dicts: name, shape, type, buffer, quant
        self.buffers = [b""]  # buffer 0: the empty sentinel
        self.ops = []  # (opcode index, inputs, outputs, options)
        self.opcodes = []  # (builtin code, version)
        self.inputs = []
        self.outputs = []
        self.sig_inputs = []  # signature names
        self.sig_outputs = []
        self.by_name = {}

    # tensors
    def _tensor(self, name, shape, ttype, data, quant):
        if name in self.by_name:
            raise ValueError(f"duplicate tensor name {name}")
        self.buffers.append(data)
        idx = len(self.tensors)
        self.tensors.append(
            {"name": name, "shape": [int(d) for d in shape], "type": ttype, "buffer": len(self.buffers) - 1, "quant": quant}
        )
        self.by_name[name] = idx
        return idx

    def act(self, name, shape, ttype=F32, quant=None):
        """A non-constant tensor (its own empty buffer, as the MLIR converter writes)."""
        return self._tensor(name, shape, ttype, b"", quant)

    def const(self, name, array, quant=None):
        array = np.ascontiguousarray(array)
        return self._tensor(name, array.shape, TT_OF[array.dtype], array.astype(array.dtype.newbyteorder("<")).tobytes(), quant)

    def shape(self, t):
        return list(self.tensors[t]["shape"])

    def ttype(self, t):
        return self.tensors[t]["type"]

    def quant(self, t):
        return self.tensors[t]["quant"]

    def input(self, sig_name, shape, ttype=F32, quant=None):
        t = self.act(f"serving_default_{sig_name}:0", shape, ttype, quant)
        self.inputs.append(t)
        self.sig_inputs.append(sig_name)
        return t

    def mark_output(self, t, sig_name):
        self.outputs.append(t)
        self.sig_outputs.append(sig_name)

    # operators
    def op(self, code, inputs, outputs, options=None, version=1):
        key = (code, version)
        if key not in self.opcodes:
            self.opcodes.append(key)
        self.ops.append((self.opcodes.index(key), list(inputs), list(outputs), options))
        return outputs[0] if len(outputs) == 1 else outputs

    def op_counts(self):
        c = collections.Counter(OP_NAMES[self.opcodes[o[0]][0]] for o in self.ops)
        return dict(sorted(c.items()))

    # serialisation
    def finish(self):
        b = flatbuffers.Builder(1 << 20)

        def ivec(values, dtype=np.int32):
            return b.CreateNumpyVector(np.asarray(values, dtype=dtype).reshape(-1))

        def fvec(values):
            return b.CreateNumpyVector(np.asarray(values, dtype=np.float32).reshape(-1))

        def tables(offsets, start):
            start(b, len(offsets))
            for o in reversed(offsets):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        # buffers, constant data 16-byte aligned as the converter writes it
        buf_offs = []
        for data in self.buffers:
            dv = None
            if data:
                b.StartVector(1, len(data), 16)
                b.head = b.head - len(data)
                b.Bytes[b.head : b.head + len(data)] = data
                b.vectorNumElems = len(data)
                dv = b.EndVector()
            tflite.BufferStart(b)
            if dv is not None:
                tflite.BufferAddData(b, dv)
            buf_offs.append(tflite.BufferEnd(b))
        meta_buf = len(self.buffers)
        data = MIN_RUNTIME.ljust(16, b"\0")
        b.StartVector(1, len(data), 16)
        b.head = b.head - len(data)
        b.Bytes[b.head : b.head + len(data)] = data
        b.vectorNumElems = len(data)
        dv = b.EndVector()
        tflite.BufferStart(b)
        tflite.BufferAddData(b, dv)
        buf_offs.append(tflite.BufferEnd(b))

        # tensors
        t_offs = []
        for t in self.tensors:
            name = b.CreateString(t["name"])
            shape = ivec(t["shape"])
            q_off = None
            q = t["quant"]
            if q is not None:
                sc = fvec(q["scale"])
                zp = ivec(q["zero_point"], np.int64)
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, sc)
                tflite.QuantizationParametersAddZeroPoint(b, zp)
                tflite.QuantizationParametersAddQuantizedDimension(b, q.get("dim", 0))
                q_off = tflite.QuantizationParametersEnd(b)
            else:
                tflite.QuantizationParametersStart(b)
                q_off = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, t["type"])
            tflite.TensorAddBuffer(b, t["buffer"])
            tflite.TensorAddName(b, name)
            tflite.TensorAddQuantization(b, q_off)
            t_offs.append(tflite.TensorEnd(b))

        # operators
        o_offs = []
        for opcode, ins, outs, options in self.ops:
            iv = ivec(ins)
            ov = ivec(outs)
            opt_off = options[1](b) if options else None
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, opcode)
            tflite.OperatorAddInputs(b, iv)
            tflite.OperatorAddOutputs(b, ov)
            if options:
                tflite.OperatorAddBuiltinOptionsType(b, options[0])
                tflite.OperatorAddBuiltinOptions(b, opt_off)
            o_offs.append(tflite.OperatorEnd(b))

        tv = tables(t_offs, tflite.SubGraphStartTensorsVector)
        inv = ivec(self.inputs)
        outv = ivec(self.outputs)
        opv = tables(o_offs, tflite.SubGraphStartOperatorsVector)
        sg_name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tv)
        tflite.SubGraphAddInputs(b, inv)
        tflite.SubGraphAddOutputs(b, outv)
        tflite.SubGraphAddOperators(b, opv)
        tflite.SubGraphAddName(b, sg_name)
        sg = tflite.SubGraphEnd(b)

        oc_offs = []
        for code, version in self.opcodes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, BO.PLACEHOLDER_FOR_GREATER_OP_CODES))
            tflite.OperatorCodeAddVersion(b, version)
            tflite.OperatorCodeAddBuiltinCode(b, code)
            oc_offs.append(tflite.OperatorCodeEnd(b))

        def tensor_maps(names, idxs):
            offs = []
            for n, i in zip(names, idxs):
                s = b.CreateString(n)
                tflite.TensorMapStart(b)
                tflite.TensorMapAddName(b, s)
                tflite.TensorMapAddTensorIndex(b, i)
                offs.append(tflite.TensorMapEnd(b))
            return offs

        sig_in = tables(tensor_maps(self.sig_inputs, self.inputs), tflite.SignatureDefStartInputsVector)
        sig_out = tables(tensor_maps(self.sig_outputs, self.outputs), tflite.SignatureDefStartOutputsVector)
        sig_key = b.CreateString("serving_default")
        tflite.SignatureDefStart(b)
        tflite.SignatureDefAddInputs(b, sig_in)
        tflite.SignatureDefAddOutputs(b, sig_out)
        tflite.SignatureDefAddSignatureKey(b, sig_key)
        tflite.SignatureDefAddSubgraphIndex(b, 0)
        sig = tflite.SignatureDefEnd(b)

        meta_name = b.CreateString("min_runtime_version")
        tflite.MetadataStart(b)
        tflite.MetadataAddName(b, meta_name)
        tflite.MetadataAddBuffer(b, meta_buf)
        meta = tflite.MetadataEnd(b)

        ocv = tables(oc_offs, tflite.ModelStartOperatorCodesVector)
        sgv = tables([sg], tflite.ModelStartSubgraphsVector)
        desc = b.CreateString("MLIR Converted.")
        bv = tables(buf_offs, tflite.ModelStartBuffersVector)
        mv = tables([meta], tflite.ModelStartMetadataVector)
        sv = tables([sig], tflite.ModelStartSignatureDefsVector)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, ocv)
        tflite.ModelAddSubgraphs(b, sgv)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, bv)
        tflite.ModelAddMetadata(b, mv)
        tflite.ModelAddSignatureDefs(b, sv)
        model = tflite.ModelEnd(b)
        b.Finish(model, file_identifier=b"TFL3")
        return bytes(b.Output())


# ------------------------------------------------------------------ builtin options
# Each returns (BuiltinOptions type, writer); the writer builds the table on a builder.


def conv_opts(stride, act, padding=PAD.SAME):
    def w(b):
        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, padding)
        tflite.Conv2DOptionsAddStrideW(b, stride)
        tflite.Conv2DOptionsAddStrideH(b, stride)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, act)
        tflite.Conv2DOptionsAddDilationWFactor(b, 1)
        tflite.Conv2DOptionsAddDilationHFactor(b, 1)
        return tflite.Conv2DOptionsEnd(b)

    return (OPT.Conv2DOptions, w)


def dw_opts(stride, act, padding=PAD.SAME):
    def w(b):
        tflite.DepthwiseConv2DOptionsStart(b)
        tflite.DepthwiseConv2DOptionsAddPadding(b, padding)
        tflite.DepthwiseConv2DOptionsAddStrideW(b, stride)
        tflite.DepthwiseConv2DOptionsAddStrideH(b, stride)
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, act)
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, 1)
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, 1)
        return tflite.DepthwiseConv2DOptionsEnd(b)

    return (OPT.DepthwiseConv2DOptions, w)


def pool_opts(k, stride, act=ACT.NONE, padding=PAD.VALID):
    def w(b):
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, padding)
        tflite.Pool2DOptionsAddStrideW(b, stride)
        tflite.Pool2DOptionsAddStrideH(b, stride)
        tflite.Pool2DOptionsAddFilterWidth(b, k)
        tflite.Pool2DOptionsAddFilterHeight(b, k)
        tflite.Pool2DOptionsAddFusedActivationFunction(b, act)
        return tflite.Pool2DOptionsEnd(b)

    return (OPT.Pool2DOptions, w)


def add_opts(act=ACT.NONE):
    def w(b):
        tflite.AddOptionsStart(b)
        tflite.AddOptionsAddFusedActivationFunction(b, act)
        return tflite.AddOptionsEnd(b)

    return (OPT.AddOptions, w)


def sub_opts(act=ACT.NONE):
    def w(b):
        tflite.SubOptionsStart(b)
        tflite.SubOptionsAddFusedActivationFunction(b, act)
        return tflite.SubOptionsEnd(b)

    return (OPT.SubOptions, w)


def div_opts(act=ACT.NONE):
    def w(b):
        tflite.DivOptionsStart(b)
        tflite.DivOptionsAddFusedActivationFunction(b, act)
        return tflite.DivOptionsEnd(b)

    return (OPT.DivOptions, w)


def fc_opts(act=ACT.NONE):
    def w(b):
        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, act)
        tflite.FullyConnectedOptionsAddWeightsFormat(b, tflite.FullyConnectedOptionsWeightsFormat.DEFAULT)
        tflite.FullyConnectedOptionsAddKeepNumDims(b, False)
        return tflite.FullyConnectedOptionsEnd(b)

    return (OPT.FullyConnectedOptions, w)


def softmax_opts(beta=1.0):
    def w(b):
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, beta)
        return tflite.SoftmaxOptionsEnd(b)

    return (OPT.SoftmaxOptions, w)


def reducer_opts(keep_dims):
    def w(b):
        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, keep_dims)
        return tflite.ReducerOptionsEnd(b)

    return (OPT.ReducerOptions, w)


def reshape_opts(new_shape):
    def w(b):
        v = b.CreateNumpyVector(np.asarray(new_shape, np.int32))
        tflite.ReshapeOptionsStart(b)
        tflite.ReshapeOptionsAddNewShape(b, v)
        return tflite.ReshapeOptionsEnd(b)

    return (OPT.ReshapeOptions, w)


def concat_opts(axis, act=ACT.NONE):
    def w(b):
        tflite.ConcatenationOptionsStart(b)
        tflite.ConcatenationOptionsAddAxis(b, axis)
        tflite.ConcatenationOptionsAddFusedActivationFunction(b, act)
        return tflite.ConcatenationOptionsEnd(b)

    return (OPT.ConcatenationOptions, w)


def empty_opts(kind):
    """Options tables without fields (QUANTIZE, DEQUANTIZE, TRANSPOSE, ...)."""
    start, end = getattr(tflite, f"{kind}Start"), getattr(tflite, f"{kind}End")

    def w(b):
        start(b)
        return end(b)

    return (getattr(OPT, kind), w)


def transpose_conv_opts(stride, padding=PAD.SAME, act=ACT.NONE):
    def w(b):
        tflite.TransposeConvOptionsStart(b)
        tflite.TransposeConvOptionsAddPadding(b, padding)
        tflite.TransposeConvOptionsAddStrideW(b, stride)
        tflite.TransposeConvOptionsAddStrideH(b, stride)
        tflite.TransposeConvOptionsAddFusedActivationFunction(b, act)
        return tflite.TransposeConvOptionsEnd(b)

    return (OPT.TransposeConvOptions, w)


def resize_bilinear_opts(align_corners, half_pixel_centers):
    def w(b):
        tflite.ResizeBilinearOptionsStart(b)
        tflite.ResizeBilinearOptionsAddAlignCorners(b, align_corners)
        tflite.ResizeBilinearOptionsAddHalfPixelCenters(b, half_pixel_centers)
        return tflite.ResizeBilinearOptionsEnd(b)

    return (OPT.ResizeBilinearOptions, w)


def resize_nearest_opts(align_corners, half_pixel_centers):
    def w(b):
        tflite.ResizeNearestNeighborOptionsStart(b)
        tflite.ResizeNearestNeighborOptionsAddAlignCorners(b, align_corners)
        tflite.ResizeNearestNeighborOptionsAddHalfPixelCenters(b, half_pixel_centers)
        return tflite.ResizeNearestNeighborOptionsEnd(b)

    return (OPT.ResizeNearestNeighborOptions, w)


def depth_to_space_opts(block):
    def w(b):
        tflite.DepthToSpaceOptionsStart(b)
        tflite.DepthToSpaceOptionsAddBlockSize(b, block)
        return tflite.DepthToSpaceOptionsEnd(b)

    return (OPT.DepthToSpaceOptions, w)


def leaky_relu_opts(alpha):
    def w(b):
        tflite.LeakyReluOptionsStart(b)
        tflite.LeakyReluOptionsAddAlpha(b, alpha)
        return tflite.LeakyReluOptionsEnd(b)

    return (OPT.LeakyReluOptions, w)


def split_opts(n):
    def w(b):
        tflite.SplitOptionsStart(b)
        tflite.SplitOptionsAddNumSplits(b, n)
        return tflite.SplitOptionsEnd(b)

    return (OPT.SplitOptions, w)


def pack_opts(n, axis):
    def w(b):
        tflite.PackOptionsStart(b)
        tflite.PackOptionsAddValuesCount(b, n)
        tflite.PackOptionsAddAxis(b, axis)
        return tflite.PackOptionsEnd(b)

    return (OPT.PackOptions, w)


def unpack_opts(n, axis):
    def w(b):
        tflite.UnpackOptionsStart(b)
        tflite.UnpackOptionsAddNum(b, n)
        tflite.UnpackOptionsAddAxis(b, axis)
        return tflite.UnpackOptionsEnd(b)

    return (OPT.UnpackOptions, w)


def gather_opts(axis):
    def w(b):
        tflite.GatherOptionsStart(b)
        tflite.GatherOptionsAddAxis(b, axis)
        tflite.GatherOptionsAddBatchDims(b, 0)
        return tflite.GatherOptionsEnd(b)

    return (OPT.GatherOptions, w)


def strided_slice_opts(begin_mask, end_mask, shrink_axis_mask):
    def w(b):
        tflite.StridedSliceOptionsStart(b)
        tflite.StridedSliceOptionsAddBeginMask(b, begin_mask)
        tflite.StridedSliceOptionsAddEndMask(b, end_mask)
        tflite.StridedSliceOptionsAddEllipsisMask(b, 0)
        tflite.StridedSliceOptionsAddNewAxisMask(b, 0)
        tflite.StridedSliceOptionsAddShrinkAxisMask(b, shrink_axis_mask)
        tflite.StridedSliceOptionsAddOffset(b, False)
        return tflite.StridedSliceOptionsEnd(b)

    return (OPT.StridedSliceOptions, w)


def squeeze_opts(dims):
    def w(b):
        v = b.CreateNumpyVector(np.asarray(dims, np.int32))
        tflite.SqueezeOptionsStart(b)
        tflite.SqueezeOptionsAddSqueezeDims(b, v)
        return tflite.SqueezeOptionsEnd(b)

    return (OPT.SqueezeOptions, w)


# ------------------------------------------------------------------ quantization


def widen(lo, hi):
    """Calibrated range -> range containing 0, rounded outward to 6 significant bits."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)

    def out(v, up):
        if v == 0.0:
            return 0.0
        step = 2.0 ** (np.floor(np.log2(abs(v))) - 5)
        return float((np.ceil if up else np.floor)(v / step) * step)

    lo, hi = out(lo, False), out(hi, True)
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    return lo, hi


def act_quant(rng, ttype):
    lo, hi = rng
    scale = (hi - lo) / 255.0
    qmin = -128 if ttype == I8 else 0
    zp = int(np.clip(round_half_away(qmin - lo / scale), qmin, qmin + 255))
    return {"scale": [scale], "zero_point": [zp]}


def quant_per_channel_i8(w, dim):
    """Symmetric int8 per channel along dim (narrow range [-127, 127], zero point 0)."""
    axes = tuple(a for a in range(w.ndim) if a != dim)
    amax = np.abs(w).max(axis=axes).astype(np.float64)
    scale = np.where(amax > 0, amax / 127.0, 1e-8).astype(np.float32)
    shape = [1] * w.ndim
    shape[dim] = -1
    q = np.clip(round_half_away(w / scale.astype(np.float64).reshape(shape)), -127, 127).astype(np.int8)
    return q, {"scale": scale.tolist(), "zero_point": [0] * len(scale), "dim": dim}


def quant_per_tensor_i8(w):
    amax = float(np.abs(w).max())
    scale = float(np.float32(amax / 127.0))
    q = np.clip(round_half_away(w / scale), -127, 127).astype(np.int8)
    return q, {"scale": [scale], "zero_point": [0]}


def quant_per_tensor_u8(w):
    """Asymmetric uint8 over [min(w, 0), max(w, 0)]: a non-zero zero point."""
    lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(round_half_away(-lo / scale), 0, 255))
    q = np.clip(round_half_away(w / scale) + zp, 0, 255).astype(np.uint8)
    return q, {"scale": [scale], "zero_point": [zp]}


def quant_bias(bias, in_scale, w_scales):
    """int32 bias, scale in_scale * w_scale[c]: per channel when the weights are, else per tensor."""
    s = np.float64(np.float32(in_scale)) * np.asarray(w_scales, np.float32).astype(np.float64)
    q = round_half_away(bias / s).astype(np.int32)
    return q, {"scale": [float(np.float32(v)) for v in s], "zero_point": [0] * len(s)}


# ------------------------------------------------------------------ network layer


def same_out(n, stride):
    return (n + stride - 1) // stride


class Net:
    """Layers on a Graph in one numeric mode: "f32", "int8" (per channel) or "uint8" (per tensor).

    In the quantized modes, activation ranges come from `ranges` (tensor name -> (lo, hi)),
    as measured on the float32 build of the same network."""

    def __init__(self, g, mode, ranges=None, prefix="model"):
        self.g = g
        self.mode = mode
        self.ranges = ranges or {}
        self.prefix = prefix
        self.act_type = {"f32": F32, "int8": I8, "uint8": U8}[mode]

    def name(self, s):
        return f"{self.prefix}/{s}"

    def out(self, name, shape, quant=None):
        if self.mode == "f32":
            return self.g.act(name, shape)
        if quant is None:
            quant = act_quant(self.ranges[name], self.act_type)
        return self.g.act(name, shape, self.act_type, quant)

    def same_quant(self, x):
        return None if self.mode == "f32" else dict(self.g.quant(x))

    def _weights(self, base, w, bias, in_t, per_channel_dim):
        """Weight and bias tensors for a conv / depthwise / fully-connected layer."""
        g = self.g
        if self.mode == "f32":
            return g.const(f"{base}/weights", w.astype(np.float32)), g.const(f"{base}/bias", bias.astype(np.float32))
        in_scale = g.quant(in_t)["scale"][0]
        if self.mode == "int8":
            if per_channel_dim is None:
                qw, wq = quant_per_tensor_i8(w)
            else:
                qw, wq = quant_per_channel_i8(w, per_channel_dim)
        else:
            qw, wq = quant_per_tensor_u8(w)
        qb, bq = quant_bias(bias, in_scale, wq["scale"])
        return g.const(f"{base}/weights", qw, wq), g.const(f"{base}/bias", qb, bq)

    def version(self, float_v, int8_v, uint8_v=1):
        return {"f32": float_v, "int8": int8_v, "uint8": uint8_v}[self.mode]

    def conv(self, x, name, w, bias, stride=1, act=ACT.RELU6):
        """w: [cout, kh, kw, cin] float."""
        n, h, wd, _ = self.g.shape(x)
        base = self.name(name)
        wt, bt = self._weights(base, w, bias, x, 0)
        y = self.out(base + ("/Relu6" if act == ACT.RELU6 else "/BiasAdd"), [n, same_out(h, stride), same_out(wd, stride), w.shape[0]])
        return self.g.op(BO.CONV_2D, [x, wt, bt], [y], conv_opts(stride, act), self.version(1, 3))

    def dwconv(self, x, name, w, bias, stride=1, act=ACT.RELU6):
        """w: [1, kh, kw, c] float."""
        n, h, wd, c = self.g.shape(x)
        base = self.name(name)
        wt, bt = self._weights(base, w, bias, x, 3)
        y = self.out(base + ("/Relu6" if act == ACT.RELU6 else "/BiasAdd"), [n, same_out(h, stride), same_out(wd, stride), c])
        return self.g.op(BO.DEPTHWISE_CONV_2D, [x, wt, bt], [y], dw_opts(stride, act), self.version(1, 3))

    def fc(self, x, name, w, bias, act=ACT.NONE):
        """w: [out, in] float; x [1, in]."""
        base = self.name(name)
        wt, bt = self._weights(base, w, bias, x, None)
        y = self.out(base + "/MatMul", [self.g.shape(x)[0], w.shape[0]])
        return self.g.op(BO.FULLY_CONNECTED, [x, wt, bt], [y], fc_opts(act), self.version(1, 4))

    def add(self, a, b, name, act=ACT.NONE):
        y = self.out(self.name(name), self.g.shape(a))
        return self.g.op(BO.ADD, [a, b], [y], add_opts(act), self.version(1, 2))

    def avg_pool(self, x, name, k):
        n, h, w, c = self.g.shape(x)
        y = self.out(self.name(name), [n, (h - k) // k + 1, (w - k) // k + 1, c], self.same_quant(x))
        return self.g.op(BO.AVERAGE_POOL_2D, [x], [y], pool_opts(k, k), self.version(1, 2))

    def max_pool(self, x, name, k):
        n, h, w, c = self.g.shape(x)
        y = self.out(self.name(name), [n, (h - k) // k + 1, (w - k) // k + 1, c], self.same_quant(x))
        return self.g.op(BO.MAX_POOL_2D, [x], [y], pool_opts(k, k), self.version(1, 2))

    def mean_hw(self, x, name):
        n, _, _, c = self.g.shape(x)
        axes = self.g.const(self.name(name) + "/reduction_indices", np.array([1, 2], np.int32))
        y = self.out(self.name(name), [n, c])
        return self.g.op(BO.MEAN, [x, axes], [y], reducer_opts(False), self.version(1, 2))

    def reshape(self, x, name, shape):
        s = self.g.const(self.name(name) + "/shape", np.array(shape, np.int32))
        y = self.out(self.name(name), shape, self.same_quant(x))
        return self.g.op(BO.RESHAPE, [x, s], [y], reshape_opts(shape), 1)

    def concat(self, xs, name, axis=3):
        shape = self.g.shape(xs[0])
        shape[axis] = sum(self.g.shape(x)[axis] for x in xs)
        y = self.out(self.name(name), shape)
        return self.g.op(BO.CONCATENATION, xs, [y], concat_opts(axis), self.version(1, 2))

    def softmax(self, x, name, out_name=None):
        quant = None
        if self.mode == "int8":
            quant = {"scale": [1.0 / 256], "zero_point": [-128]}
        elif self.mode == "uint8":
            quant = {"scale": [1.0 / 256], "zero_point": [0]}
        y = self.out(out_name or self.name(name), self.g.shape(x), quant)
        return self.g.op(BO.SOFTMAX, [x], [y], softmax_opts(1.0), self.version(1, 2))

    def logistic(self, x, name, out_name=None):
        quant = None
        if self.mode == "int8":
            quant = {"scale": [1.0 / 256], "zero_point": [-128]}
        elif self.mode == "uint8":
            quant = {"scale": [1.0 / 256], "zero_point": [0]}
        y = self.out(out_name or self.name(name), self.g.shape(x), quant)
        return self.g.op(BO.LOGISTIC, [x], [y], None, self.version(1, 2))


def he_uniform(rng, shape, fan_in):
    lim = np.sqrt(6.0 / fan_in)
    return rng.uniform(-lim, lim, size=shape).astype(np.float32)


def bias_uniform(rng, n):
    return rng.uniform(-0.05, 0.05, size=n).astype(np.float32)


class Weights:
    """Layer weights drawn once, in layer order, so float and quantized builds share them."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.cache = {}

    def conv(self, name, cout, k, cin):
        if name not in self.cache:
            self.cache[name] = (he_uniform(self.rng, (cout, k, k, cin), k * k * cin), bias_uniform(self.rng, cout))
        return self.cache[name]

    def dw(self, name, k, c):
        if name not in self.cache:
            self.cache[name] = (he_uniform(self.rng, (1, k, k, c), k * k), bias_uniform(self.rng, c))
        return self.cache[name]

    def fc(self, name, cout, cin):
        if name not in self.cache:
            self.cache[name] = (he_uniform(self.rng, (cout, cin), cin), bias_uniform(self.rng, cout))
        return self.cache[name]


# ------------------------------------------------------------------ MobileNetV2 (float32)

MOBILENET_V2_BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2_f32():
    g = Graph("mobilenet_v2_f32")
    wts = Weights(20240611)
    net = Net(g, "f32", prefix="mobilenetv2_1.00_224")
    x = g.input("input_1", [1, 224, 224, 3])
    x = net.conv(x, "Conv1", *wts.conv("Conv1", 32, 3, 3), stride=2)
    cin = 32
    block = 0
    for t, c, n, s in MOBILENET_V2_BLOCKS:
        for i in range(n):
            stride = s if i == 0 else 1
            inp = x
            p = "expanded_conv" if block == 0 else f"block_{block}"
            hidden = cin * t
            if t != 1:
                x = net.conv(x, f"{p}_expand", *wts.conv(f"{p}_expand", hidden, 1, cin))
            x = net.dwconv(x, f"{p}_depthwise", *wts.dw(f"{p}_depthwise", 3, hidden), stride=stride)
            x = net.conv(x, f"{p}_project", *wts.conv(f"{p}_project", c, 1, hidden), act=ACT.NONE)
            if stride == 1 and cin == c:
                x = net.add(inp, x, f"{p}_add/add")
            cin = c
            block += 1
    x = net.conv(x, "Conv_1", *wts.conv("Conv_1", 1280, 1, cin))
    x = net.mean_hw(x, "global_average_pooling2d/Mean")
    x = net.fc(x, "predictions", *wts.fc("predictions", 1000, 1280))
    y = net.softmax(x, "predictions/Softmax", out_name="StatefulPartitionedCall:0")
    g.mark_output(y, "predictions")
    return g


# ------------------------------------------------------------------ small quantized MobileNets


def calibrate(build, make_input, n=4, seed=1234):
    """Per-tensor (lo, hi) of every tensor of the float32 build, over n seeded inputs."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    g = build("f32", None)
    it = Interpreter(
        model_content=g.finish(),
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    lo, hi = {}, {}
    details = {d["name"]: d["index"] for d in it.get_tensor_details()}
    for _ in range(n):
        for d in it.get_input_details():
            it.set_tensor(d["index"], make_input(rng, d["shape"]))
        it.invoke()
        for t in g.tensors:
            if g.buffers[t["buffer"]]:
                continue  # constant
            v = it.get_tensor(details[t["name"]])
            lo[t["name"]] = min(lo.get(t["name"], np.inf), float(v.min()))
            hi[t["name"]] = max(hi.get(t["name"], -np.inf), float(v.max()))
    return {k: widen(lo[k], hi[k]) for k in lo}


def mobilenet_int8_graph(mode, ranges, wts=None):
    wts = wts or Weights(7)
    g = Graph("mobilenet_int8")
    net = Net(g, mode, ranges, prefix="mobilenet_int8")
    if mode == "f32":
        x = g.input("input", [1, 96, 96, 3])
    else:
        xf = g.input("input", [1, 96, 96, 3])
        x = g.act("mobilenet_int8/quantize", [1, 96, 96, 3], I8, act_quant(ranges["serving_default_input:0"], I8))
        g.op(BO.QUANTIZE, [xf], [x], empty_opts("QuantizeOptions"), 2)
    x = net.conv(x, "conv1", *wts.conv("conv1", 16, 3, 3), stride=2)  # 48x48x16

    def separable(x, name, cin, cout, stride):
        x = net.dwconv(x, f"{name}_dw", *wts.dw(f"{name}_dw", 3, cin), stride=stride)
        return net.conv(x, f"{name}_pw", *wts.conv(f"{name}_pw", cout, 1, cin))

    x = separable(x, "block1", 16, 24, 1)  # 48x48x24
    x = separable(x, "block2", 24, 32, 2)  # 24x24x32
    inp = x
    x = net.conv(x, "block3_expand", *wts.conv("block3_expand", 96, 1, 32))
    x = net.dwconv(x, "block3_dw", *wts.dw("block3_dw", 3, 96))
    x = net.conv(x, "block3_project", *wts.conv("block3_project", 32, 1, 96), act=ACT.NONE)
    x = net.add(inp, x, "block3_add")
    x = separable(x, "block4", 32, 64, 2)  # 12x12x64
    x = net.avg_pool(x, "avg_pool", 12)  # 1x1x1x64
    x = net.reshape(x, "flatten", [1, 64])
    x = net.fc(x, "logits", *wts.fc("logits", 10, 64))
    if mode == "f32":
        y = net.softmax(x, "softmax", out_name="StatefulPartitionedCall:0")
    else:
        q = net.softmax(x, "softmax")
        y = g.act("StatefulPartitionedCall:0", [1, 10])
        g.op(BO.DEQUANTIZE, [q], [y], empty_opts("DequantizeOptions"), 2)
    g.mark_output(y, "probs")
    return g


def mobilenet_int8():
    wts = Weights(7)

    def build(mode, ranges):
        return mobilenet_int8_graph(mode, ranges, wts)

    ranges = calibrate(build, lambda rng, shape: rng.uniform(-1.0, 1.0, size=shape).astype(np.float32))
    return build("int8", ranges)


U8_INPUT_QUANT = {"scale": [1.0 / 128], "zero_point": [128]}


def mobilenet_uint8_graph(mode, ranges, wts):
    g = Graph("mobilenet_uint8")
    net = Net(g, mode, ranges, prefix="mobilenet_uint8")
    if mode == "f32":
        x = g.input("input", [1, 64, 64, 3])
    else:
        x = g.input("input", [1, 64, 64, 3], U8, U8_INPUT_QUANT)
    x = net.conv(x, "conv1", *wts.conv("conv1", 16, 3, 3), stride=2)  # 32x32x16
    a = net.dwconv(x, "branch_a_dw", *wts.dw("branch_a_dw", 3, 16))
    a = net.conv(a, "branch_a_pw", *wts.conv("branch_a_pw", 24, 1, 16))
    b = net.conv(x, "branch_b", *wts.conv("branch_b", 8, 1, 16))
    x = net.concat([a, b], "concat")  # 32x32x32
    x = net.max_pool(x, "max_pool", 2)  # 16x16x32
    x = net.dwconv(x, "block2_dw", *wts.dw("block2_dw", 3, 32), stride=2)  # 8x8x32
    x = net.conv(x, "block2_pw", *wts.conv("block2_pw", 64, 1, 32))
    x = net.avg_pool(x, "avg_pool", 8)  # 1x1x1x64
    x = net.reshape(x, "flatten", [1, 64])
    x = net.fc(x, "logits", *wts.fc("logits", 10, 64))
    y = net.logistic(x, "sigmoid", out_name="StatefulPartitionedCall:0")
    g.mark_output(y, "scores")
    return g


def mobilenet_uint8():
    wts = Weights(8)

    def build(mode, ranges):
        return mobilenet_uint8_graph(mode, ranges, wts)

    def make_input(rng, shape):
        # the float values the uint8 input stands for: (q - 128) / 128
        return ((rng.integers(0, 256, size=shape) - 128) / 128.0).astype(np.float32)

    ranges = calibrate(build, make_input)
    return build("uint8", ranges)


# ------------------------------------------------------------------ ops_f32


def ops_f32():
    g = Graph("ops_f32")
    rng = np.random.default_rng(99)
    p = "ops"

    def c(name, array):
        return g.const(f"{p}/{name}", array)

    def t(name, shape):
        return g.act(f"{p}/{name}", shape)

    x = g.input("x", [1, 8, 8, 4])

    # A: resampling to 16x16 and back
    out_shape = c("up/output_shape", np.array([1, 16, 16, 4], np.int32))
    w_t = he_uniform(rng, (4, 3, 3, 4), 3 * 3 * 4)  # [O, H, W, I]
    b_t = bias_uniform(rng, 4)
    a1 = g.op(BO.TRANSPOSE_CONV, [out_shape, c("up/weights", w_t), x, c("up/bias", b_t)], [t("up/conv2d_transpose", [1, 16, 16, 4])],
              transpose_conv_opts(2), 3)
    size16 = c("nearest/size", np.array([16, 16], np.int32))
    a2 = g.op(BO.RESIZE_NEAREST_NEIGHBOR, [x, size16], [t("nearest/resize", [1, 16, 16, 4])], resize_nearest_opts(False, False), 1)
    a3 = g.op(BO.SUB, [a1, a2], [t("sub", [1, 16, 16, 4])], sub_opts(), 1)
    a4 = g.op(BO.DEPTH_TO_SPACE, [x], [t("depth_to_space", [1, 16, 16, 1])], depth_to_space_opts(2), 1)
    a5 = g.op(BO.MAXIMUM, [a3, a4], [t("maximum", [1, 16, 16, 4])], empty_opts("MaximumMinimumOptions"), 1)
    size15 = c("bilinear_ac/size", np.array([15, 15], np.int32))
    a6 = g.op(BO.RESIZE_BILINEAR, [x, size15], [t("bilinear_ac/resize", [1, 15, 15, 4])], resize_bilinear_opts(True, False), 1)
    pads = c("pad/paddings", np.array([[0, 0], [1, 0], [0, 1], [0, 0]], np.int32))
    pad_value = c("pad/constant_values", np.array(0.25, np.float32))
    a7 = g.op(BO.PADV2, [a6, pads, pad_value], [t("pad", [1, 16, 16, 4])], empty_opts("PadV2Options"), 1)
    a8 = g.op(BO.MINIMUM, [a5, a7], [t("minimum", [1, 16, 16, 4])], empty_opts("MaximumMinimumOptions"), 1)
    den = c("div/y", np.array([0.5, 0.8, 1.25, 2.0], np.float32))
    a9 = g.op(BO.DIV, [a8, den], [t("div", [1, 16, 16, 4])], div_opts(), 1)
    size8 = c("bilinear/size", np.array([8, 8], np.int32))
    a10 = g.op(BO.RESIZE_BILINEAR, [a9, size8], [t("bilinear/resize", [1, 8, 8, 4])], resize_bilinear_opts(False, False), 1)

    # B: activations, joined into "mix"
    b1 = g.op(BO.HARD_SWISH, [x], [t("hard_swish", [1, 8, 8, 4])], empty_opts("HardSwishOptions"), 1)
    b2 = g.op(BO.LEAKY_RELU, [x], [t("leaky_relu", [1, 8, 8, 4])], leaky_relu_opts(0.2), 1)
    b3 = g.op(BO.ADD, [b1, b2], [t("add_tanh", [1, 8, 8, 4])], add_opts(ACT.TANH), 1)
    alpha = c("prelu/alpha", rng.uniform(0.05, 0.5, size=(1, 1, 4)).astype(np.float32))
    b4 = g.op(BO.PRELU, [a10, alpha], [t("prelu", [1, 8, 8, 4])], None, 1)
    b5 = g.op(BO.TANH, [a10], [t("tanh", [1, 8, 8, 4])], None, 1)
    b6 = g.op(BO.RELU_N1_TO_1, [b4], [t("relu_n1_to_1", [1, 8, 8, 4])], None, 1)
    m1 = g.op(BO.ADD, [b3, b5], [t("mix/add", [1, 8, 8, 4])], add_opts(), 1)
    mix = g.op(BO.ADD, [m1, b6], [g.act("StatefulPartitionedCall:0", [1, 8, 8, 4])], add_opts(), 1)
    g.mark_output(mix, "mix")

    # C: layout and indexing
    c1 = g.op(BO.TRANSPOSE, [x, c("transpose/perm", np.array([0, 3, 1, 2], np.int32))], [t("transpose", [1, 4, 8, 8])],
              empty_opts("TransposeOptions"), 1)
    split_axis = c("split/split_dim", np.array(1, np.int32))
    c2a, c2b = t("split", [1, 2, 8, 8]), t("split:1", [1, 2, 8, 8])
    g.op(BO.SPLIT, [split_axis, c1], [c2a, c2b], split_opts(2), 1)
    u = [t("unstack" + (f":{i}" if i else ""), [1, 8, 8]) for i in range(4)]
    g.op(BO.UNPACK, [x], u, unpack_opts(4, 3), 1)
    c5 = g.op(BO.PACK, [u[3], u[1], u[0]], [t("stack", [1, 3, 8, 8])], pack_opts(3, 1), 1)
    idx = c("gather/indices", np.array([2, 0, 3], np.int32))
    c6 = g.op(BO.GATHER, [c1, idx], [t("gather", [1, 3, 8, 8])], gather_opts(1), 1)
    c7 = g.op(BO.ADD, [c5, c6], [t("gather_add", [1, 3, 8, 8])], add_opts(), 1)
    # [0, :, 1:7:2, ::3] with axis 1 from begin_mask/end_mask, axis 0 shrunk
    ss_begin = c("strided_slice/begin", np.array([0, 5, 1, 0], np.int32))
    ss_end = c("strided_slice/end", np.array([1, 1, 7, 8], np.int32))
    ss_strides = c("strided_slice/strides", np.array([1, 1, 2, 3], np.int32))
    c8 = g.op(BO.STRIDED_SLICE, [c7, ss_begin, ss_end, ss_strides], [t("strided_slice", [3, 3, 3])],
              strided_slice_opts(0b0010, 0b0010, 0b0001), 1)
    ed_axis = c("expand_dims/dim", np.array(0, np.int32))
    c9 = g.op(BO.EXPAND_DIMS, [c8, ed_axis], [g.act("StatefulPartitionedCall:1", [1, 3, 3, 3])], empty_opts("ExpandDimsOptions"), 1)
    g.mark_output(c9, "gathered")
    sl_begin = c("slice/begin", np.array([0, 0, 2, 1], np.int32))
    sl_size = c("slice/size", np.array([-1, -1, 4, -1], np.int32))
    c10 = g.op(BO.SLICE, [c2b, sl_begin, sl_size], [t("slice", [1, 2, 4, 7])], empty_opts("SliceOptions"), 1)
    c11 = g.op(BO.SUM, [c10, c("sum/reduction_indices", np.array([2], np.int32))], [t("sum", [1, 2, 1, 7])], reducer_opts(True), 1)
    c12 = g.op(BO.SQUEEZE, [c11], [t("squeeze", [1, 2, 7])], squeeze_opts([2]), 1)
    probs = g.op(BO.SOFTMAX, [c12], [g.act("StatefulPartitionedCall:2", [1, 2, 7])], softmax_opts(0.5), 1)
    g.mark_output(probs, "probs")
    return g


MODELS = [
    ("mobilenet_v2_f32", mobilenet_v2_f32),
    ("mobilenet_int8", mobilenet_int8),
    ("mobilenet_uint8", mobilenet_uint8),
    ("ops_f32", ops_f32),
]


def build(name):
    """The model's bytes and its graph (for op counts)."""
    g = dict(MODELS)[name]()
    return g.finish(), g


def make_input(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if dtype == np.int8:
        return rng.integers(-128, 128, size=shape, dtype=np.int8)
    raise SystemExit(f"no test input for dtype {dtype}")


def run_litert(data, seed=0):
    """Run the model once in LiteRT (default options, one thread): [(name, array)] per output."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    for d in it.get_input_details():
        it.set_tensor(d["index"], make_input(rng, d["shape"], d["dtype"]))
    it.invoke()
    return [(d["name"], it.get_tensor(d["index"]).copy()) for d in it.get_output_details()]


def check_outputs(name, outputs):
    lines = []
    for n, y in outputs:
        yf = y.astype(np.float64)
        if not np.isfinite(yf).all():
            raise SystemExit(f"{name}: output {n} is not finite")
        if y.size > 1 and yf.std() == 0:
            raise SystemExit(f"{name}: output {n} is constant ({yf.flat[0]}); the model is degenerate")
        lines.append(f"{n} {y.dtype} {list(y.shape)}: min {yf.min():.6g} max {yf.max():.6g} std {yf.std():.6g}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--no-run", action="store_true", help="skip the LiteRT smoke run")
    ap.add_argument("--models", default="all", help=f"comma-separated subset of {', '.join(n for n, _ in MODELS)}, or 'all'")
    args = ap.parse_args()
    names = [n for n, _ in MODELS] if args.models == "all" else [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in dict(MODELS)]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(n for n, _ in MODELS)}")
    os.makedirs(args.out_dir, exist_ok=True)
    for name in names:
        data, g = build(name)
        path = os.path.join(args.out_dir, f"{name}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        ops = ", ".join(f"{k} {v}" for k, v in g.op_counts().items())
        print(f"{path}: {len(g.ops)} operators ({ops}), {len(g.tensors)} tensors, {len(data) / 1e6:.2f} MB")
        if not args.no_run:
            for line in check_outputs(name, run_litert(data)):
                print(f"  {line}")


if __name__ == "__main__":
    sys.exit(main())
