"""The private Keras API the compressor relies on: present on this Keras, and used nowhere else.

If a Keras upgrade moves one of these names, the tests here fail first, naming it.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import keras
import pytest

from lowrank_edge.compress import keras_internals
from lowrank_edge.compress.keras_internals import (
    PRIVATE_API,
    check_private_api,
    node_call,
    nodes_by_depth,
    sequential_graph,
)
from lowrank_edge.errors import CompressionError

PACKAGE = Path(__file__).resolve().parents[1] / "lowrank_edge"
INTERNALS = PACKAGE / "compress" / "keras_internals.py"
# the one other module allowed private access: the multi-worker fit's Keras/TF workarounds
MULTI_WORKER_INTERNALS = PACKAGE / "model" / "multi_worker_internals.py"


def _models():
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    return functional, sequential


def _functional_class():
    return importlib.import_module("keras.src.models.functional").Functional


def _first_call_node():
    functional, _ = _models()
    by_depth = functional._nodes_by_depth
    return next(n for nodes in by_depth.values() for n in nodes if not n.is_input)


def _replayed_arguments(node):
    return node.arguments.fill_in({id(node.input_tensors[0]): 7})


# Each private name the package uses, checked directly on the installed Keras.
CHECKS = {
    "keras.src.models.functional.Functional": lambda: isinstance(_models()[0], _functional_class()),
    "Sequential._functional": lambda: isinstance(_models()[1]._functional, _functional_class()),
    "Functional._nodes_by_depth": lambda: isinstance(_models()[0]._nodes_by_depth, dict),
    "Node.operation": lambda: isinstance(_first_call_node().operation, keras.layers.Dense),
    "Node.is_input": lambda: _first_call_node().is_input is False,
    "Node.input_tensors": lambda: len(_first_call_node().input_tensors) == 1,
    "Node.outputs": lambda: tuple(_first_call_node().outputs[0].shape) == (None, 2),
    "Node.arguments": lambda: _replayed_arguments(_first_call_node()) == ((7,), {}),
}


def test_every_private_name_in_use_is_checked_here():
    assert set(CHECKS) == set(PRIVATE_API)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_private_keras_name_exists(name):
    try:
        present = CHECKS[name]()
    except (AttributeError, ImportError) as error:
        pytest.fail(f"{name} is missing in Keras {keras.__version__}: {error}")
    assert present, f"{name} changed meaning in Keras {keras.__version__}"


def test_check_private_api_passes_on_installed_keras():
    check_private_api()


@pytest.mark.parametrize(
    "accessor, name",
    [
        (sequential_graph, "Sequential._functional"),
        (nodes_by_depth, "Functional._nodes_by_depth"),
        (node_call, "Node.operation"),
    ],
)
def test_missing_private_name_is_one_clear_error(accessor, name):
    with pytest.raises(CompressionError) as caught:
        accessor(object())
    message = str(caught.value)
    assert name in message and f"installed Keras {keras.__version__}" in message


def test_missing_functional_class_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras.src.models.functional", None)
    with pytest.raises(CompressionError, match=r"keras\.src\.models\.functional\.Functional"):
        keras_internals.functional_class()


def _private_uses(path: Path) -> list[str]:
    """`keras.src` imports and `obj._name` / getattr(obj, "_name") uses (self/cls excepted)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
            found.append(f"{path.name}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            found += [
                f"{path.name}:{node.lineno} import {a.name}"
                for a in node.names
                if a.name.startswith("keras.src")
            ]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_other_module_reaches_into_private_keras():
    offenders = [
        use
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in (INTERNALS, MULTI_WORKER_INTERNALS)
        for use in _private_uses(path)
    ]
    assert offenders == [], "move private Keras access into compress/keras_internals.py"
    assert _private_uses(INTERNALS)  # the scan does see private access where it is
    assert _private_uses(MULTI_WORKER_INTERNALS)
