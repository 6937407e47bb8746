"""The proxy process's collector settings (checked in a child process: they are process-wide)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import gc
from stageless.proxy.worker import COLLECTOR_THRESHOLDS, tune_collector
before = gc.get_threshold()
tune_collector()
assert gc.get_threshold() == COLLECTOR_THRESHOLDS != before, (before, gc.get_threshold())
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()
print("ok")
"""


def test_tune_collector_freezes_start_up_objects_and_spaces_full_collections() -> None:
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
