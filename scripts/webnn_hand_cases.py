#!/usr/bin/env python3
"""Writes tests/data/webnn-hand/*.json: hand-checked conformance cases for the
WebNN operators without WPT vectors in tests/data/wpt-webnn (isNaN,
isInfinite, sign, reverse, tile, triangular, argMin, argMax, cumulativeSum,
dequantizeLinear, quantizeLinear, gatherElements, gatherND, scatterElements,
scatterND) and kiln's attention, in the same JSON shape, so kiln's conformance runners read them.

The expected outputs are computed here with numpy, independently of kiln,
from the operators' definitions in the WebNN spec (indices: negative counts
from the end, out-of-range clamped; scatters: the later of duplicate
indices wins; argMin/argMax: the first extreme, the first NaN if any).
Inputs are seeded; the files are deterministic.

    target/bench-venv/bin/python scripts/webnn_hand_cases.py   # needs numpy
"""
import json
import math
import os

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "webnn-hand")
NP = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint32": np.uint32,
      "int64": np.int64, "uint64": np.uint64, "int8": np.int8, "uint8": np.uint8}
rng = np.random.default_rng(20261205)


def enc(values, dtype):
    """JSON data: NaN/Infinity/-0 as strings, 64-bit integers as decimal strings."""
    out = []
    for v in np.asarray(values).reshape(-1).tolist():
        if dtype.startswith("float"):
            if math.isnan(v):
                out.append("NaN")
            elif math.isinf(v):
                out.append("Infinity" if v > 0 else "-Infinity")
            elif v == 0 and math.copysign(1, v) < 0:
                out.append("-0")
            else:
                out.append(float(v))
        elif dtype in ("int64", "uint64"):
            out.append(str(int(v)))
        else:
            out.append(int(v))
    return out


def floats(shape, dtype, lo=-10.0, hi=10.0):
    return rng.uniform(lo, hi, size=shape).astype(NP[dtype])


def ints(shape, dtype, lo, hi):
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(NP[dtype])


def tensor(array, dtype, constant=False):
    a = np.asarray(array).astype(NP[dtype])
    return {"descriptor": {"dataType": dtype, "shape": list(a.shape)}, "constant": constant, "data": enc(a, dtype)}


CASES = {}


def case(op, name, inputs, args, expected, out_type, ulp=0, why="exact: data movement or an exact result", atol=None):
    """inputs: {name: (array, dtype, constant)}; args: the WPT argument list; expected: array."""
    graph_inputs = {n: tensor(a, t, c) for n, (a, t, c) in inputs.items()}
    exp = np.asarray(expected).astype(NP[out_type])
    CASES.setdefault(op, []).append({
        "name": f"{op} {name}",
        "operators": [op],
        "outputDataType": out_type,
        "dataTypes": sorted({t for (_, t, _) in inputs.values()}),
        "graph": {
            "inputs": graph_inputs,
            "operators": [{"name": op, "arguments": args, "outputs": "output"}],
            "expectedOutputs": {"output": {"descriptor": {"dataType": out_type, "shape": list(exp.shape)},
                                           "data": enc(exp, out_type)}},
        },
        "tolerance": {"metricType": "ATOL" if atol is not None else "ULP", "value": atol if atol is not None else ulp,
                      "source": f"hand-checked: {why}"},
        "sourceFile": "scripts/webnn_hand_cases.py",
    })


def special(dtype):
    return np.array([math.nan, math.inf, -math.inf, 0.0, -0.0, 1.5, -2.25, 65504.0], dtype=NP[dtype])


# --- isNaN, isInfinite, sign -------------------------------------------------
for dtype in ["float32", "float16"]:
    x = special(dtype).reshape(2, 4)
    case("isNaN", f"{dtype} 2D", {"a": (x, dtype, False)}, [{"a": "a"}], np.isnan(x).astype(np.uint8), "uint8")
    case("isInfinite", f"{dtype} 2D", {"a": (x, dtype, False)}, [{"a": "a"}], np.isinf(x).astype(np.uint8), "uint8")
    case("sign", f"{dtype} 2D with zeros, infinities and NaN", {"input": (x, dtype, False)}, [{"input": "input"}],
         np.sign(x), dtype)
with np.errstate(over="ignore"):
    x = np.array(3.0e38, dtype=np.float32) * np.float32(10)
