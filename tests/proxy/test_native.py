"""The compiled hot path (``stageless.proxy.native``): used when it matches the sources, the
sources otherwise; every other test of the proxy runs whichever is active, the compiled one
after ``scripts/setup``."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from stageless.proxy import native

PROBE = """
import json, stageless.proxy.exchange as e, stageless.proxy.router as r
from stageless.proxy import native
print(json.dumps({"files": [e.__file__, r.__file__], "status": native.status()}))
"""


def probe(**env: str) -> dict[str, object]:
    """Which files ``stageless.proxy`` loads in a new interpreter with ``env`` added."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_hot_path_runs_compiled_after_setup() -> None:
    directory = native.usable()
    assert directory is not None, native.status()  # scripts/setup builds it
    for module in native.MODULES:
        loaded = importlib.import_module(f"stageless.proxy.{module}")
        path = Path(str(loaded.__file__))
        assert path.suffix == ".so", path
        assert path.is_relative_to(directory), path
    snapshots = importlib.import_module("stageless.proxy.snapshots")
    assert str(snapshots.__file__).endswith(".py")  # not compiled: see native.MODULES
    for module in native.C_MODULES:
        loaded = importlib.import_module(f"stageless.proxy.{module}")
        assert Path(str(loaded.__file__)).is_relative_to(directory), loaded.__file__
    heads = importlib.import_module("stageless.proxy.heads")
    scan = importlib.import_module("stageless.proxy._headscan")
    assert heads._SCAN is scan.plain_head  # the compiled heads use the C scan


def test_without_the_build_heads_are_read_by_the_python_reference() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from stageless.proxy import heads; print(heads._SCAN)"],
        env={**os.environ, "STAGELESS_NATIVE": "0"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "None"


def test_the_sources_run_when_switched_off() -> None:
    found = probe(STAGELESS_NATIVE="0")
    assert all(str(f).endswith(".py") for f in found["files"]), found  # type: ignore[attr-defined]
    assert found["status"] == "interpreted hot path (STAGELESS_NATIVE=0)"


def test_a_build_of_other_sources_is_never_used(tmp_path: Path) -> None:
    built = native.usable()
    assert built is not None, native.status()
    stale = tmp_path / "stale"
    shutil.copytree(built, stale)
    manifest = json.loads((stale / native.MANIFEST).read_text())
    manifest["digest"] = "0" * 64  # as after an edit of one of the sources
    (stale / native.MANIFEST).write_text(json.dumps(manifest))
    found = probe(STAGELESS_NATIVE_DIR=str(stale))
    assert all(str(f).endswith(".py") for f in found["files"]), found  # type: ignore[attr-defined]
    assert "not of these sources" in str(found["status"])

    missing = probe(STAGELESS_NATIVE_DIR=str(tmp_path / "nothing"))
    assert all(str(f).endswith(".py") for f in missing["files"]), missing  # type: ignore[attr-defined]
    assert "no compiled build" in str(missing["status"])


def test_an_edit_anywhere_in_the_package_retires_the_build(tmp_path: Path) -> None:
    """Not only an edit of a compiled module: compiled code was generated against what it
    imports, so the digest covers every source of ``stageless``."""
    built = native.usable()
    assert built is not None, native.status()
    package = Path(str(native.__file__)).parents[1]
    shutil.copytree(package, tmp_path / "stageless", ignore=shutil.ignore_patterns("__pycache__"))
    names = tmp_path / "stageless" / "routing" / "names.py"  # interpreted, imported by the router
    original = names.read_text()
    names.write_text(original + "\n# an edit\n")
    found = probe(PYTHONPATH=str(tmp_path), STAGELESS_NATIVE_DIR=str(built))
    files = [Path(str(f)) for f in found["files"]]  # type: ignore[attr-defined]
    assert all(f.suffix == ".py" and f.is_relative_to(tmp_path) for f in files), found
    assert "not of these sources" in str(found["status"])
    names.write_text(original)
    scan = tmp_path / "stageless" / "proxy" / "_headscan.c"  # a C source retires it too
    scan.write_text(scan.read_text() + "\n/* an edit */\n")
    found = probe(PYTHONPATH=str(tmp_path), STAGELESS_NATIVE_DIR=str(built))
    assert "not of these sources" in str(found["status"]), found

    unchanged = tmp_path / "unchanged"
    shutil.copytree(package, unchanged / "stageless", ignore=shutil.ignore_patterns("__pycache__"))
    same = probe(PYTHONPATH=str(unchanged), STAGELESS_NATIVE_DIR=str(built))
    assert all(str(f).endswith(".so") for f in same["files"]), same  # type: ignore[attr-defined]


def test_a_copy_of_a_fresh_build_is_used_from_where_it_lies(tmp_path: Path) -> None:
    built = native.usable()
    assert built is not None, native.status()
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    found = probe(STAGELESS_NATIVE_DIR=str(copy))
    files = [Path(str(f)) for f in found["files"]]  # type: ignore[attr-defined]
    assert all(f.suffix == ".so" and f.is_relative_to(copy) for f in files), found
    assert native.build(copy) is False  # up to date: nothing compiled again


def test_build_compiles_the_modules_and_writes_the_manifest(tmp_path: Path) -> None:
    target = tmp_path / "native"
    assert native.build(target) is True
    manifest = json.loads((target / native.MANIFEST).read_text())
    assert manifest["digest"] == native.source_digest()
    assert manifest["modules"] == list(native.MODULES)
    assert manifest["c_modules"] == list(native.C_MODULES)
    for module in (*native.MODULES, *native.C_MODULES):
        assert len(list((target / "stageless" / "proxy").glob(f"{module}.*.so"))) == 1
    assert len(list(target.glob("*__mypyc.*.so"))) == 1
    found = probe(STAGELESS_NATIVE_DIR=str(target))
    assert all(str(f).endswith(".so") for f in found["files"]), found  # type: ignore[attr-defined]
    assert not list(tmp_path.glob(".stageless-native-*"))  # the staging directory was renamed
