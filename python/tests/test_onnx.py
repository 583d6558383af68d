"""An ONNX model with symbolic dimensions (the PP-OCR direction classifier,
input x: [?, 3, ?, ?]) against ONNX Runtime run in this process, on the input
of its test data set (scripts/fetch_onnx_data.sh)."""

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime
import pytest

import kiln
from conftest import MODELS, assert_close

CASE = MODELS / "ppocr_cls"


def test_ppocr_cls_matches_onnxruntime():
    x = onnx.numpy_helper.to_array(onnx.load_tensor(str(CASE / "test_data_set_0" / "input_0.pb")))
    assert x.shape == (1, 3, 48, 192)
    session = onnxruntime.InferenceSession(str(CASE / "model.onnx"), providers=["CPUExecutionProvider"])
    (ort_name,) = [o.name for o in session.get_outputs()]
    (expected,) = session.run(None, {"x": x})

    model = kiln.load(CASE / "model.onnx", shapes={"x": list(x.shape)}, threads=2)
    assert [(i.name, i.shape) for i in model.inputs] == [("x", (1, 3, 48, 192))]
    outputs = model.run({"x": x})
    # The output's ONNX name is not a file name; a dict key needs none.
    assert list(outputs) == [ort_name] == ["save_infer_model/scale_0.tmp_1"]
    # The tolerance of tests/onnx_models.rs.
    assert_close(outputs[ort_name], expected, atol=1e-5, rtol=1e-3, what=ort_name)


def test_unbound_or_wrong_shapes_are_reported():
    with pytest.raises(kiln.KilnError, match=r"^input `x`: dimension 0 is symbolic and not bound"):
        kiln.load(CASE / "model.onnx")
    with pytest.raises(kiln.KilnError, match=r"^input `x`: the model gives rank 4, --shape gives rank 3$"):
        kiln.load(CASE / "model.onnx", shapes={"x": [1, 3, 48]})
    # A static model takes its own shape, and refuses another.
    static = MODELS / "mobilenetv2" / "model.onnx"
    assert kiln.load(static, shapes={"input": [1, 3, 224, 224]}).inputs[0].shape == (1, 3, 224, 224)
    with pytest.raises(kiln.KilnError, match=r"^input `input`: dimension 2 is 224 in the model, --shape gives 200$"):
        kiln.load(static, shapes={"input": [1, 3, 200, 224]})
