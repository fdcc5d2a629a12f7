"""The layers only point down, and no module imports itself round a cycle.

Every import counts, including those inside functions: a lazy import that points up
is still a dependency a newcomer must know about. Read from the source, so this
runs in milliseconds and needs nothing started.
"""

from __future__ import annotations

import ast
from pathlib import Path

from kernel.settings import PROJECT_ROOT

# Bottom to top; a module may import its own layer and those below it.
LAYERS = ["kernel", "rules", "storage", "tasks", "flows", "regflow"]
# What the pure rules may not use: they need neither Prefect nor a database.
NOT_IN_RULES = ("prefect", "sqlalchemy", "sqlmodel", "apprise", "httpx")


def _modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in (PROJECT_ROOT / layer).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every module name an import statement in the file names, wherever it stands."""
    names: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(name, path) if m in modules and m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_points_up():
    graph = _graph()
    upward = [
        f"{a} -> {b}"
        for a, targets in sorted(graph.items())
        for b in sorted(targets)
        if LAYERS.index(b.split(".")[0]) > LAYERS.index(a.split(".")[0])
    ]
    assert upward == [], "imports that point up a layer:\n" + "\n".join(upward)


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_rules_need_neither_prefect_nor_a_database():
    found = [
        f"{name}: {m}"
        for name, path in _modules().items()
        if name.startswith("rules")
        for m in _imports(name, path)
        if m.split(".")[0] in NOT_IN_RULES
    ]
    assert found == []


def test_the_kernel_imports_nothing_of_the_project():
    found = [
        f"{name}: {m}"
        for name, path in _modules().items()
        if name.startswith("kernel")
        for m in _imports(name, path)
        if m.split(".")[0] in LAYERS and not m.startswith("kernel")
    ]
    assert found == []


def test_the_stand_in_and_the_settings_agree_on_the_home_and_the_api():
    from kernel.settings import DEFAULT_HOME, DEFAULT_PREFECT_API
    from regflow.standin import DEFAULT_API
    from regflow.standin import DEFAULT_HOME as standin_home

    assert Path(standin_home) == DEFAULT_HOME
    assert DEFAULT_API == DEFAULT_PREFECT_API
