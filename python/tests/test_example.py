"""The bundled example (examples/small_cnn.webnn on examples/small_cnn_input.npy)
on the cpu backend, against the reference interpreter."""

import numpy as np

import kiln
from conftest import EXAMPLES, assert_close

MODEL = EXAMPLES / "small_cnn.webnn"


def test_small_cnn_matches_the_interpreter():
    x = np.load(EXAMPLES / "small_cnn_input.npy")
    model = kiln.load(MODEL, threads=2)
    reference = kiln.load(str(MODEL), backend="interp")
    out = model.run({"x": x})
    ref = reference.run({"x": x})
    assert list(out) == ["probs"] and list(ref) == ["probs"]
    assert out["probs"].dtype == np.float32 and out["probs"].shape == (1, 10)
    # Softmax probabilities: they sum to one and differ from the reference by
    # float32 rounding only.
    assert abs(float(out["probs"].sum()) - 1.0) < 1e-5
    assert_close(out["probs"], ref["probs"], atol=1e-6, rtol=1e-5, what="probs")


def test_inputs_and_outputs_describe_the_graph():
    model = kiln.load(MODEL)
    (x,) = model.inputs
    (probs,) = model.outputs
    assert (x.name, x.dtype, x.shape) == ("x", np.dtype(np.float32), (1, 3, 32, 32))
    assert (probs.name, probs.dtype, probs.shape) == ("probs", np.dtype(np.float32), (1, 10))
    assert repr(x) == "TensorInfo(name=\"x\", dtype=float32, shape=(1, 3, 32, 32))"
    assert model.backend == "cpu"


def test_threads_option_sizes_the_pool():
    assert kiln.load(MODEL, threads=2).threads == 2
    assert kiln.load(MODEL, threads=1).threads == 1


def test_explain_reports_the_passes_and_kernels():
    model = kiln.load(MODEL)
    text = model.explain()
    assert text.startswith("operators: ")
    assert "passes:" in text and "kernels (operators each computes):" in text
    assert "conv2d" in text
    import json

    report = json.loads(model.explain(json=True))
    assert report["operators_before"] == 10
    assert len(report["kernels"]) >= 1


def test_outputs_are_read_only_views():
    model = kiln.load(MODEL)
    out = model.run({"x": np.load(EXAMPLES / "small_cnn_input.npy")})["probs"]
    assert not out.flags.writeable
    assert out.flags.c_contiguous
    assert type(out.base).__name__ == "TensorBuffer"
    copy = out.copy()
    copy[0, 0] = 5.0  # a copy is the caller's own
    assert out[0, 0] != 5.0


def test_inputs_of_any_layout_give_the_same_result():
    model = kiln.load(MODEL)
    x = np.load(EXAMPLES / "small_cnn_input.npy")
    expected = model.run({"x": x})["probs"]
    # Not C-contiguous (a transposed copy transposed back), big-endian, and
    # a slice with strides: each is copied into a contiguous native array.
    fortran = np.asfortranarray(x)
    assert not fortran.flags.c_contiguous
    big_endian = x.astype(">f4")
    strided = np.repeat(x, 2, axis=3)[:, :, :, ::2]
    assert not strided.flags.c_contiguous
    for variant in (fortran, big_endian, strided):
        np.testing.assert_array_equal(model.run({"x": variant})["probs"], expected)
