"""One model run from four Python threads at once (the GIL released while
kernels run; each run has its own scratch memory) and from asyncio tasks
gives exactly the results of runs one after another."""

import asyncio
import threading

import numpy as np

import kiln
from conftest import MODELS

MODEL = MODELS / "mobilenetv2" / "model.onnx"


def inputs(count):
    rng = np.random.default_rng(11)
    return [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(count)]


def test_four_threads_match_serial_runs():
    model = kiln.load(MODEL, threads=2)
    xs = inputs(8)
    serial = [model.run({"input": x})["probs"] for x in xs]
    # Different inputs per run give different outputs, so a mixed-up scratch
    # buffer would show.
    assert not np.array_equal(serial[0], serial[1])
    results = [[None] * len(xs) for _ in range(4)]
    errors = []
    start = threading.Barrier(4)

    def worker(t):
        try:
            start.wait()
            for round in range(2):
                for i in range(len(xs)):
                    j = (i + 3 * t + round) % len(xs)  # threads run different inputs at once
                    results[t][j] = model.run({"input": xs[j]})["probs"]
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for t in range(4):
        for i in range(len(xs)):
            np.testing.assert_array_equal(results[t][i], serial[i], err_msg=f"thread {t}, input {i}")


def test_run_async_matches_run():
    model = kiln.load(MODEL, threads=1)
    xs = inputs(4)
    serial = [model.run({"input": x})["probs"] for x in xs]

    async def main():
        return await asyncio.gather(*(model.run_async({"input": x}) for x in xs))

    for out, expected in zip(asyncio.run(main()), serial):
        assert list(out) == ["probs"]
        np.testing.assert_array_equal(out["probs"], expected)
