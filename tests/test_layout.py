"""The package layout stays readable: no import cycles, no repeated module names.

Imports are read from the source with `ast` (module-level and lazy function-level imports
alike), so a cycle hidden behind a lazy import still fails here.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from harness.export import block_imports_code, run_python

PACKAGE = Path(__file__).resolve().parents[1] / "lowrank_edge"

# Basenames that may repeat, each with its reason (none today).
ALLOWED_REPEATS: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that `path` imports (`from a import b` counts a.b if b is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                for a in node.names
            ]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a self-import): Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph[node]:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_package_has_no_import_cycle():
    modules = all_modules()
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    assert find_cycles(graph) == [], "import cycles between these modules"


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c"], ["e"]]


def test_lazy_imports_are_edges_too(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from lowrank_edge.compress import cost\n")
    modules = {"lowrank_edge.compress": Path(), "lowrank_edge.compress.cost": Path()}
    assert imports_of(module, modules) == {"lowrank_edge.compress.cost"}


def test_no_module_basename_repeats():
    names = Counter(p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__")
    repeats = {n: c for n, c in names.items() if c > 1 and n not in ALLOWED_REPEATS}
    assert repeats == {}, "module names used twice inside lowrank_edge"


def test_only_shared_helpers_sit_at_the_top():
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert loose == ["errors", "fileio", "logs"], "a step's module belongs in its package"


def test_tf_free_parts_import_without_tensorflow(tmp_path):
    """Every module of runtime/ and benchmark/ (the Keras worker too: TF only inside main)
    imports with TensorFlow, Keras and tf2onnx blocked, and loads none of them."""
    modules = sorted(
        name
        for name in all_modules()
        if name.startswith(("lowrank_edge.runtime", "lowrank_edge.benchmark", "lowrank_edge.cli"))
    )
    code = block_imports_code() + (
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'tensorflow', 'keras', 'tf2onnx'})\n"
        "print('loaded:', loaded)\n"
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded: []" in done.stdout
    assert len(modules) > 20