case("isInfinite", "float32 0D overflowed constant", {"a": (np.array([x]).reshape(()), "float32", True)}, [{"a": "a"}],
     np.uint8(1), "uint8")
for dtype, lo, hi in [("int32", -2**31, 2**31 - 1), ("int64", -2**63, 2**63 - 1), ("uint8", 0, 255)]:
    x = np.array([lo, hi, 0, 7, lo + 1, hi - 1], dtype=NP[dtype]).reshape(3, 2)
    case("isNaN", f"{dtype} 2D", {"a": (x, dtype, False)}, [{"a": "a"}], np.zeros(x.shape, np.uint8), "uint8")
    case("isInfinite", f"{dtype} 2D", {"a": (x, dtype, False)}, [{"a": "a"}], np.zeros(x.shape, np.uint8), "uint8")
for dtype, lo, hi in [("int32", -2**31, 2**31 - 1), ("int64", -2**63, 2**63 - 1), ("int8", -128, 127)]:
    x = np.array([lo, hi, 0, -1, 1, hi - 1, lo + 1, 5], dtype=NP[dtype]).reshape(2, 2, 2)
    case("sign", f"{dtype} 3D with the extremes", {"input": (x, dtype, False)}, [{"input": "input"}], np.sign(x), dtype)
x = floats((2, 3, 4, 5), "float32")
case("sign", "float32 4D", {"input": (x, "float32", False)}, [{"input": "input"}], np.sign(x), "float32")

# --- reverse -------------------------------------------------------------------
x = floats((2, 3, 4), "float32")
case("reverse", "float32 3D default axes (all)", {"input": (x, "float32", False)}, [{"input": "input"}],
     x[::-1, ::-1, ::-1], "float32")
case("reverse", "float32 3D axes [1]", {"input": (x, "float32", False)}, [{"input": "input"}, {"options": {"axes": [1]}}],
     x[:, ::-1, :], "float32")
case("reverse", "float32 3D axes [] (a copy)", {"input": (x, "float32", False)}, [{"input": "input"}, {"options": {"axes": []}}],
     x, "float32")
x = np.array([[-2**63, 2**63 - 1, 3], [4, 5, -6]], dtype=np.int64)
case("reverse", "int64 2D axes [0]", {"input": (x, "int64", False)}, [{"input": "input"}, {"options": {"axes": [0]}}],
     x[::-1], "int64")
x = ints((7,), "uint8", 0, 255)
case("reverse", "uint8 1D", {"input": (x, "uint8", False)}, [{"input": "input"}], x[::-1], "uint8")
x = floats((2, 1, 3, 2), "float16")
case("reverse", "float16 4D axes [3, 0]", {"input": (x, "float16", True)}, [{"input": "input"}, {"options": {"axes": [3, 0]}}],
     x[::-1, :, :, ::-1], "float16")
case("reverse", "float32 0D", {"input": (np.float32(-1.5).reshape(()), "float32", False)}, [{"input": "input"}],
     np.float32(-1.5), "float32")

# --- tile --------------------------------------------------------------------------
for dtype, x, reps in [
    ("float32", floats((2, 3), "float32"), [2, 2]),
    ("int32", np.array([-2**31, 2**31 - 1, 9], np.int32), [4]),
    ("float16", floats((1, 2, 1), "float16"), [2, 1, 3]),
    ("int64", np.array(2**62 + 1, np.int64).reshape(()), []),
    ("uint8", ints((2, 1, 2, 1), "uint8", 0, 255), [1, 2, 1, 3]),
    ("float32", floats((3, 2), "float32"), [1, 1]),
]:
    case("tile", f"{dtype} {x.ndim}D repetitions {reps}", {"input": (x, dtype, False)},
         [{"input": "input"}, {"repetitions": reps}], np.tile(x, reps) if reps else x, dtype)

# --- triangular --------------------------------------------------------------------
def tri(x, upper, k):
    return np.triu(x, k) if upper else np.tril(x, k)


x = floats((3, 4), "float32")
for upper, k in [(True, 0), (True, 1), (True, -1), (False, 0), (False, -2), (False, 10), (True, -10), (True, 10),
                 (False, -3), (True, 4)]:
    opts = {}
    if not upper:
        opts["upper"] = False
    if k:
        opts["diagonal"] = k
    args = [{"input": "input"}] + ([{"options": opts}] if opts else [])
    case("triangular", f"float32 2D upper={upper} diagonal={k}", {"input": (x, "float32", False)}, args,
         tri(x, upper, k), "float32")
