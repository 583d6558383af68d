"""kiln: a graph compiler for neural networks in the W3C WebNN model.

Load a model file (``.onnx``, ``.tflite`` or ``.webnn``), or build a graph
from WebNN operators, compile it to native code, and run it on NumPy arrays::

    import kiln, numpy as np
    model = kiln.load("model.onnx", shapes={"x": [1, 3, 224, 224]}, threads=2)
    outputs = model.run({"x": np.zeros((1, 3, 224, 224), np.float32)})

The compiled module is ``kiln._kiln`` (Rust, pyo3); this file adds one
``GraphBuilder`` method per WebNN operator, in Python's spelling
(``reduceMean`` -> ``reduce_mean``, option ``keepDimensions`` ->
``keep_dimensions``), all reaching kiln's operator table through
``GraphBuilder._call``.
"""

import asyncio
import re

from ._kiln import KilnError, Model, Operand, TensorInfo, __version__, load, ops
from ._kiln import GraphBuilder as _GraphBuilder

__all__ = ["GraphBuilder", "KilnError", "Model", "Operand", "TensorInfo", "__version__", "load", "ops"]

# Operators whose number of outputs depends on their arguments: their
# methods return a list of operands, every other method one operand.
_LIST_RESULT = frozenset({"split", "gru", "lstm", "lstmCell"})


def _snake(name: str) -> str:
    """A WebNN name in Python's spelling: ``convTranspose2d`` -> ``conv_transpose2d``,
    ``isNaN`` -> ``is_nan``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.replace("NaN", "Nan")).lower()


def _camel(name: str) -> str:
    """An option name in WebNN's spelling: ``keep_dimensions`` -> ``keepDimensions``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


async def _run_async(model, inputs):
    """The coroutine of ``Model.run_async``: ``model.run`` (which releases the
    GIL) on the running loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, model.run, inputs)


class GraphBuilder(_GraphBuilder):
    """Builds a graph one WebNN operator at a time (``MLGraphBuilder``).

    ``input`` and ``constant`` make leaves; one method per operator (see
    ``kiln.ops()``) takes the operator's arguments in the WebNN spec's order
    and its options as keyword arguments; ``build`` compiles the graph into a
    ``Model``. Every call checks the operator's rules: a broken rule raises
    ``ValueError`` naming the operator, the operand and the rule.
    """


def _operator_method(op: str):
    def method(self, *args, **options):
        outputs = self._call(op, args, {_camel(k): v for k, v in options.items()})
        return outputs if op in _LIST_RESULT else outputs[0]

    method.__name__ = _snake(op)
    method.__qualname__ = f"GraphBuilder.{method.__name__}"
    method.__doc__ = f"WebNN ``{op}``: arguments in the spec's order, options as keywords."
    return method


for _op in ops():
    setattr(GraphBuilder, _snake(_op), _operator_method(_op))
del _op
