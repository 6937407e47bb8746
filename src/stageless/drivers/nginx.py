"""nginx as a rollout driver: a generated configuration, applied with a graceful reload.

:func:`render_config` writes a complete ``nginx.conf`` for one service (the plan's ``nginx``
settings): two upstream groups, stable and candidate, and

- ``split_clients`` on the user's sticky key (the ``stageless-key`` cookie, set on a first
  visit from ``$request_id``) for the weight. ``split_clients`` hashes the key (MurmurHash2) and
  hands out the hash range in order, so the candidate's range ``[0, w%)`` only grows as the
  weight rises: raising the weight only adds users. nginx takes two decimals (0.01 %);
- ``map`` for tester routing: the ``x-stageless-route`` header, else the ``stageless-route``
  cookie, matched against the tokens valid now (:mod:`stageless.drivers.testers`; nginx cannot
  check a token's signature, the driver does);
- ``mirror`` for shadowing: every request gets a mirror subrequest, which a second
  ``split_clients`` (on ``$request_id``) lets through to the candidate for the shadow share and
  answers at once (204, not logged) otherwise. Copies carry ``x-stageless-traffic: shadow`` and are
  cut after ``mirror_timeout_s``: nginx holds the client's connection until the copy is done, so
  a slow candidate delays the *next* request on that keep-alive connection (docs/drivers.md);
- a JSON access log (``log_format ... escape=json``) with the time, version, traffic class,
  status, request time, upstream address and sticky key of every request (copies in the same log).

:class:`NginxDriver` renders the configuration for each :class:`~stageless.rollout.commands.
Traffic`, checks it with ``nginx -t``, puts it in place and sends ``nginx -s reload``: nginx
starts new workers on the new configuration while the old ones finish the requests they hold, so
no connection is dropped. Its batches come from tailing the access log
(:class:`~stageless.drivers.tally.Tally`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stageless.analysis.batch import Batch, TrafficClass, Version
from stageless.drivers.base import DriverError, ShadowReport
from stageless.drivers.tally import Record, Tally
from stageless.drivers.testers import current_tokens
from stageless.rollout.commands import Traffic
from stageless.rollout.dataplanes import NginxSettings
from stageless.rollout.plan import RolloutPlan

__all__ = [
    "LOG_FORMAT_NAME",
    "NginxDriver",
    "NginxLayout",
    "nginx_percent",
    "parse_log_line",
    "render_config",
    "write_config",
]

LOG_FORMAT_NAME = "stageless_json"
STICKY_COOKIE = "stageless-key"
ROUTE_HEADER = "x-stageless-route"
ROUTE_COOKIE = "stageless-route"
MIRROR_LOCATION = "/_stageless_mirror"
COMMAND_TIMEOUT_S = 30.0
RELOAD_TIMEOUT_S = 10.0
"""How long :class:`NginxDriver` waits for nginx to start workers on a new configuration."""
LOG_LAG_S = 1.0
"""An interval's batches are emitted this long after it ended (log lines still being written)."""
HISTORY = 20_000
"""Batches kept in memory for :meth:`NginxDriver.batches`."""
MAX_READ_BYTES = 64 * 1024 * 1024
"""At most this much of the access log is read per call (the rest at the next one)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class NginxLayout:
    """Where the generated configuration and nginx's files live (defaults beside ``config``)."""

    config: Path
    access_log: Path
    pid: Path
    error_log: Path
    temp: Path

    @classmethod
    def of(cls, settings: NginxSettings) -> NginxLayout:
        config = Path(settings.config).absolute()
        here = config.parent
        return cls(
            config=config,
            access_log=Path(settings.access_log or here / "access.json.log").absolute(),
            pid=Path(settings.pid or here / "nginx.pid").absolute(),
            error_log=here / "error.log",
            temp=here / "temp",
        )