for dtype, x, upper, k in [
    ("float16", floats((2, 3, 3), "float16"), False, 1),
    ("float32", floats((2, 1, 4, 2), "float32"), True, 0),
    ("int32", np.array([[2**31 - 1, -2**31, 3], [4, 5, 6]], np.int32), True, 0),
    ("int64", np.array([[2**63 - 1, -2**63], [-2**63, 2**62 + 1]], np.int64), False, 0),
    ("uint8", ints((3, 3), "uint8", 0, 255), False, -1),
    ("int8", ints((2, 3, 2), "int8", -128, 127), True, 1),
]:
    opts = {"upper": upper, "diagonal": k}
    case("triangular", f"{dtype} {x.ndim}D upper={upper} diagonal={k}", {"input": (x, dtype, False)},
         [{"input": "input"}, {"options": opts}], tri(x, upper, k), dtype)
x = np.array([[math.nan, -0.0], [math.inf, -math.inf]], np.float32)
case("triangular", "float32 special values kept and dropped", {"input": (x, "float32", False)}, [{"input": "input"}],
     np.array([[math.nan, -0.0], [0.0, -math.inf]], np.float32), "float32")

# --- argMin, argMax ------------------------------------------------------------------
def arg(x, axis, is_max):
    """The first extreme along axis; the first NaN where there is one."""
    y = np.argmax(x, axis) if is_max else np.argmin(x, axis)
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        y = np.where(nan.any(axis), np.argmax(nan, axis), y)
    return y


for op, is_max in [("argMax", True), ("argMin", False)]:
    x = floats((2, 3, 4), "float32")
    case(op, "float32 3D axis 1", {"input": (x, "float32", False)}, [{"input": "input"}, {"axis": 1}], arg(x, 1, is_max), "int32")
    case(op, "float32 3D axis 2 keepDimensions int64", {"input": (x, "float32", False)},
         [{"input": "input"}, {"axis": 2}, {"options": {"keepDimensions": True, "outputDataType": "int64"}}],
         np.expand_dims(arg(x, 2, is_max), 2), "int64")
    x = np.array([[1, 3, 3, -1, 3], [2, 2, -5, -5, 0], [0, -0.0, 0, 0, 0]], np.float32)
    case(op, "float32 2D ties give the first", {"input": (x, "float32", False)}, [{"input": "input"}, {"axis": 1}],
         arg(x, 1, is_max), "int32")
    x = np.array([[1, math.nan, 3, math.nan], [math.inf, -math.inf, 2, 1]], np.float32)
    case(op, "float32 2D NaN and infinities", {"input": (x, "float32", False)}, [{"input": "input"}, {"axis": 1}],
         arg(x, 1, is_max), "int32")
    x = floats((5,), "float16")
    case(op, "float16 1D to 0D", {"input": (x, "float16", False)}, [{"input": "input"}, {"axis": 0}], arg(x, 0, is_max), "int32")
    x = np.array([[2**62, 2**62 + 1, -2**63], [2**63 - 1, 2**63 - 2, 0]], np.int64)
    case(op, "int64 2D beyond 2^53", {"input": (x, "int64", False)}, [{"input": "input"}, {"axis": 1}], arg(x, 1, is_max), "int32")
    x = np.array([[2**31 - 1, 2**31 - 2], [-2**31, -2**31 + 1], [16777217, 16777216]], np.int32)
    case(op, "int32 2D axis 0 beyond 2^24", {"input": (x, "int32", False)}, [{"input": "input"}, {"axis": 0}],
         arg(x, 0, is_max), "int32")
    for dtype, lo, hi in [("uint8", 0, 255), ("int8", -128, 127)]:
        x = ints((3, 2, 2), dtype, lo, hi)
        case(op, f"{dtype} 3D axis 0", {"input": (x, dtype, True)}, [{"input": "input"}, {"axis": 0}],
             arg(x, 0, is_max), "int32")

