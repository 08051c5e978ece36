"""The package's plan, kept true: every import points down the layer order, and no two
modules import each other, directly or around a cycle.

The order is the data flow's (``ddjax/__init__.py`` draws it). A module may import its own
layer and any layer below it; ``errors`` and ``limits`` sit under every layer.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "ddjax"
SHARED = ("errors", "limits")
LAYERS = ("core", "io", "sampling", "learning", "raters", "session", "rescore", "web", "cli")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: pathlib.Path, known: set[str]) -> set[str]:
    """The ddjax modules ``path`` imports, at any depth of its code (a function's lazy
    import counts too), each resolved to a module file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name.startswith("ddjax."):
                found.add(name)
    return found


def layer_of(module: str) -> int:
    """-1 for ``ddjax`` itself and the shared modules; else the layer's place in LAYERS."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in SHARED:
        return -1
    return LAYERS.index(parts[1])


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(path, known) - {name} for name, path in found.items()}


def test_the_top_level_holds_only_the_layers_and_the_shared_modules():
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top <= set(SHARED)
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_says_what_it_is_and_what_it_may_import(layer):
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())) or ""
    assert "may import" in doc.lower(), layer


def test_every_module_is_in_a_layer():
    for name in modules():
        layer_of(name)  # raises ValueError for a package that is not in LAYERS


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down(layer):
    upward = [f"{module} imports {target}"
              for module, targets in graph().items() if module.startswith(f"ddjax.{layer}")
              for target in sorted(targets)
              if layer_of(target) > layer_of(module) and module != "ddjax"]
    assert upward == [], "\n".join(upward)


def test_shared_modules_import_no_layer():
    for name in SHARED:
        targets = graph()[f"ddjax.{name}"]
        assert all(layer_of(t) == -1 for t in targets), (name, targets)


def test_no_import_cycles():
    edges = {m: {t for t in ts if t != "ddjax"} for m, ts in graph().items() if m != "ddjax"}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_the_checker_sees_an_upward_import(tmp_path):
    # The rule itself is tested on a made-up module: core importing web must be caught.
    fake = tmp_path / "ddjax" / "core" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ddjax.web.server import serve\nimport ddjax.errors\n")
    known = {"ddjax.web.server", "ddjax.errors", "ddjax.core.bad"}
    targets = imports_of(fake, known)
    assert targets == {"ddjax.web.server", "ddjax.errors"}
    assert layer_of("ddjax.web.server") > layer_of("ddjax.core.bad")
