"""The proxy's hot path compiled with mypyc, used only when it was built from these sources.

Why: every user request runs a dozen methods of the proxy (parse, route, forward, answer). Run
by CPython 3.11 they took about 135,000 instructions per proxied request in the benchmark's
set-up (callgrind, docs/benchmarks.md), against 72,000 for a minimal asyncio forwarder with no
features; most of the difference was the interpreter's own work per bytecode and per call.
mypyc (the mypy project's compiler of type-annotated Python into C extensions) compiles the
same sources, which mypy already checks strictly, into code that calls and reads attributes
natively: about 90,000 instructions per request, the same behaviour, no second implementation.

How: ``scripts/setup`` calls :func:`main`, which compiles :data:`MODULES` into
:func:`native_dir` (inside the virtual environment) and writes a manifest with the digest of the
package's sources. ``stageless.proxy`` calls :func:`activate` before any of its modules is
imported: when the manifest matches the sources and this Python, the compiled directory goes
first on the package's ``__path__``, so ``import stageless.proxy.exchange`` loads the
extension. Otherwise (never built, any source of ``stageless`` edited since, or
``STAGELESS_NATIVE=0``) the sources run as they are. All or nothing: modules compiled together
call each other natively, so a stale one is never mixed with fresh ones.

Compiled code checks the annotated types at run time where CPython does not; the sources keep
to what mypyc compiles the same way (for one: an ``except ... as name`` binds a name of its own
in each handler).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import MutableSequence
from pathlib import Path

#: The modules of ``stageless.proxy`` on every request's path, compiled together.
MODULES = (
    "connection",
    "exchange",
    "heads",
    "pool",
    "router",
    "runtime",
    "shadow",
    "stats",
    "worker",
)
# Not snapshots: frozen dataclasses that a worker pickles to the supervisor; compiled, a frozen
# dataclass cannot be unpickled (its fields are set after the object is made).
#: C extensions of ``stageless.proxy`` (``<name>.c``), built with :data:`MODULES` and used only
#: with them: what no library does and mypyc-compiled Python does too slowly (each says why).
C_MODULES = ("_headscan",)
#: ``0`` runs the sources even when a fresh compiled build exists.
SWITCH = "STAGELESS_NATIVE"
#: Where the compiled build lives (default: ``stageless-native`` in ``sys.prefix``).
DIRECTORY = "STAGELESS_NATIVE_DIR"
MANIFEST = "manifest.json"

_PACKAGE = Path(__file__).resolve().parent  # .../stageless/proxy


# setuptools builds the C extensions in place, in the scratch copy of the package (run there
# by :func:`build`); -O2 as Python's own extensions are built.
_BUILD_C = (
    "from setuptools import Extension, setup\n"
    f"modules = {list(C_MODULES)!r}\n"
    "setup(\n"
    "    name='stageless-native-c',\n"
    "    ext_modules=[\n"
    "        Extension(\n"
    "            f'stageless.proxy.{m}', [f'stageless/proxy/{m}.c'], extra_compile_args=['-O2']\n"
    "        )\n"
    "        for m in modules\n"
    "    ],\n"
    "    script_args=['build_ext', '--inplace', '--quiet'],\n"
    ")\n"
)


def native_dir() -> Path:
    override = os.environ.get(DIRECTORY)
    return Path(override) if override else Path(sys.prefix) / "stageless-native"


def source_digest() -> str:
    """What a build must have been made from: this Python's ABI and every source of the package.

    Every source, not only :data:`MODULES`': compiled code was generated against what it
    imports (a ``Final`` constant of another module is copied in, for one), so an edit anywhere
    in ``stageless`` retires the build; the C sources of :data:`C_MODULES` too. About 9 ms for
    the package's 1.4 MB.
    """
    digest = hashlib.sha256(sys.implementation.cache_tag.encode())
    root = _PACKAGE.parent
    for source in sorted([*root.rglob("*.py"), *root.rglob("*.c")]):
        digest.update(source.relative_to(root).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _built_from(directory: Path) -> object:
    """The source digest recorded by the build in ``directory``; None when there is none."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("digest") if isinstance(manifest, dict) else None


@functools.cache
def _state() -> tuple[Path | None, str]:
    """Decided once per process, at the first import of ``stageless.proxy``."""
    if os.environ.get(SWITCH, "1") == "0":
        return None, f"interpreted hot path ({SWITCH}=0)"
    directory = native_dir()
    built = _built_from(directory)
    if built is None:
        return None, "interpreted hot path (no compiled build: run scripts/setup)"
    if built != source_digest():
        return None, (
            "interpreted hot path (the compiled build is not of these sources: run scripts/setup)"
        )
    return directory, f"compiled hot path (mypyc) from {directory}"


def usable() -> Path | None:
    """The compiled build's directory when it matches the sources and is switched on."""
    return _state()[0]


def activate(path: MutableSequence[str]) -> None:
    """Put the compiled modules first on ``stageless.proxy.__path__`` when :func:`usable`."""
    directory = usable()
    if directory is None:
        return
    root = str(directory)
    if root not in sys.path:
        sys.path.append(root)  # mypyc's shared runtime module, imported by its top-level name
    path.insert(0, str(directory / "stageless" / "proxy"))


def status() -> str:
    """One line for the proxy's start-up log: which hot path runs, and why."""
    return _state()[1]


def build(target: Path | None = None) -> bool:
    """Compile :data:`MODULES` into ``target`` unless a build of these sources is there.

    True when a build was made, False when it was up to date. Raises ``RuntimeError`` with
    mypyc's output when compiling fails. The sources are compiled in a copy of the package, so
    no extension lands next to them (where it would shadow later edits).
    """
    target = target or native_dir()
    digest = source_digest()
    if _built_from(target) == digest:
        return False
    with tempfile.TemporaryDirectory(prefix="stageless-native-") as scratch:
        work = Path(scratch)
        shutil.copytree(
            _PACKAGE.parent, work / "stageless", ignore=shutil.ignore_patterns("__pycache__")
        )
        sources = [f"stageless/proxy/{module}.py" for module in MODULES]
        done = subprocess.run(  # noqa: S603  # our own interpreter and file names
            [sys.executable, "-m", "mypyc", *sources],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mypyc failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        done = subprocess.run(  # noqa: S603  # our own interpreter and file names
            [sys.executable, "-c", _BUILD_C],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"compiling {', '.join(C_MODULES)} failed:\n"
                f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
            )
        staged = Path(tempfile.mkdtemp(prefix=".stageless-native-", dir=target.parent))
        modules = staged / "stageless" / "proxy"
        modules.mkdir(parents=True)
        for module in (*MODULES, *C_MODULES):
            (built,) = (work / "stageless" / "proxy").glob(f"{module}.*.so")
            shutil.copy2(built, modules / built.name)
        for runtime in work.glob("*__mypyc.*.so"):
            shutil.copy2(runtime, staged / runtime.name)
        record = {
            "digest": digest,
            "python": sys.version,
            "modules": list(MODULES),
            "c_modules": list(C_MODULES),
        }
        (staged / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staged.rename(target)
    _state.cache_clear()
    return True


def main() -> int:
    """``scripts/setup``'s step: build if needed, say what happened; 1 if compiling failed."""
    try:
        made = build()
    except RuntimeError as exc:
        sys.stderr.write(f"stageless: compiling the proxy's hot path failed: {exc}\n")
        return 1
    where = native_dir()
    done = f"proxy hot path compiled into {where}" if made else f"{where}: up to date"
    sys.stdout.write(f"stageless: {done}\n")
    return 0
