"""The package's layers, held against its imports.

* No import cycle anywhere inside ``src/framekit`` (imports inside functions
  count; only ``if TYPE_CHECKING:`` blocks do not).
* The library never imports the applications (``framekit.apps``: the command
  line, the file transfer, the benchmark framework); only ``__main__`` does.
* Each layer imports only the layers below it: codecs know no connection
  core, the core knows no transport, no transport knows another.
* No transport calls a decoder or a serializer itself: that is the core's job.
"""

from __future__ import annotations

import ast
import os
import re
from typing import Dict, List, Optional, Set

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
PACKAGE = os.path.join(ROOT, "framekit")


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _sources() -> Dict[str, str]:
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith((".py", ".pyx")):
                path = os.path.join(folder, name)
                module = _module_name(
                    path[: -len(".pyx")] + ".py" if name.endswith(".pyx") else path
                )
                found[module] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, level: int, name: Optional[str]) -> str:
    if not level:
        return name or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _read(path: str) -> str:
    with open(path) as source:
        return source.read()


def _imports(module: str, path: str, known: Set[str]) -> Set[str]:
    if path.endswith(".pyx"):
        text = _read(path)
        tree_lines = [line for line in text.splitlines() if re.match(r"\s*(from|import)\s", line)]
        tree = ast.parse("\n".join(line.strip() for line in tree_lines if "cimport" not in line))
    else:
        tree = ast.parse(_read(path))
    is_package = path.endswith("__init__.py")
    found: Set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.add(alias.name)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, is_package, child.level, child.module)
                found.add(target)
                for alias in child.names:  # "from . import x" may import a module
                    found.add(f"{target}.{alias.name}")
            visit(child)

    visit(tree)
    # Keep framekit modules only, named as the known module each one is in.
    result = set()
    for name in found:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            result.add(name)
    return result


SOURCES = _sources()
GRAPH = {m: _imports(m, p, set(SOURCES)) for m, p in SOURCES.items()}


def test_the_graph_is_not_empty() -> None:
    assert "framekit.core.stream" in GRAPH
    assert "framekit.codecs.interface" in GRAPH["framekit.core.stream"]


def test_no_import_cycle() -> None:
    state: Dict[str, int] = {}
    stack: List[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_a_cycle_would_be_found() -> None:
    """The checker itself: a made-up cycle is reported."""
    saved = dict(GRAPH)
    try:
        GRAPH["framekit.errors"] = {"framekit.core.stream"}
        with pytest.raises(pytest.fail.Exception, match="import cycle"):
            test_no_import_cycle()
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


def test_the_library_never_imports_the_applications() -> None:
    for module, targets in GRAPH.items():
        if module.startswith("framekit.apps") or module == "framekit.__main__":
            continue
        assert not {t for t in targets if t.startswith("framekit.apps")}, module


LAYERS = {
    # each prefix may not import any of these prefixes
    "framekit.codecs": ("framekit.core", "framekit.sync", "framekit.asyncio", "framekit.anyio"),
    "framekit.errors": ("framekit.",),
    "framekit.addresses": ("framekit.core", "framekit.sync", "framekit.asyncio", "framekit.codecs"),
    "framekit._sockets": ("framekit.core", "framekit.sync", "framekit.asyncio", "framekit.codecs"),
    "framekit.core": ("framekit.sync", "framekit.asyncio", "framekit.anyio"),
    "framekit.sync": ("framekit.asyncio", "framekit.anyio"),
    "framekit.asyncio": ("framekit.sync", "framekit.anyio"),
    "framekit.anyio": ("framekit.sync", "framekit.asyncio"),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_import_only_what_is_below_them(layer: str) -> None:
    for module, targets in GRAPH.items():
        if module != layer and not module.startswith(layer + "."):
            continue
        for target in targets:
            for forbidden in LAYERS[layer]:
                if target.startswith(forbidden) and target != "framekit.errors":
                    pytest.fail(f"{module} imports {target}")


TRANSPORTS = ("framekit.sync", "framekit.asyncio", "framekit.anyio")
#: Calls only the connection core may make: drive a decoder or an encoder, or a
#: serializer.  Calls on the core itself (``core.encode(...)``) are what
#: transports do instead.
CODEC_CALLS = {"decoder", "feed", "buffer_updated", "get_buffer", "eof"}
ENCODE_CALLS = {"encode", "encode_many", "encode_parts"}


def _receiver_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def test_no_transport_frames_or_serializes_bytes_itself() -> None:
    for module, path in SOURCES.items():
        if not module.startswith(TRANSPORTS):
            continue
        for node in ast.walk(ast.parse(_read(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("loads", "dumps"):
                pytest.fail(f"{path}:{node.lineno}: calls {func.id}()")
            if isinstance(func, ast.Attribute):
                receiver = _receiver_name(func.value).lstrip("_")
                if receiver in ("codec", "decoder") and func.attr in CODEC_CALLS | ENCODE_CALLS:
                    pytest.fail(f"{path}:{node.lineno}: calls {receiver}.{func.attr}()")
                if receiver in ("serializer", "serializers") and func.attr in ("loads", "dumps"):
                    pytest.fail(f"{path}:{node.lineno}: calls {receiver}.{func.attr}()")
