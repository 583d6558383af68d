"""Paths shared by the tests. The test data comes from scripts/fetch_onnx_data.sh
(scripts/test runs it first); a missing file fails its test, it is never skipped."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MODELS = ROOT / "target" / "onnx-data" / "models"


def assert_close(actual, expected, atol, rtol, what=""):
    """Every element within atol + rtol * |expected| (NumPy's isclose rule),
    naming the worst element when not."""
    import numpy as np

    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = atol + rtol * np.abs(expected.astype(np.float64))
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert np.all(error <= bound), (
        f"{what}: |{actual[worst]} - {expected[worst]}| = {error[worst]} > {bound[worst]} at {worst}"
    )
