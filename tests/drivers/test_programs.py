"""The data planes the driver tests run are installed (never skipped: a missing one fails here
with the way to install it), at versions with what the drivers use (HAProxy 2.6: ``balance
hash <expr>``; nginx 1.19.5: ``-e``)."""

from __future__ import annotations

import re
import subprocess

from tests.drivers.dataplane import program


def version(command: list[str]) -> tuple[int, int]:
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    found = re.search(r"(?:version|nginx/)\s*(\d+)\.(\d+)", done.stdout + done.stderr)
    assert found is not None, done.stdout + done.stderr
    return int(found.group(1)), int(found.group(2))


def test_haproxy_is_installed_and_recent_enough() -> None:
    assert version([program("haproxy"), "-v"]) >= (2, 6)


def test_nginx_is_installed_and_recent_enough() -> None:
    assert version([program("nginx"), "-v"]) >= (1, 20)
