"""Bad input raises a Python exception with kiln's message, never a panic:
ValueError for what the caller passes, kiln.KilnError for models kiln cannot
read. The feed messages are the Rust API's, and so the CLI's (`kiln run`),
word for word."""

import asyncio
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import kiln
from conftest import EXAMPLES, ROOT

MODEL = EXAMPLES / "small_cnn.webnn"
# The command line `cargo test` builds (scripts/test runs these tests after it).
CLI = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "kiln"


@pytest.fixture(scope="module")
def model():
    return kiln.load(MODEL)


def good():
    return np.zeros((1, 3, 32, 32), np.float32)


@pytest.mark.parametrize(
    "feeds, message",
    [
        ({"x": np.zeros((1, 3, 32, 31), np.float32)}, "input `x`: expected f32[1, 3, 32, 32], got f32[1, 3, 32, 31]"),
        ({"x": np.zeros((1, 3, 32, 32), np.int32)}, "input `x`: expected f32[1, 3, 32, 32], got i32[1, 3, 32, 32]"),
        ({"y": good()}, "input `y`: is not an input of this graph (inputs: x)"),
        ({}, "input `x`: is missing; expected f32[1, 3, 32, 32]"),
        ({"x": good(), "z": good()}, "input `z`: is not an input of this graph (inputs: x)"),
        (
            {"x": np.zeros((1, 3, 32, 32), np.float64)},
            "input `x`: numpy dtype float64 is not a kiln data type (float32, float16, int8, uint8, int32, uint32, int64, uint64)",
        ),
        ({"x": [[1.0]]}, "input `x`: expected a numpy.ndarray, got list"),
        ({"x": np.zeros((1, 0, 32, 32), np.float32)}, "input `x`: shape [1, 0, 32, 32]: every dimension must be between 1 and 2^32 - 1"),
    ],
)
def test_bad_feeds_raise_value_error(model, feeds, message):
    with pytest.raises(ValueError) as e:
        model.run(feeds)
    assert str(e.value) == message


@pytest.mark.parametrize(
    "name, array",
    [("x", np.zeros((1, 3, 32, 31), np.float32)), ("x", np.zeros((1, 3, 32, 32), np.int32))],
)
def test_feed_errors_are_the_command_lines(model, tmp_path, name, array):
    np.save(tmp_path / "in.npy", array)
    cli = subprocess.run(
        [CLI, "run", MODEL, "--input", f"{name}={tmp_path / 'in.npy'}", "--output-dir", tmp_path],
        capture_output=True,
        text=True,
    )
    assert cli.returncode != 0
    with pytest.raises(ValueError) as e:
        model.run({name: array})
    assert cli.stderr.strip() == f"error: {e.value}"


def test_bad_feeds_raise_in_run_async_too(model):
    with pytest.raises(ValueError, match=r"input `x`: expected f32\[1, 3, 32, 32\], got f32\[2, 3, 32, 32\]"):
        asyncio.run(model.run_async({"x": np.zeros((2, 3, 32, 32), np.float32)}))


def test_malformed_and_missing_files_raise_kiln_error(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07\x12\xff\xff\xff not a protobuf")
    with pytest.raises(kiln.KilnError):
        kiln.load(broken)
    with pytest.raises(kiln.KilnError, match="missing.onnx"):
        kiln.load(tmp_path / "missing.onnx")
    text = tmp_path / "bad.webnn"
    text.write_text("webnn_graph \"g\" v1 { inputs { x: f32[2]; } nodes { y = frobnicate(x); } outputs { y; } }")
    with pytest.raises(kiln.KilnError, match="frobnicate"):
        kiln.load(text)
    with pytest.raises(kiln.KilnError, match="unsupported model format"):
        kiln.load(tmp_path / "model.txt")


def test_bad_load_options_raise_value_error():
    with pytest.raises(ValueError, match="unknown backend `tpu`"):
        kiln.load(MODEL, backend="tpu")
    with pytest.raises(kiln.KilnError, match="--shape applies to models with symbolic dimensions"):
        kiln.load(MODEL, shapes={"x": [1, 3, 32, 32]})


def test_builder_rule_violations_raise_value_error():
    b = kiln.GraphBuilder()
    x = b.input("x", np.float32, [1, 3, 8, 8])
    w = b.constant(np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"^conv2d: operand `filter`: input channels per group \(3 / groups 1\) must equal the filter's 2"):
        b.conv2d(x, w)
    with pytest.raises(ValueError, match="softmax: argument `axis`: missing positional argument 2"):
        b.softmax(x)
    with pytest.raises(ValueError, match="relu: argument `alpha`: unknown option"):
        b.relu(x, alpha=1.0)
    with pytest.raises(ValueError, match="maxPool2d: argument `layout`: unknown value \"nhcw\""):
        b.max_pool2d(x, layout="nhcw")
    with pytest.raises(ValueError, match="numpy dtype float64 is not a kiln data type"):
        b.input("y", np.float64, [2])
    with pytest.raises(ValueError, match="cannot pass a dict to a builder call"):
        b.reshape(x, {"a": 1})
    other = kiln.GraphBuilder().input("x", np.float32, [2])
    with pytest.raises(ValueError, match="the operand belongs to another GraphBuilder"):
        b.relu(other)
    model = b.build({"y": b.relu(x)})
    assert model.outputs[0].shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="this builder has already built its graph"):
        b.relu(x)
    with pytest.raises(ValueError, match="at least one output is required"):
        kiln.GraphBuilder().build({})
