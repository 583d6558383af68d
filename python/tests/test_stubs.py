"""The type stubs (kiln/__init__.pyi) describe the package as built: one
GraphBuilder method per operator of kiln.ops(), and every public name."""

import ast
from pathlib import Path

import kiln

STUB = Path(kiln.__file__).with_name("__init__.pyi")


def stub_classes():
    tree = ast.parse(STUB.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}, tree


def test_the_stubs_and_py_typed_are_installed():
    assert STUB.is_file()
    assert STUB.with_name("py.typed").is_file()


def test_graph_builder_stubs_list_every_operator():
    classes, _ = stub_classes()
    methods = {f.name for f in classes["GraphBuilder"].body if isinstance(f, ast.FunctionDef)}
    operators = {kiln._snake(name) for name in kiln.ops()}
    missing, extra = operators - methods, methods - operators - {"__init__", "input", "constant", "build"}
    assert not missing, f"add these operators to python/kiln/__init__.pyi: {sorted(missing)}"
    assert not extra, f"python/kiln/__init__.pyi has methods no operator has: {sorted(extra)}"


def test_stubs_name_every_public_name():
    classes, tree = stub_classes()
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    variables = {t.target.id for t in tree.body if isinstance(t, ast.AnnAssign)}
    assert set(kiln.__all__) <= set(classes) | functions | variables
    for name in kiln.__all__:
        assert hasattr(kiln, name)
