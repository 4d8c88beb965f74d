"""No import cycle among edgebuild's modules: the package's top-level imports (those that run when
a module is imported, not the lazy ones inside functions) must form a graph without loops, so
every module can be imported on its own (`python -c "import edgebuild.executors"`)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import edgebuild

PACKAGE = Path(edgebuild.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, modules: set[str]) -> set[str]:
    """edgebuild modules this file imports at module level (`if TYPE_CHECKING:` blocks excluded)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    found: set[str] = set()
    for node in _module_level(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the submodule pkg.mod when there is one
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            while target:
                found.add(target)
                target = target.rpartition(".")[0]
    # a module's own packages are initialised (or initialising) before it runs: no edge to them
    return {m for m in found if m in modules and m != name and m not in ancestors}


def _module_level(body: list[ast.stmt]):
    """Statements that run on import: the body, and the branches of top-level if/try blocks."""
    for node in body:
        if isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level(block)
        else:
            yield node


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: top_level_imports(path, modules) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search with an explicit path)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_walker_sees_imports_and_finds_a_planted_cycle():
    graph = import_graph()
    assert "edgebuild.executors.base" in graph["edgebuild.scheduler"]
    assert "edgebuild.executors" in graph["edgebuild.commands.build"]
    assert "edgebuild.executors" not in graph["edgebuild.executors.local"]  # its own package: no edge
    planted = {k: set(v) for k, v in graph.items()}
    planted["edgebuild.executors.base"].add("edgebuild.scheduler")
    cycle = find_cycle(planted)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"edgebuild.scheduler", "edgebuild.executors.base"} <= set(cycle)


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_executors_import_on_their_own():
    for module in ("edgebuild.executors", "edgebuild.executors.agent_side", "edgebuild.executors.dask"):
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