# --- cumulativeSum --------------------------------------------------------------------
def sum_atol(x, axis):
    """n additions in any order, each rounding by at most 2^-24 of a partial
    sum no larger than n max|x|: n^2 max|x| 2^-24 (f32)."""
    n = x.shape[axis]
    return float(n * n * np.abs(x.astype(np.float64)).max() * 2.0**-24)


def cumsum(x, axis, exclusive, reversed_):
    y = x.astype(np.float64) if x.dtype.kind == "f" else x.astype(object)
    if reversed_:
        y = np.flip(y, axis)
    c = np.cumsum(y, axis)
    if exclusive:
        c = c - y
    if reversed_:
        c = np.flip(c, axis)
    return c


x = floats((2, 5), "float32")
for exclusive in [False, True]:
    for reversed_ in [False, True]:
        opts = {}
        if exclusive:
            opts["exclusive"] = True
        if reversed_:
            opts["reversed"] = True
        args = [{"input": "input"}, {"axis": 1}] + ([{"options": opts}] if opts else [])
        case("cumulativeSum", f"float32 2D axis 1 exclusive={exclusive} reversed={reversed_}", {"input": (x, "float32", False)},
             args, cumsum(x, 1, exclusive, reversed_), "float32", atol=sum_atol(x, 1),
             why="n^2 max|x| 2^-24: n additions in f32 in any order")
x = floats((9, 2), "float32")
case("cumulativeSum", "float32 2D axis 0", {"input": (x, "float32", False)}, [{"input": "input"}, {"axis": 0}],
     cumsum(x, 0, False, False), "float32", atol=sum_atol(x, 0), why="n^2 max|x| 2^-24: n additions in f32 in any order")
x = floats((2, 2, 6), "float16", 0, 4)
case("cumulativeSum", "float16 3D axis 2 exclusive", {"input": (x, "float16", False)},
     [{"input": "input"}, {"axis": 2}, {"options": {"exclusive": True}}], cumsum(x, 2, True, False), "float16", ulp=2,
     why="sums of positives in f32 rounded once to float16, then 1 ULP")
x = floats((3, 1), "float32")
case("cumulativeSum", "float32 axis of length 1", {"input": (x, "float32", False)}, [{"input": "input"}, {"axis": 1}],
     x, "float32")
case("cumulativeSum", "float32 axis of length 1 exclusive", {"input": (x, "float32", False)},
     [{"input": "input"}, {"axis": 1}, {"options": {"exclusive": True}}], np.zeros_like(x), "float32")
for dtype, values in [
    ("int32", [2**31 - 1, 1, 16777217, -2**31, 5, -3]),
    ("int64", [2**62, 2**62, 2**62, 3, -2**63, 1]),
    ("uint32", [2**32 - 1, 2, 16777217, 0, 7, 1]),
    ("uint64", [2**64 - 1, 2, 2**53 + 1, 0, 7, 1]),
]:
    x = np.array(values, dtype=NP[dtype]).reshape(2, 3)
    wrapped = cumsum(x, 1, False, True)
    bits = np.iinfo(NP[dtype]).bits
    signed = dtype.startswith("int")
    def wrap(v):
        v = int(v) % (1 << bits)
        return v - (1 << bits) if signed and v >= 1 << (bits - 1) else v
    y = np.array([[wrap(v) for v in row] for row in wrapped], dtype=NP[dtype])
    case("cumulativeSum", f"{dtype} 2D reversed, wrapping", {"input": (x, dtype, False)},
         [{"input": "input"}, {"axis": 1}, {"options": {"reversed": True}}], y, dtype)

