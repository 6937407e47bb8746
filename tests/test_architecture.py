"""The import rules of docs/architecture.md, enforced by walking every module's imports."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

PURE_CORE = (
    "stageless.flags",
    "stageless.analysis",
    "stageless.rollout",
    "stageless.routing",
    "stageless.diff",
)
IO_MODULES = {
    "os",
    "pathlib",
    "io",
    "shutil",
    "tempfile",
    "socket",
    "ssl",
    "selectors",
    "asyncio",
    "threading",
    "multiprocessing",
    "subprocess",
    "signal",
    "sqlite3",
    "http",
    "urllib",
    "requests",
    "httpx",
    "aiohttp",
    "httptools",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "psycopg",
    "watchfiles",
    "openfeature",
}
EDGE_PACKAGES = {
    "stageless.sdk",
    "stageless.cli",
    "stageless.testing",
    "stageless.api",
    "stageless.service",
    "stageless.store",
    "stageless.proxy.server",
    "stageless.proxy.upstream",
    "stageless.files",
}


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports_of(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def calls_open(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"
        for node in ast.walk(tree)
    )


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


CORE_MODULES = [(name, path) for name, path in modules() if any(within(name, p) for p in PURE_CORE)]


def test_the_pure_core_is_not_empty() -> None:
    assert CORE_MODULES, "no pure core modules found: the walk is broken"


@pytest.mark.parametrize(("name", "path"), CORE_MODULES, ids=[n for n, _ in CORE_MODULES])
def test_pure_core_imports_no_io(name: str, path: Path) -> None:
    bad = [
        imported
        for imported in imports_of(path)
        if imported.split(".")[0] in IO_MODULES
        or any(within(imported, edge) for edge in EDGE_PACKAGES)
    ]
    assert not bad, f"{name} is pure core but imports {bad}"
    assert not calls_open(path), f"{name} is pure core but calls open()"


# Internal layering beyond the pure core: which Stageless packages each package must never import.
FORBIDDEN_INTERNAL = {
    "stageless.errors": ("stageless.",),
    "stageless.clock": ("stageless.",),
    "stageless.files": ("stageless.",),
    "stageless.validation": ("stageless.",),
    "stageless.store": (
        "stageless.api",
        "stageless.cli",
        "stageless.sdk",
        "stageless.service",
        "stageless.web",
        "stageless.metrics",
        "stageless.proxy",
    ),
    "stageless.metrics": ("stageless.store", "stageless.api", "stageless.cli", "stageless.sdk"),
    "stageless.drivers": (
        "stageless.api",
        "stageless.cli",
        "stageless.store.sqlite",
        "stageless.store.postgres",
        "stageless.store.sqlstore",
        "stageless.proxy",
    ),
    "stageless.proxy": (
        "stageless.store",
        "stageless.service",
        "stageless.api",
        "stageless.cli",
        "stageless.sdk",
        "stageless.analysis.judge",
        "stageless.analysis.kayenta",
    ),
    "stageless.sdk": ("stageless.store", "stageless.api", "stageless.cli", "stageless.metrics"),
    "stageless.settings": (
        "stageless.api",
        "stageless.cli",
        "stageless.service",
        "stageless.store",
    ),
    "stageless.service": (
        "stageless.api",
        "stageless.cli",
        "stageless.store.sqlite",
        "stageless.store.postgres",
        "stageless.store.sqlstore",
    ),
    "stageless.api": (
        "stageless.cli",
        "stageless.store.sqlite",
        "stageless.store.postgres",
        "stageless.store.sqlstore",
    ),
    "stageless.controller": (
        "stageless.api",
        "stageless.cli",
        "stageless.store",
        "stageless.sdk",
        "stageless.proxy",
    ),
    "stageless.cli": (
        "stageless.store.sqlite",
        "stageless.store.postgres",
        "stageless.store.sqlstore",
    ),
}
LAYERED = [
    (name, path, banned)
    for name, path in modules()
    for package, banned in FORBIDDEN_INTERNAL.items()
    if within(name, package)
]


@pytest.mark.parametrize(("name", "path", "banned"), LAYERED, ids=[n for n, _, _ in LAYERED])
def test_layering(name: str, path: Path, banned: tuple[str, ...]) -> None:
    bad = [
        imported
        for imported in imports_of(path)
        if any(imported.startswith(b) or imported == b.rstrip(".") for b in banned)
        and not (banned == ("stageless.",) and imported in {"stageless.errors", "stageless.clock"})
    ]
    assert not bad, f"{name} must not import {bad}"


def test_every_package_is_on_the_map() -> None:
    documented = set(re.findall(r"^\| `(stageless[\w.]*)`", ARCHITECTURE.read_text(), re.MULTILINE))
    root = SRC / "stageless"
    top_level = {
        f"stageless.{entry.stem}"
        for entry in root.iterdir()
        if (entry.is_dir() and (entry / "__init__.py").exists())
        or (entry.suffix == ".py" and entry.stem not in {"__init__", "__main__"})
    }
    missing = top_level - documented
    assert not missing, f"packages missing from docs/architecture.md: {sorted(missing)}"


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import socket\nfrom stageless.store import x\nopen('f')\n")
    assert set(imports_of(sample)) == {"socket", "stageless.store"}
    assert calls_open(sample)