def nginx_percent(weight: float) -> str:
    """A weight in percent as ``split_clients`` takes it: two decimals, 0.01 at least."""
    hundredths = max(round(weight * 100), 1)
    return f"{hundredths // 100}.{hundredths % 100:02d}%"


def _settings(plan: RolloutPlan) -> NginxSettings:
    if plan.nginx is None:
        raise DriverError(f"the plan for {plan.service!r} has no nginx settings")
    return plan.nginx


def render_config(
    plan: RolloutPlan,
    traffic: Traffic,
    tokens: tuple[str, ...] = (),
    *,
    promoted: bool = False,
) -> str:
    """The complete nginx configuration giving the candidate ``traffic``.

    ``tokens``: the tester tokens valid now (used only when ``traffic.testers``); ``promoted``:
    the candidate's addresses serve as stable (after :meth:`NginxDriver.promote`).
    """
    settings = _settings(plan)
    layout = NginxLayout.of(settings)
    name = _UNSAFE.sub("_", plan.service)
    stable_addresses = plan.candidate.addresses if promoted else plan.stable.addresses
    upstreams = {"stable": stable_addresses, "candidate": plan.candidate.addresses}
    split = _split_lines(traffic.weight)
    testers = tokens if traffic.testers else ()
    tester_lines = "".join(f'        "{token}" 1;\n' for token in testers)
    workers = settings.worker_processes or "auto"
    lines = [
        f"# Generated by Stageless (driver nginx) for service {plan.service}: candidate weight "
        f"{traffic.weight:g} %, testers {'on' if traffic.testers else 'off'}, shadow "
        f"{traffic.shadow:g} %.",
        "# Rewritten and reloaded by the rollout on every traffic change: edit the plan, not this.",
        f"worker_processes {workers};",
        f"pid {layout.pid};",
        f"error_log {layout.error_log} warn;",
        "",
        "events {",
        "    worker_connections 4096;",
        "}",
        "",
        "http {",
        *(f"    {kind}_temp_path {layout.temp / kind};" for kind in _TEMP_KINDS),
        f"    log_format {LOG_FORMAT_NAME} escape=json "
        f"'{_log_format('$stageless_version', '$stageless_class')}';",
        f"    log_format {LOG_FORMAT_NAME}_shadow escape=json "
        f"'{_log_format('candidate', 'shadow')}';",
        f"    access_log {layout.access_log} {LOG_FORMAT_NAME};",
        "    keepalive_timeout 75s;",
        "    map_hash_bucket_size 1024;  # room for tester tokens (up to 1024 bytes each)",
        "",
    ]
    for version, addresses in upstreams.items():
        lines += [f"    upstream stageless_{name}_{version} {{"]
        lines += [f"        server {address};" for address in addresses]
        lines += ["        keepalive 32;", "    }", ""]
    # nginx's $cookie_NAME cannot name a cookie with a '-': read both from the Cookie header.
    cookie_var, route_cookie_var = "$stageless_cookie_key", "$stageless_cookie_route"
    route_header_var = "$http_" + _UNSAFE.sub("_", ROUTE_HEADER)
    lines += [
        f"    map $http_cookie {cookie_var} {{",
        f'        "~(?:^|[;,]\\s*){STICKY_COOKIE}=(?<stageless_k>[^;,\\s]+)" $stageless_k;',
        '        default "";',
        "    }",
        f"    map $http_cookie {route_cookie_var} {{",
        f'        "~(?:^|[;,]\\s*){ROUTE_COOKIE}=(?<stageless_r>[^;,\\s]+)" $stageless_r;',
        '        default "";',
        "    }",
        "    # The user's sticky key: the cookie, else a new random one (then set as the cookie).",
        f"    map {cookie_var} $stageless_key {{",
        '        "" $request_id;',
        f"        default {cookie_var};",
        "    }",
        f"    map {cookie_var} $stageless_set_key {{",
        f'        "" "{STICKY_COOKIE}=$request_id; Path=/; Max-Age=31536000; SameSite=Lax";',
        '        default "";',
        "    }",
        "    # The weight: the candidate's share of the sticky keys' hash range, from 0.",
        f'    split_clients "{plan.service}$stageless_key" $stageless_split {{',
        *split,
        "    }",
        "    # Tester routing: the header, else the cookie, against the tokens valid now.",
        f"    map {route_header_var} $stageless_token {{",
        f'        "" {route_cookie_var};',
        f"        default {route_header_var};",
        "    }",
        "    map $stageless_token $stageless_tester {",
        "        default 0;",
        tester_lines.rstrip("\n"),
        "    }",
        "    map $stageless_tester $stageless_version {",
        "        1 candidate;",
        "        default $stageless_split;",
        "    }",
        "    map $stageless_tester $stageless_class {",
        "        1 tester;",
        "        default user;",
        "    }",
        "    map $stageless_tester $stageless_traffic {",
        "        1 tester;",
        '        default "";',
        "    }",
        "    # Shadowing: the share of requests whose mirror subrequest reaches the candidate.",
        '    split_clients "$request_id" $stageless_mirror {',
        *([f"        {nginx_percent(traffic.shadow)} 1;"] if 0 < traffic.shadow < 100 else []),
        f"        * {1 if traffic.shadow >= 100 else 0};",
        "    }",
        "",
        "    server {",
        f"        listen {settings.listen};",
        "        location / {",
    ]
    if traffic.shadow > 0:
        lines += [f"            mirror {MIRROR_LOCATION};", "            mirror_request_body on;"]
    lines += [
        f"            proxy_pass http://stageless_{name}_$stageless_version;",
        *_proxy_headers("            "),
        "            proxy_set_header X-Stageless-Traffic $stageless_traffic;",
        "            proxy_set_header X-Stageless-Version $stageless_version;",
        "            add_header Set-Cookie $stageless_set_key always;",
        "        }",
        f"        location = {MIRROR_LOCATION} {{",
        "            internal;",
        "            log_subrequest on;",
        f"            access_log {layout.access_log} {LOG_FORMAT_NAME}_shadow"
        " if=$stageless_mirror;",
        "            if ($stageless_mirror = 0) {",
        "                return 204;",
        "            }",
        f"            proxy_pass http://stageless_{name}_candidate$request_uri;",
        *_proxy_headers("            "),
        "            proxy_set_header X-Stageless-Traffic shadow;",
        "            proxy_ignore_client_abort on;  # a client that leaves keeps its copy",
        "            proxy_set_header X-Stageless-Version candidate;",
        f"            proxy_connect_timeout {settings.mirror_timeout_s:g}s;",
        f"            proxy_send_timeout {settings.mirror_timeout_s:g}s;",
        f"            proxy_read_timeout {settings.mirror_timeout_s:g}s;",
        "        }",
        "    }",
        "}",
        "",
    ]
    return "\n".join(line for line in lines if line != "") + "\n"