# --- dequantizeLinear, quantizeLinear --------------------------------------------------
def blocks(a, shape):
    """Repeats a block-wise scale or zero point up to `shape`."""
    for axis, (n, s) in enumerate(zip(shape, a.shape)):
        a = np.repeat(a, n // s, axis)
    return a


for qtype, lo, hi in [("uint8", 0, 255), ("int8", -128, 127)]:
    for name, shape, sshape in [("per tensor", (2, 4), (1, 1)), ("per axis", (3, 4), (1, 4)),
                                ("per element", (2, 3), (2, 3)), ("block-wise 2x3", (4, 6), (2, 2)),
                                ("0D", (), ())]:
        x = ints(shape, qtype, lo, hi)
        s = rng.uniform(0.01, 2.0, size=sshape).astype(np.float32)
        z = ints(sshape, qtype, lo, hi)
        y = (x.astype(np.float64) - blocks(z, shape).astype(np.float64)) * blocks(s, shape).astype(np.float64)
        case("dequantizeLinear", f"{qtype} {name}", {"input": (x, qtype, False), "scale": (s, "float32", True),
             "zeroPoint": (z, qtype, True)}, [{"input": "input"}, {"scale": "scale"}, {"zeroPoint": "zeroPoint"}],
             y, "float32", ulp=1, why="one f32 product")
        xf = rng.uniform(-300, 300, size=shape).astype(np.float32)
        # The quotient in float32 (the input's type), as the spec's division.
        q = np.clip(np.round(xf / blocks(s, shape)).astype(np.float64) + blocks(z, shape), lo, hi)
        case("quantizeLinear", f"to {qtype} {name}", {"input": (xf, "float32", False), "scale": (s, "float32", True),
             "zeroPoint": (z, qtype, True)}, [{"input": "input"}, {"scale": "scale"}, {"zeroPoint": "zeroPoint"}],
             q, qtype)
x = ints((2, 3), "uint8", 0, 255)
s = np.array([[0.5], [0.25]], np.float16)
z = np.array([[128], [3]], np.uint8)
case("dequantizeLinear", "uint8 to float16", {"input": (x, "uint8", False), "scale": (s, "float16", True),
     "zeroPoint": (z, "uint8", True)}, [{"input": "input"}, {"scale": "scale"}, {"zeroPoint": "zeroPoint"}],
     (x.astype(np.float64) - blocks(z, (2, 3))) * blocks(s, (2, 3)).astype(np.float64), "float16", ulp=1,
     why="f32 product rounded to float16")
for qtype in ["int32", "uint32"]:
    info = np.iinfo(NP[qtype])
    x = np.array([[info.max, info.min, 16777217], [5, 3, 0]], NP[qtype])
    s = np.array([[0.5, 2.0, 1.0]], np.float32)
    z = np.array([[1, 0, 16777216]], NP[qtype])
    y = (x.astype(np.float64) - blocks(z, (2, 3)).astype(np.float64)) * blocks(s, (2, 3)).astype(np.float64)
    case("dequantizeLinear", f"{qtype} beyond 2^24", {"input": (x, qtype, False), "scale": (s, "float32", True),
         "zeroPoint": (z, qtype, True)}, [{"input": "input"}, {"scale": "scale"}, {"zeroPoint": "zeroPoint"}],
         y, "float32", ulp=1, why="one product, rounded once")
    xf = np.array([[3.0e9, -5.0, 2.5], [1.0e20, -1.0e20, 16777217.0]], np.float32)
    q = np.clip(np.round(xf / blocks(s, (2, 3))).astype(np.float64) + blocks(z, (2, 3)).astype(np.float64), info.min, info.max)
    case("quantizeLinear", f"to {qtype} saturating", {"input": (xf, "float32", False), "scale": (s, "float32", True),
         "zeroPoint": (z, qtype, True)}, [{"input": "input"}, {"scale": "scale"}, {"zeroPoint": "zeroPoint"}],
         q, qtype)
# Quotients that are ties only once rounded to the input's type (the exact
# quotient is just off k + 0.5): the division is the input type's.
for dtype in ["float32", "float16"]:
    found, t = [], NP[dtype]
    step = 2.0**-23 if dtype == "float32" else 2.0**-10
    for k in range(1, 200000):
        # x = (h + 0.5) * s rounded to the type: its quotient by s is h + 0.5
        # within half an ulp, often not exactly.
        sv = t(1.0 + (k // 50 + 1) * 7 * step)
        xv = t((k % 50 + 0.5) * float(sv))
        q = xv / sv
        exact = float(xv) / float(sv)
        if float(q) % 1 == 0.5 and exact % 1 != 0.5:
            found.append((xv, sv))
        if len(found) == 4:
            break
    xf = np.array([v for v, _ in found], t).reshape(4, 1)
    s = np.array([v for _, v in found], t).reshape(4, 1)
    z = np.zeros((4, 1), np.int8)
    case("quantizeLinear", f"{dtype} quotients that round to ties", {"input": (xf, dtype, False),
         "scale": (s, dtype, True), "zeroPoint": (z, "int8", True)},
         [{"input": "input"}, {"scale": "scale"}, {"zeroPoint": "zeroPoint"}],
         np.clip(np.round(xf / s).astype(np.float64), -128, 127), "int8")
xf = np.array([[0.5, 1.5, 2.5, -0.5], [-1.5, 300.0, -300.0, math.nan]], np.float16)
s = np.array([[1.0]], np.float16)
z = np.array([[0]], np.int8)
case("quantizeLinear", "float16 to int8 ties to even, saturation, NaN", {"input": (xf, "float16", False),
     "scale": (s, "float16", True), "zeroPoint": (z, "int8", True)},
     [{"input": "input"}, {"scale": "scale"}, {"zeroPoint": "zeroPoint"}],
     np.array([[0, 2, 2, 0], [-2, 127, -128, 0]], np.int8), "int8")

# --- gatherElements, gatherND, scatterElements, scatterND ----------------------------------
def clamp_index(i, n):
    i = i + n if i < 0 else i
    return min(max(i, 0), n - 1)


def gather_elements(x, idx, axis):
    out = np.empty(idx.shape, x.dtype)
    for pos in np.ndindex(idx.shape):
        src = list(pos)
        src[axis] = clamp_index(int(idx[pos]), x.shape[axis])
        out[pos] = x[tuple(src)]
    return out


def gather_nd(x, idx):
    k = idx.shape[-1]
    lead = idx.shape[:-1]
    out = np.empty(lead + x.shape[k:], x.dtype)
    for pos in np.ndindex(lead):
        t = tuple(clamp_index(int(idx[pos + (j,)]), x.shape[j]) for j in range(k))
        out[pos] = x[t]
    return out


def scatter_elements(x, idx, upd, axis):
    out = x.copy()
    for pos in np.ndindex(idx.shape):
        dst = list(pos)
        dst[axis] = clamp_index(int(idx[pos]), x.shape[axis])
        out[tuple(dst)] = upd[pos]
    return out


def scatter_nd(x, idx, upd):
    out = x.copy()
    k = idx.shape[-1]
    for pos in np.ndindex(idx.shape[:-1]):
        t = tuple(clamp_index(int(idx[pos + (j,)]), x.shape[j]) for j in range(k))
        out[t] = upd[pos]
    return out


x = floats((3, 3), "float32")
for itype in ["int32", "uint32", "int64"]:
    idx = np.array([[1, 0, 2], [0, 2, 1]], NP[itype])
    case("gatherElements", f"float32 2D axis 0 {itype} indices", {"input": (x, "float32", False), "indices": (idx, itype, True)},
         [{"input": "input"}, {"indices": "indices"}], gather_elements(x, idx, 0), "float32")
idx = np.array([[-1, 0], [2, -3], [5, -9]], np.int32)
case("gatherElements", "float32 2D axis 1 negative and out-of-range indices", {"input": (x, "float32", False),
     "indices": (idx, "int32", False)}, [{"input": "input"}, {"indices": "indices"}, {"options": {"axis": 1}}],
     gather_elements(x, idx, 1), "float32")
x = np.array([[math.nan, -0.0, math.inf], [1.0, -math.inf, 2.0]], np.float32)
idx = np.array([[0, 1, 2, 0], [2, 1, 0, 1]], np.int64)
case("gatherElements", "float32 special values", {"input": (x, "float32", False), "indices": (idx, "int64", False)},
     [{"input": "input"}, {"indices": "indices"}, {"options": {"axis": 1}}], gather_elements(x, idx, 1), "float32")
for dtype, x in [("float16", floats((2, 3, 2), "float16")), ("int8", ints((2, 3, 2), "int8", -128, 127)),
                 ("int64", np.array([2**63 - 1, -2**63, 2**53 + 1, 5, 6, 7, 8, 9, 10, 11, 12, 13], np.int64).reshape(2, 3, 2)),
                 ("uint32", np.array(list(range(2**32 - 12, 2**32)), np.uint32).reshape(2, 3, 2))]:
    idx = ints((2, 4, 2), "int32", -3, 2)
    case("gatherElements", f"{dtype} 3D axis 1", {"input": (x, dtype, False), "indices": (idx, "int32", True)},
         [{"input": "input"}, {"indices": "indices"}, {"options": {"axis": 1}}], gather_elements(x, idx, 1), dtype)
x = floats((5,), "float32")
idx = np.array([4, 0, -1, 2, 2, 1], np.int32)
case("gatherElements", "float32 1D", {"input": (x, "float32", False), "indices": (idx, "int32", False)},
     [{"input": "input"}, {"indices": "indices"}], gather_elements(x, idx, 0), "float32")

for name, x, idx, dtype in [
    ("float32 2D tuples of 2", floats((2, 2), "float32"), np.array([[0, 0], [1, 1]], np.int32), "float32"),
    ("float32 2D tuples of 1 (rows)", floats((2, 2), "float32"), np.array([[1], [0]], np.int64), "float32"),
    ("float32 3D indices [2, 1, 2]", floats((2, 2, 3), "float32"), np.array([[[0, 1]], [[1, 0]]], np.int32), "float32"),
    ("float32 3D negative and out-of-range", floats((3, 2, 2), "float32"), np.array([[-1, 0, 1], [7, -5, 9], [2, 1, -2]], np.int32), "float32"),
    ("float16 2D uint32 indices", floats((3, 4), "float16"), np.array([[2], [0], [1], [2]], np.uint32), "float16"),
    ("uint8 3D", ints((2, 3, 2), "uint8", 0, 255), np.array([[1, 2], [0, 0]], np.int32), "uint8"),
    ("int32 2D beyond 2^24", np.array([[2**31 - 1, -2**31], [16777217, -16777217]], np.int32), np.array([[1, 0], [0, 1], [1, 1]], np.int32), "int32"),
    ("int64 1D", np.array([2**63 - 1, -2**63, 3], np.int64), np.array([[2], [0], [1], [0]], np.int64), "int64"),
]:
    case("gatherND", name, {"input": (x, dtype, False), "indices": (idx, str(idx.dtype), True)},
         [{"input": "input"}, {"indices": "indices"}], gather_nd(x, idx), dtype)

x = np.zeros((3, 3), np.float32)
idx = np.array([[1, 0, 2], [0, 2, 1]], np.int32)
upd = np.array([[1.0, 1.1, 1.2], [2.0, 2.1, 2.2]], np.float32)
case("scatterElements", "float32 2D axis 0", {"input": (x, "float32", False), "indices": (idx, "int32", True),
     "updates": (upd, "float32", False)}, [{"input": "input"}, {"indices": "indices"}, {"updates": "updates"}],
     scatter_elements(x, idx, upd, 0), "float32")
x = floats((3, 5), "float32")
idx = np.array([[1, 3, 3], [-1, 0, 9], [4, 4, 4]], np.int64)
upd = np.array([[1, 2, 3], [4, -0.0, math.nan], [7, 8, math.inf]], np.float32)
case("scatterElements", "float32 2D axis 1 duplicates, negative and out-of-range indices", {"input": (x, "float32", False),
     "indices": (idx, "int64", False), "updates": (upd, "float32", False)},
     [{"input": "input"}, {"indices": "indices"}, {"updates": "updates"}, {"options": {"axis": 1}}],
     scatter_elements(x, idx, upd, 1), "float32")
for dtype, x, upd in [
    ("float16", floats((2, 4, 2), "float16"), floats((2, 2, 2), "float16")),
    ("int8", ints((2, 4, 2), "int8", -128, 127), ints((2, 2, 2), "int8", -128, 127)),
    ("int32", np.full((2, 4, 2), 2**31 - 1, np.int32), np.arange(16777216, 16777224, dtype=np.int32).reshape(2, 2, 2)),
    ("uint64", np.full((2, 4, 2), 2**64 - 1, np.uint64), np.arange(2**53, 2**53 + 8, dtype=np.uint64).reshape(2, 2, 2)),
]:
    idx = np.array([[[3, 0], [1, 0]], [[2, 2], [-4, 3]]], np.int32)
    case("scatterElements", f"{dtype} 3D axis 1", {"input": (x, dtype, False), "indices": (idx, "int32", True),
         "updates": (upd, dtype, False)}, [{"input": "input"}, {"indices": "indices"}, {"updates": "updates"},
         {"options": {"axis": 1}}], scatter_elements(x, idx, upd, 1), dtype)

for name, x, idx, upd, dtype in [
    ("float32 1D", floats((8,), "float32"), np.array([[4], [3], [1], [7]], np.int32), floats((4,), "float32"), "float32"),
    ("float32 3D slices", floats((4, 4, 4), "float32"), np.array([[0], [2]], np.int64), floats((2, 4, 4), "float32"), "float32"),
    ("float32 2D elements with duplicates", floats((2, 2), "float32"), np.array([[0, 1], [1, 0], [0, 1]], np.int32),
     np.array([5.0, 6.0, 7.0], np.float32), "float32"),
    ("float32 3D negative and out-of-range", floats((3, 2, 2), "float32"), np.array([[[-1, 0]], [[5, -7]]], np.int32),
     floats((2, 1, 2), "float32"), "float32"),
    ("float16 2D rows", floats((3, 4), "float16"), np.array([[2], [0]], np.uint32), floats((2, 4), "float16"), "float16"),
    ("int64 2D", np.array([[2**63 - 1, 1], [2, -2**63]], np.int64), np.array([[1, 1]], np.int32),
     np.array([2**53 + 1], np.int64), "int64"),
    ("uint8 2D", ints((3, 2), "uint8", 0, 255), np.array([[2], [2]], np.int32), ints((2, 2), "uint8", 0, 255), "uint8"),
]:
    case("scatterND", name, {"input": (x, dtype, False), "indices": (idx, str(idx.dtype), True),
         "updates": (upd, dtype, False)}, [{"input": "input"}, {"indices": "indices"}, {"updates": "updates"}],
         scatter_nd(x, idx, upd), dtype)

# --- attention (kiln) -----------------------------------------------------------------
def attention(q, k, v, mask, scale):
    """softmax(q k^T scale + mask, last axis) v in float64, batch axes broadcast."""
    s = np.matmul(q.astype(np.float64), np.swapaxes(k.astype(np.float64), -1, -2)) * scale
    if mask is not None:
        s = s + mask.astype(np.float64)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.matmul(e / e.sum(axis=-1, keepdims=True), v.astype(np.float64))


for dtype, qs, ks, vs, ms, scale, atol, why in [
    ("float32", (2, 3, 4), (2, 5, 4), (2, 5, 6), None, 1.0, 1e-5,
     "f32 products of 4 and 5 terms and an f32 softmax of scores within ±2: well within 1e-5 of values within ±1"),
    ("float32", (1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 3), (1, 1, 4, 6), 8 ** -0.5, 1e-5,
     "f32 products of 8 and 6 terms and an f32 softmax: well within 1e-5 of values within ±1"),
    ("float32", (2, 1, 3, 4), (1, 2, 5, 4), (5, 2), (5,), 0.5, 1e-5,
     "broadcast batches; f32 products and softmax: well within 1e-5 of values within ±1"),
    ("float16", (2, 3, 8), (2, 4, 8), (2, 4, 4), (3, 4), 8 ** -0.5, 1e-3,
     "float16 operands widened, f32 arithmetic, one rounding to float16 (2^-11 of values within ±1)"),
]:
    q, k, v = floats(qs, dtype, -1, 1), floats(ks, dtype, -1, 1), floats(vs, dtype, -1, 1)
    inputs = {"query": (q, dtype, False), "key": (k, dtype, False), "value": (v, dtype, False)}
    options = {"scale": scale} if scale != 1.0 else {}
    mask = None
    if ms is not None:
        mask = floats(ms, dtype, -2, 0)
        if len(ms) > 1:
            mask.reshape(-1)[-1] = -np.inf  # a masked-out position
        inputs["mask"] = (mask, dtype, True)
        options["mask"] = "mask"
    args = [{"query": "query"}, {"key": "key"}, {"value": "value"}] + ([{"options": options}] if options else [])
    name = f"{dtype} query {list(qs)} key {list(ks)} value {list(vs)} mask {list(ms) if ms is not None else None}"
    case("attention", name, inputs, args, attention(q, k, v, mask, scale), dtype, atol=atol, why=why)

os.makedirs(OUT, exist_ok=True)
for op, cases in sorted(CASES.items()):
    doc = {"op": op, "source": "hand-checked (scripts/webnn_hand_cases.py, numpy)", "count": len(cases), "cases": cases}
    with open(os.path.join(OUT, f"{op}.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
print(sum(len(c) for c in CASES.values()), "cases for", len(CASES), "operators")
