"""What the code imports is declared, what is declared is locked with hashes (README, Dependencies).

Static and fast: the sources are read with the AST, pyproject.toml and the locks as text, and
the installed distributions' metadata says which distribution provides which module. That a
runtime-only install really imports every module is `make check-runtime` (CI runs it).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RUNTIME_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"

# The one import of packaged code declared by an extra rather than by the runtime
# dependencies: `regflow up --prod --replicas N` pings Redis with redis-py before it starts
# Prefect's distributed topology, and only that path needs it. It must stay inside the
# function (an import of regflow.topology must not need it); the test below checks both.
EXTRA_IMPORTS = {("regflow/topology.py", "redis"): "prod"}


def _packaged_dirs() -> list[Path]:
    """The directories of the packaged top-level packages (kernel, regflow, ...)."""
    tops = sorted({name.split(".")[0] for name in PYPROJECT["tool"]["setuptools"]["packages"]})
    return [ROOT / top for top in tops]


OWN = {p.name for p in _packaged_dirs()} | {"tests", "benchmarks"}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level) for each absolute import in a file."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], not in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], not in_function))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


def _third_party(dirs: list[Path]) -> dict[tuple[str, str], bool]:
    """{(file, top-level module): imported at module level anywhere in that file}."""
    found: dict[tuple[str, str], bool] = {}
    for folder in dirs:
        for path in sorted(folder.rglob("*.py")):
            for top, module_level in _imports(path):
                if top in sys.stdlib_module_names or top in OWN:
                    continue
                key = (path.relative_to(ROOT).as_posix(), top)
                found[key] = found.get(key, False) or module_level
    return found


@cache
def _providers() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _providers().get(module, [])}


def _declared(requirements: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, requirements)}


RUNTIME = _declared(PYPROJECT["project"]["dependencies"])
EXTRAS = {name: _declared(reqs) for name, reqs in PYPROJECT["project"]["optional-dependencies"].items()}


def _lock(path: Path) -> dict[str, tuple[Version, frozenset[str]]]:
    """{name: (version, hashes)} of a pip-compile lock; every entry must be `name==version`
    with at least one --hash, and there must be nothing else (no -e, no URL, no option)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    entries: dict[str, tuple[Version, frozenset[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", words[0])
        assert match, f"{path.name}: entry {line[:60]!r} is not name==version"
        hashes = frozenset(w.removeprefix("--hash=") for w in words[1:] if w.startswith("--hash=sha256:"))
        assert hashes and len(hashes) == len(words) - 1, f"{path.name}: {words[0]} has no --hash (or something else)"
        name = canonicalize_name(match[1])
        assert name not in entries, f"{path.name}: {name} twice"
        entries[name] = (Version(match[2]), hashes)
    return entries


def test_packaged_code_imports_only_runtime_dependencies():
    """(a) Every third-party module that kernel, regflow, rules, flows, tasks and storage import
    (top level or inside a function) comes from a distribution in [project].dependencies."""
    undeclared, unknown, allowed = [], [], set()
    for (file, top), module_level in sorted(_third_party(_packaged_dirs()).items()):
        dists = _distributions(top)
        if not dists:
            unknown.append(f"{file}: {top}")
        elif dists & RUNTIME.keys():
            continue
        elif (extra := EXTRA_IMPORTS.get((file, top))) and dists & EXTRAS[extra].keys() and not module_level:
            allowed.add((file, top))
        else:
            undeclared.append(f"{file}: {top} ({', '.join(sorted(dists))})")
    assert not unknown, f"imported, but no installed distribution provides it: {unknown}"
    assert not undeclared, f"imported, but not in [project].dependencies: {undeclared}"
    assert allowed == EXTRA_IMPORTS.keys(), f"stale or broken EXTRA_IMPORTS: {EXTRA_IMPORTS.keys() - allowed}"


def test_tests_and_benchmarks_import_only_declared_dependencies():
    """(b) tests/ and benchmarks/ import only runtime dependencies and the test, bench and
    prod extras; the pytest plugins `make test` relies on are in the test extra."""
    declared = RUNTIME.keys() | {name for extra in ("test", "bench", "prod") for name in EXTRAS.get(extra, {})}
    missing = [
        f"{file}: {top}"
        for (file, top) in sorted(_third_party([ROOT / "tests", ROOT / "benchmarks"]))
        if not _distributions(top) & declared
    ]
    assert not missing, f"imported by tests or benchmarks, but declared nowhere: {missing}"
    assert "--timeout" in PYPROJECT["tool"]["pytest"]["ini_options"]["addopts"]
    assert {"pytest", "pytest-timeout", "pytest-xdist"} <= EXTRAS["test"].keys()


def test_every_lock_is_hashed_and_pins_what_is_declared():
    """(c) The runtime lock pins the runtime dependencies and the prod extra, the test lock
    the test extra too, each within its declared range; every entry of every lock is hashed."""
    locks = set(ROOT.glob("requirements*.lock"))
    assert locks == {RUNTIME_LOCK, TEST_LOCK}, f"unexpected lock files: {sorted(p.name for p in locks)}"
    runtime, test = _lock(RUNTIME_LOCK), _lock(TEST_LOCK)
    for lock, wanted in ((runtime, [RUNTIME, EXTRAS["prod"]]), (test, [RUNTIME, *EXTRAS.values()])):
        for requirements in wanted:
            for name, req in requirements.items():
                assert name in lock, f"{name} is declared but not locked"
                assert req.specifier.contains(lock[name][0], prereleases=True), f"{name}=={lock[name][0]} not {req}"
    assert "regflow" not in runtime and "regflow" not in test, "the project itself is installed apart (-e .)"
    # The test lock is the runtime lock plus the test tools, at the same versions and hashes.
    assert runtime.items() <= test.items(), "the test lock disagrees with the runtime lock: run `make lock`"
    # No test tool in a production install (packaging, which the test extra names too, is
    # Prefect's own dependency).
    tools = {"pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "playwright", "ruff"}
    assert tools <= EXTRAS["test"].keys()
    assert not tools & runtime.keys(), f"test tools in the runtime lock: {tools & runtime.keys()}"


def test_the_venv_is_built_from_both_locks():
    """`make` installs from the locks, and rebuilds when one changes."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    rule = re.search(r"^\$\(STAMP\):(.*)$", makefile, re.M)
    assert rule and {"requirements.lock", "requirements-test.lock", "pyproject.toml"} <= set(rule[1].split())
    assert "--require-hashes -r requirements.lock -r requirements-test.lock" in makefile


def test_apprise_is_bounded_as_prefect_bounds_it():
    """(d) apprise's upper bound is the installed Prefect's, and that Prefect is the pinned one."""
    assert Version(importlib.metadata.version("prefect")) in RUNTIME["prefect"].specifier
    prefects = [Requirement(r) for r in importlib.metadata.requires("prefect") or []]
    theirs = next(r.specifier for r in prefects if canonicalize_name(r.name) == "apprise" and not r.marker)

    def upper(specifier: SpecifierSet) -> Version:
        bounds = [Version(s.version) for s in specifier if s.operator == "<"]
        assert len(bounds) == 1, f"apprise{specifier}: one `<` bound expected"
        return bounds[0]

    ours = RUNTIME["apprise"].specifier
    assert upper(ours) == upper(theirs), f"apprise: ours {ours}, Prefect's {theirs}"


@pytest.mark.parametrize("source", ["import a.b", "from a.b import c", "def f():\n    import a"])
def test_imports_are_found_where_they_stand(tmp_path, source):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert [top for top, _ in _imports(path)] == ["a"]
    assert _imports(path)[0][1] is not source.startswith("def")