_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _split_lines(weight: float) -> list[str]:
    if weight <= 0:
        return ["        * stable;"]
    if weight >= 100:
        return ["        * candidate;"]
    return [f"        {nginx_percent(weight)} candidate;", "        * stable;"]


def _proxy_headers(indent: str) -> list[str]:
    return [
        f"{indent}proxy_http_version 1.1;",
        f'{indent}proxy_set_header Connection "";',
        f"{indent}proxy_set_header Host $host;",
        f"{indent}proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        f'{indent}proxy_set_header X-Stageless-Route "";',
    ]


def _log_format(version: str, traffic_class: str) -> str:
    fields = {
        "ts": "$msec",
        "version": f'"{version}"',
        "class": f'"{traffic_class}"',
        "status": "$status",
        "request_time": "$request_time",
        "upstream": '"$upstream_addr"',
        "upstream_status": '"$upstream_status"',
        "key": '"$stageless_key"',
    }
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


def parse_log_line(line: str) -> Record | None:
    """The request one access-log line records, or None for a line that is not one of ours."""
    try:
        raw: Any = json.loads(line)
        version = Version(raw["version"])
        traffic_class = TrafficClass(raw["class"])
        ts, status, seconds = float(raw["ts"]), int(raw["status"]), float(raw["request_time"])
    except (ValueError, KeyError, TypeError):
        return None
    key = raw.get("key")
    return Record(
        ts=ts,
        version=version,
        traffic_class=traffic_class,
        status=status,
        latency_ms=seconds * 1000.0,
        user=key if isinstance(key, str) and key and traffic_class is TrafficClass.USER else None,
    )


