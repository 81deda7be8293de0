"""The layering of docs/architecture.md ("Layers"), checked on lwnn's import graph.

Every ``import`` counts, also those inside functions: a lazy import that reaches up a layer is
still a dependency, it only hides the cycle from the interpreter. The graph is read from the
source with ``ast``, so the check needs no import of lwnn and sees every module.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The layers of docs/architecture.md, by the top-level module or package under lwnn/ ("" is
# lwnn/__init__.py, the face users import). A module may import its own layer and those below.
LAYERS = {
    1: {"errors", "graph", "ops", "tolerance", "memory"},
    2: {"numerics"},
    3: {"backends"},
    4: {"importers", "engine", "executor", "model", "loader", "passes", "coverage", "data"},
    5: {"quant"},
    6: {"comparison", "viz", "widgets"},
    7: {""},
    8: {"report", "cli", "__main__"},
    9: {"zoo", "famous", "scenes", "speech", "tasks", "datasets"},  # the demos, and aliases into them
}
LAYER_OF = {top: n for n, tops in LAYERS.items() for top in tops}
# Deprecated aliases of moved modules: module -> where it moved.
ALIASES = {"lwnn.quant.params": "lwnn.numerics.params", "lwnn.quant.fixedpoint": "lwnn.numerics.fixedpoint",
           "lwnn.quant.rules": "lwnn.numerics.roles",
           **{f"lwnn.{m}": f"lwnn.zoo.{m}" for m in ("famous", "scenes", "speech", "tasks", "datasets")}}


def module_files(root: Path, package: str) -> dict[str, Path]:
    files = {}
    for path in (root / package).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def import_graph(root: Path, package: str = "lwnn") -> dict[str, set[str]]:
    """Module -> the package's modules it imports (the nearest existing module of each target)."""
    files = module_files(root, package)

    def target(module: str, node) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:  # relative: from the module's package, up level - 1 packages
            here = module.split(".") if files[module].name == "__init__.py" else module.split(".")[:-1]
            here = here[: len(here) - node.level + 1]
            base = ".".join([*here, base] if base else here)
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]

    graph = {}
    for module, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in target(module, node):
                    while name and name not in files:
                        name = name.rpartition(".")[0]
                    if name and name != module:
                        deps.add(name)
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(graph, component) -> str:
    members = set(component)
    return "; ".join(f"{m} -> {sorted(graph[m] & members)}" for m in component)


def imports_of(graph, prefixes, *, skip=()) -> dict[str, set[str]]:
    return {m: deps for m, deps in graph.items() if m.startswith(prefixes) and m not in skip}


GRAPH = import_graph(ROOT)


def test_the_graph_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("from ..a import f\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]  # a cycle introduced on purpose is found


def test_no_import_cycles_between_lwnn_modules():
    found = cycles(GRAPH)
    assert not found, "import cycles: " + " | ".join(describe(GRAPH, c) for c in found)


def layer_of(module: str) -> int | None:
    return LAYER_OF.get(module.split(".")[1] if "." in module else "")


def test_every_module_has_a_layer():
    assert not [m for m in GRAPH if layer_of(m) is None], "place these in LAYERS (and docs/architecture.md)"


def test_imports_point_down_the_layers():
    bad = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
           for m, deps in sorted(GRAPH.items()) for d in sorted(deps)
           if layer_of(d) > layer_of(m)]
    assert not bad, bad


def test_backends_and_numerics_never_import_the_quantizer():
    below = imports_of(GRAPH, ("lwnn.backends", "lwnn.numerics"))
    bad = {m: sorted(d for d in deps if d.startswith("lwnn.quant")) for m, deps in below.items()}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_numerics_imports_only_errors_and_the_graph():
    allowed = ("lwnn.numerics", "lwnn.errors", "lwnn.graph", "lwnn.ops")
    bad = {m: sorted(d for d in deps if not d.startswith(allowed))
           for m, deps in imports_of(GRAPH, ("lwnn.numerics",)).items()}
    assert not {m: d for m, d in bad.items() if d}, bad


def test_the_core_never_imports_the_demo_modules():
    demos = {m for m in GRAPH if layer_of(m) == 9}
    assert "lwnn.zoo.famous" in demos and "lwnn.tasks" in demos
    bad = {m: sorted(deps & demos) for m, deps in GRAPH.items() if m not in demos and deps & demos}
    assert not bad, bad


def test_the_deprecated_aliases_only_forward():
    for alias, moved in ALIASES.items():
        assert GRAPH[alias] <= {moved, moved.rpartition(".")[0]}, alias


@pytest.mark.parametrize("old, new", sorted(ALIASES.items()))
def test_moved_modules_still_import_with_a_deprecation_warning(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
