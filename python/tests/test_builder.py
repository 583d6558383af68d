"""kiln.GraphBuilder graphs against references computed with NumPy (and one
against the reference interpreter)."""

import numpy as np
import pytest

import kiln
from conftest import assert_close

rng = np.random.default_rng(7)


def random(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def conv2d_nchw(x, w, padding, stride):
    """Direct convolution, NCHW input, OIHW filter."""
    top, bottom, left, right = padding
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            window = x[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", window, w)
    return out


def test_conv_relu_pool_softmax():
    x, w, bias = random(1, 3, 9, 9), random(4, 3, 3, 3), random(4)
    b = kiln.GraphBuilder()
    xi = b.input("x", np.float32, [1, 3, 9, 9])
    y = b.conv2d(xi, b.constant(w), padding=[1, 1, 1, 1], strides=[2, 2], bias=b.constant(bias))
    assert y.shape == (1, 4, 5, 5) and y.dtype == np.float32
    y = b.relu(y)
    pooled = b.reduce_mean(y, axes=[2, 3], keep_dimensions=False)
    probs = b.softmax(pooled, 1)
    model = b.build({"probs": probs, "features": y}, threads=2)
    out = model.run({"x": x})
    assert list(out) == ["probs", "features"]
    features = np.maximum(conv2d_nchw(x, w, (1, 1, 1, 1), 2) + bias[None, :, None, None], 0)
    assert_close(out["features"], features, atol=1e-5, rtol=1e-5, what="features")
    logits = features.mean(axis=(2, 3))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert_close(out["probs"], e / e.sum(axis=1, keepdims=True), atol=1e-6, rtol=1e-5, what="probs")


def test_gemm_matmul_and_broadcasting():
    a, bm, c = random(3, 5), random(4, 5), random(1, 4)
    b = kiln.GraphBuilder()
    ai = b.input("a", "float32", [3, 5])
    g = b.gemm(ai, b.constant(bm), c=b.constant(c), alpha=0.5, b_transpose=True)
    m = b.matmul(b.reshape(ai, [1, 3, 5]), b.constant(random(2, 5, 2)))
    s = b.add(b.mul(ai, ai), b.constant(np.float32(1.5)))
    out = b.build({"g": g, "m": m, "s": s}).run({"a": a})
    assert_close(out["g"], 0.5 * a @ bm.T + c, atol=1e-5, rtol=1e-5, what="gemm")
    assert out["m"].shape == (2, 3, 2)
    assert_close(out["s"], a * a + 1.5, atol=0, rtol=1e-6, what="add/mul")


def test_split_concat_transpose_and_slice():
    x = random(2, 6, 3)
    b = kiln.GraphBuilder()
    xi = b.input("x", np.float32, list(x.shape))
    parts = b.split(xi, [1, 2, 3], axis=1)
    assert isinstance(parts, list) and [p.shape for p in parts] == [(2, 1, 3), (2, 2, 3), (2, 3, 3)]
    joined = b.concat([parts[2], parts[0]], 1)
    t = b.transpose(xi, permutation=[2, 0, 1])
    s = b.slice(xi, [0, 1, 0], [2, 4, 2], strides=[1, 2, 1])
    out = b.build({"joined": joined, "t": t, "s": s}).run({"x": x})
    np.testing.assert_array_equal(out["joined"], np.concatenate([x[:, 3:], x[:, :1]], axis=1))
    np.testing.assert_array_equal(out["t"], x.transpose(2, 0, 1))
    # WebNN: `sizes` is the extent taken from the input; strides pick within it.
    np.testing.assert_array_equal(out["s"], x[:, 1:5:2, 0:2])


def test_integer_and_comparison_operators():
    i = rng.integers(-50, 50, size=(4, 5)).astype(np.int32)
    f = random(4, 5)
    b = kiln.GraphBuilder()
    ii = b.input("i", np.int32, [4, 5])
    fi = b.input("f", np.float32, [4, 5])
    greater = b.greater(fi, b.constant(0.0, np.float32))
    picked = b.where(greater, fi, b.neg(fi))
    as_float = b.cast(ii, "float32")
    as_int = b.cast(fi, np.int32)
    summed = b.reduce_sum(ii, axes=[1])
    model = b.build({"greater": greater, "picked": picked, "as_float": as_float, "as_int": as_int, "summed": summed})
    out = model.run({"i": i, "f": f})
    np.testing.assert_array_equal(out["greater"], (f > 0).astype(np.uint8))
    np.testing.assert_array_equal(out["picked"], np.abs(f))
    np.testing.assert_array_equal(out["as_float"], i.astype(np.float32))
    np.testing.assert_array_equal(out["as_int"], np.trunc(f).astype(np.int32))
    assert out["summed"].dtype == np.int32
    np.testing.assert_array_equal(out["summed"], i.sum(axis=1))


def test_index_scan_and_predicate_operators():
    y = random(3, 4)
    z = random(3, 4)
    z[0, 1], z[2, 3] = np.nan, np.inf
    b = kiln.GraphBuilder()
    yi, zi = b.input("y", np.float32, [3, 4]), b.input("z", np.float32, [3, 4])
    model = b.build(
        {
            "arg_max": b.arg_max(yi, 1),
            "cumsum": b.cumulative_sum(yi, 1),
            "tile": b.tile(yi, [2, 1]),
            "sign": b.sign(yi),
            "is_nan": b.is_nan(zi),
            "gather_nd": b.gather_nd(yi, b.constant(np.array([[2, 1], [0, 3]], np.int32))),
        }
    )
    out = model.run({"y": y, "z": z})
    assert out["arg_max"].dtype == np.int32
    np.testing.assert_array_equal(out["arg_max"], np.argmax(y, axis=1))
    assert_close(out["cumsum"], np.cumsum(y, axis=1), atol=1e-6, rtol=1e-6, what="cumulativeSum")
    np.testing.assert_array_equal(out["tile"], np.tile(y, (2, 1)))
    np.testing.assert_array_equal(out["sign"], np.sign(y))
    np.testing.assert_array_equal(out["is_nan"], np.isnan(z).astype(np.uint8))
    np.testing.assert_array_equal(out["gather_nd"], np.array([y[2, 1], y[0, 3]]))


@pytest.mark.parametrize("backend", ["cpu", "kernels"])
def test_a_builder_graph_matches_the_interpreter(backend):
    """Normalizations, pooling, resampling and activations, on `backend`
    against the interp backend."""

    def graph(backend):
        b = kiln.GraphBuilder()
        x = b.input("x", np.float32, [1, 4, 6, 6])
        y = b.instance_normalization(x, epsilon=1e-3)
        y = b.max_pool2d(y, window_dimensions=[2, 2], strides=[2, 2])
        y = b.resample2d(y, mode="linear", scales=[2.0, 2.0])
        y = b.layer_normalization(b.hard_swish(y), axes=[1, 2, 3])
        y = b.gelu(b.leaky_relu(y, alpha=0.2))
        return b.build({"y": y}, backend=backend)

    x = random(1, 4, 6, 6)
    out = graph(backend).run({"x": x})["y"]
    ref = graph("interp").run({"x": x})["y"]
    assert_close(out, ref, atol=1e-5, rtol=1e-4, what=backend)


def test_every_operator_has_a_method():
    names = kiln.ops()
    assert "conv2d" in names and "reduceLogSumExp" in names
    for name in names:
        method = getattr(kiln.GraphBuilder, kiln._snake(name))
        assert method.__name__ == kiln._snake(name)
    assert kiln._snake("convTranspose2d") == "conv_transpose2d"
    assert kiln._camel("keep_dimensions") == "keepDimensions"
    assert names["conv2d"] == "yes"
    assert names["add"].startswith("host: ")