def write_config(plan: RolloutPlan, traffic: Traffic | None = None) -> Path:
    """Write the initial configuration (all users on stable unless ``traffic`` says otherwise)
    to the plan's ``nginx.config``, creating its directories; nginx can then be started with
    ``nginx -c <that file>``. Returns the file's path."""
    layout = NginxLayout.of(_settings(plan))
    _make_dirs(layout)
    text = render_config(plan, traffic or Traffic())
    layout.config.write_text(text, encoding="utf-8")
    return layout.config


def _make_dirs(layout: NginxLayout) -> None:
    layout.config.parent.mkdir(parents=True, exist_ok=True)
    layout.access_log.parent.mkdir(parents=True, exist_ok=True)
    for kind in _TEMP_KINDS:
        (layout.temp / kind).mkdir(parents=True, exist_ok=True)


class _LogTail:
    """Reads the lines appended to a file since the last call; follows a rotation (a new
    file at the path, or the file cut shorter)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.partial = b""
        with contextlib.suppress(OSError):
            status = path.stat()
            self.inode, self.offset = status.st_ino, status.st_size  # start at the end

    def read(self) -> list[str]:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DriverError(f"cannot read nginx's access log {self.path}: {exc}") from exc
        if status.st_ino != self.inode or status.st_size < self.offset:
            self.inode, self.offset, self.partial = status.st_ino, 0, b""
        if status.st_size == self.offset:
            return []
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = file.read(MAX_READ_BYTES)
        except OSError as exc:
            raise DriverError(f"cannot read nginx's access log {self.path}: {exc}") from exc
        self.offset += len(data)
        data = self.partial + data
        complete, _, self.partial = data.rpartition(b"\n")
        return complete.decode("utf-8", "replace").splitlines() if complete else []


class NginxDriver:
    """Steers one service through a generated nginx configuration and its graceful reload."""

    def __init__(
        self,
        plan: RolloutPlan,
        *,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.settings = _settings(plan)
        self.layout = NginxLayout.of(self.settings)
        self.clock = clock
        self.environ = environ
        self.traffic: Traffic | None = None
        self.promoted = False
        self.applied: str | None = None
        self.shadow_since: float | None = None
        self.tally = Tally(plan.service, self.settings.interval_s)
        self.tally.start(clock())
        self.history: deque[Batch] = deque(maxlen=HISTORY)
        self.tail = _LogTail(self.layout.access_log)
        self.lock = asyncio.Lock()

    async def apply(self, traffic: Traffic) -> None:
        async with self.lock:
            await asyncio.to_thread(self._read_log)  # count what came before the change
            self.traffic, self.promoted = traffic, False
            await asyncio.to_thread(self._install)
        if traffic.shadow > 0:
            if self.shadow_since is None:
                self.shadow_since = self.clock()
        else:
            self.shadow_since = None

    async def promote(self) -> None:
        async with self.lock:
            await asyncio.to_thread(self._read_log)
            self.traffic, self.promoted = Traffic(), True
            await asyncio.to_thread(self._install)
        self.shadow_since = None

    async def batches(self, since: float) -> list[Batch]:
        async with self.lock:
            await asyncio.to_thread(self._read_log)
            if self.traffic is not None and self.traffic.testers:
                await asyncio.to_thread(self._install)  # expired tokens out, new ones in
        return [b for b in self.history if b.ts >= since]

    async def shadow_report(self) -> ShadowReport:
        since = self.shadow_since
        if since is None:
            return ShadowReport(None, 0, 0)
        await self.batches(since)
        copies = [  # the intervals that ended after shadowing started
            b
            for b in self.history
            if b.ts + b.interval_s > since
            and b.version is Version.CANDIDATE
            and b.traffic_class is TrafficClass.SHADOW
        ]
        return ShadowReport(
            None, sent=sum(b.requests for b in copies), failed=sum(b.errors for b in copies)
        )

    async def close(self) -> None:
        """Nothing to release: nginx keeps running the last configuration."""

    # --- blocking parts, run in a thread -------------------------------------------------------

    def _read_log(self) -> None:
        for line in self.tail.read():
            record = parse_log_line(line)
            if record is not None:
                self.tally.add(record)
        self.history.extend(self.tally.flush(self.clock() - LOG_LAG_S))

    def _install(self) -> None:
        """Render, check (nginx -t), put in place and reload; nothing when nothing changed."""
        traffic = self.traffic or Traffic()
        tokens: tuple[str, ...] = ()
        if traffic.testers and self.settings.testers is not None:
            tokens = current_tokens(
                self.settings.testers, self.plan.service, self.clock(), self.environ
            )
        text = render_config(self.plan, traffic, tokens, promoted=self.promoted)
        if text == self.applied:
            return
        _make_dirs(self.layout)
        staged = self.layout.config.with_name(self.layout.config.name + ".new")
        staged.write_text(text, encoding="utf-8")
        self._run("-t", config=staged, what="check the new configuration")
        os.replace(staged, self.layout.config)
        master = self._master()
        before = _children(master) if master is not None else set()
        self._run("-s", "reload", config=self.layout.config, what="reload")
        if master is not None:
            self._await_workers(master, before)
        self.applied = text
        weight = 100.0 if self.promoted else traffic.weight
        self.tally.set_share(_effective_share(weight))

    def _master(self) -> int | None:
        """nginx's master process id (from its pid file), when it runs on this machine."""
        try:
            pid = int(self.layout.pid.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def _await_workers(self, master: int, before: set[int]) -> None:
        """Wait until the master runs workers on the new configuration and the old workers have
        stopped taking connections (they finish the requests they hold). The reload is
        asynchronous: ``nginx -s reload`` only signals the master."""
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while time.monotonic() < deadline:
            children = _children(master)
            if children - before and all(_leaving(pid) for pid in children & before):
                return
            time.sleep(0.01)
        raise DriverError(
            f"nginx (pid {master}) started no worker on the new configuration within "
            f"{RELOAD_TIMEOUT_S:g} s; see {self.layout.error_log}"
        )

    def _run(self, *args: str, config: Path, what: str) -> None:
        command = [
            self.settings.nginx,
            "-q",
            "-e",
            str(self.layout.error_log),
            "-c",
            str(config),
            *args,
        ]
        try:
            done = subprocess.run(  # noqa: S603 - the plan's nginx program, no shell
                command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"nginx: cannot {what}: {' '.join(command)}: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            hint = ""
            if args[:1] == ("-s",) and "pid" in output:
                hint = f" (is nginx running with -c {self.layout.config}?)"
            raise DriverError(f"nginx: cannot {what}{hint}: {output}")


def _children(pid: int) -> set[int]:
    """The process ids whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.add(int(entry.name))
    return found


def _leaving(pid: int) -> bool:
    """Whether nginx worker ``pid`` is shutting down (or gone)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return not title or b"shutting down" in title


def _effective_share(weight: float) -> float:
    """The candidate's share nginx really gives for ``weight`` percent (0.01 % steps)."""
    if weight <= 0:
        return 0.0
    if weight >= 100:
        return 1.0
    return max(round(weight * 100), 1) / 10_000
