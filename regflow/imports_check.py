"""Import every module of the installed regflow distribution: `python -m regflow.imports_check`.

`make check-runtime` runs it in a venv made from requirements.lock alone, with the package
installed as a wheel, from a directory outside the source tree: a module that imports
something only the test tools bring (or nothing declared at all) fails here, naming the
module and what it could not import. Modules import their third-party dependencies at the
top or inside the functions that need them; the second kind are not run by an import, so
each third-party name any module imports, anywhere in it, is also looked up (not imported)
in the same install.

The top-level packages are the distribution's own (its RECORD), not the working tree's.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
import sysconfig
import traceback
from pathlib import Path

DISTRIBUTION = "regflow"

# Modules that cannot be imported on their own, and why. Nothing else is skipped.
SKIP = {
    # Alembic's environment script: it reads `alembic.context.config`, which exists only
    # while the `alembic` command (storage/migrate.py) runs it.
    "storage.migrations.env": "runs only inside alembic",
}


def top_level_packages(dist: importlib.metadata.Distribution) -> list[str]:
    """The packages the distribution installs at the top (kernel, regflow, ...)."""
    return sorted({f.parts[0] for f in dist.files or () if len(f.parts) == 2 and f.name == "__init__.py"})


def walk(packages: list[str]) -> tuple[list[str], list[str]]:
    """Import each package and every module under it; returns (imported, failures)."""
    imported: list[str] = []
    failures: list[str] = []

    def failed(name: str) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            failures.append(f"{name}: cannot import {exc.name!r}, a dependency no installed distribution provides")
        else:
            failures.append(f"{name}: {''.join(traceback.format_exception_only(exc)).strip()}")

    for top in packages:
        try:
            package = importlib.import_module(top)
        except Exception:
            failed(top)
            continue
        imported.append(top)
        # walk_packages imports the subpackages it descends into; a failure there is reported
        # through onerror and again below, where the module itself is imported.
        names = [m.name for m in pkgutil.walk_packages(package.__path__, prefix=f"{top}.", onerror=lambda _: None)]
        for name in names:
            if name in SKIP:
                continue
            try:
                importlib.import_module(name)
            except Exception:
                failed(name)
            else:
                imported.append(name)
    return imported, failures


def imported_names(path: Path) -> set[str]:
    """The top-level names of the absolute imports in one source file, wherever they stand."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def deferred_imports(modules: list[str], own: list[str]) -> list[str]:
    """Third-party names imported anywhere in these modules (function bodies included) that
    this install cannot find."""
    missing = []
    for name in modules:
        origin = getattr(sys.modules[name], "__file__", None)
        if not origin or not origin.endswith(".py"):
            continue
        for top in sorted(imported_names(Path(origin)) - set(sys.stdlib_module_names) - set(own)):
            if importlib.util.find_spec(top) is None:
                missing.append(f"{name}: imports {top!r}, which no installed distribution provides")
    return missing


def outside_install(packages: list[str]) -> list[str]:
    """Packages imported from somewhere other than this environment's site-packages (the
    source tree on sys.path, or an editable install)."""
    paths = sysconfig.get_paths()
    roots = {Path(paths[key]).resolve() for key in ("purelib", "platlib")}
    wrong = []
    for top in packages:
        where = Path(sys.modules[top].__file__).resolve()
        if not any(where.is_relative_to(root) for root in roots):
            wrong.append(f"{top}: imported from {where.parent}, not from site-packages (the source tree, editable)")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regflow.imports_check", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--allow-source", action="store_true", help="accept packages imported from the source tree (editable install)"
    )
    args = parser.parse_args(argv)
    dist = importlib.metadata.distribution(DISTRIBUTION)
    packages = top_level_packages(dist)
    if not packages:
        print(f"imports_check: {DISTRIBUTION} lists no packages (editable? install the wheel)", file=sys.stderr)
        return 1
    imported, failures = walk(packages)
    if not failures:
        failures += deferred_imports(imported, packages)
        if not args.allow_source:
            failures += outside_install(packages)
    for failure in failures:
        print(f"imports_check: {failure}", file=sys.stderr)
    if failures:
        print(f"imports_check: {len(failures)} failure(s) in {len(imported)} modules imported", file=sys.stderr)
        return 1
    where = "a runtime-only install" if not args.allow_source else "this environment"
    print(
        f"imported {len(imported)} modules of {', '.join(packages)} from {where}"
        f" (skipped: {', '.join(sorted(SKIP)) or 'none'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
