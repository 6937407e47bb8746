"""The REST client: one ``httpx.Client``, typed results, problem+json turned into exceptions."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

import httpx

from stageless.client.rollouts import RolloutInfo, RolloutRequestInfo, TransitionInfo
from stageless.errors import ErrorCode, Issue, StagelessError, UpstreamError

DEFAULT_SERVER = "http://127.0.0.1:7411"
"""Where ``stageless serve`` listens by default."""
DEFAULT_TIMEOUT = 10.0
_ROLLOUTS = "/api/v1/rollouts"
_MEDIA_TYPES = {"json": "application/json", "yaml": "application/yaml"}


class ApiError(StagelessError):
    """The server refused a request; the fields come from its problem+json body.

    Attributes:
        status: the HTTP status (401, 404, 412, 422, ...).
        problem_code: the machine-readable ``code`` (``validation``, ``not_found``, ...).
        detail: the server's explanation in plain words.
        issues: for a rejected document, every problem with its JSON path.
    """

    code = ErrorCode.UPSTREAM

    def __init__(
        self, status: int, problem_code: str, detail: str, issues: tuple[Issue, ...] = ()
    ) -> None:
        self.status = status
        self.problem_code = problem_code
        self.detail = detail
        self.issues = issues
        lines = "".join(f"\n  {issue}" for issue in issues)
        super().__init__(f"{detail} (HTTP {status}, {problem_code}){lines}")


class ServerUnreachableError(UpstreamError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""


@dataclass(frozen=True, slots=True)
class FlagSetSummary:
    """One row of ``GET /api/v1/flag-sets``."""

    name: str
    version: int
    etag: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class FlagSetInfo:
    """A flag set as ``GET /api/v1/flag-sets/{name}`` returns it."""

    name: str
    version: int
    etag: str
    document: Mapping[str, Any]
    created_at: str
    updated_at: str
    warnings: tuple[Issue, ...]
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AppliedFlagSet:
    """The result of a PUT: the stored flag set and whether it was created."""

    flag_set: FlagSetInfo
    created: bool


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One entry of a flag set's history."""

    flag_set: str
    version: int
    etag: str
    author: str
    message: str
    created_at: str


@dataclass(frozen=True, slots=True)
class ProxyConfigSummary:
    """One row of ``GET /api/v1/proxy-configs``."""

    name: str
    version: int
    etag: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class ProxyConfigInfo:
    """A proxy config as ``GET /api/v1/proxy-configs/{name}`` returns it (secrets are
    ``redacted:sha256:…`` fingerprints unless the token is admin or the bound proxy token)."""

    name: str
    version: int
    etag: str
    document: Mapping[str, Any]
    created_at: str
    updated_at: str
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AppliedProxyConfig:
    """The result of a PUT: the stored proxy config and whether it was created."""

    proxy_config: ProxyConfigInfo
    created: bool


@dataclass(frozen=True, slots=True)
class ProxyConfigVersionInfo:
    """One entry of a proxy config's history."""

    proxy_config: str
    version: int
    etag: str
    author: str
    message: str
    created_at: str


class ControlPlaneClient:
    """Talks to one control plane with one token. Use as a context manager, or ``close()``."""

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.server = server.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- flag sets ----------------------------------------------------------------------

    def list_flag_sets(self) -> list[FlagSetSummary]:
        body = self._json("GET", "/api/v1/flag-sets")
        return [
            FlagSetSummary(row["name"], row["version"], row["etag"], row.get("updated_at", ""))
            for row in body.get("flag_sets", [])
        ]

    def get_flag_set(self, name: str) -> FlagSetInfo:
        return _flag_set(self._json("GET", _path(name)))

    def apply_flag_set(
        self,
        name: str,
        document: bytes | str,
        *,
        format: Literal["json", "yaml"] | None = None,  # noqa: A002 (the docs' word)
        message: str | None = None,
        if_match: str | None = None,
    ) -> AppliedFlagSet:
        """Create or replace ``name`` with ``document`` (flagd JSON or YAML text).

        ``if_match`` (an ETag) makes it an update of exactly that version (412 otherwise).
        """
        headers = _write_headers(format, message, if_match)
        content = document.encode() if isinstance(document, str) else document
        response = self._send("PUT", _path(name), content=content, headers=headers)
        return AppliedFlagSet(_flag_set(response.json()), response.status_code == 201)

    def delete_flag_set(self, name: str, *, if_match: str | None = None) -> None:
        headers = {"If-Match": _quoted(if_match)} if if_match else {}
        self._send("DELETE", _path(name), headers=headers)

    def list_versions(self, name: str, *, limit: int = 100) -> list[VersionInfo]:
        body = self._json("GET", _path(name) + "/versions", params={"limit": limit})
        return [
            VersionInfo(
                row["flag_set"],
                row["version"],
                row["etag"],
                row.get("author", ""),
                row.get("message", ""),
                row.get("created_at", ""),
            )
            for row in body.get("versions", [])
        ]

    # --- proxy configs ---------------------------------------------------------------------

    def list_proxy_configs(self) -> list[ProxyConfigSummary]:
        """Every proxy config: name, version, ETag, last update."""
        body = self._json("GET", "/api/v1/proxy-configs")
        return [
            ProxyConfigSummary(row["name"], row["version"], row["etag"], row.get("updated_at", ""))
            for row in body.get("proxy_configs", [])
        ]

    def get_proxy_config(self, name: str) -> ProxyConfigInfo:
        return _proxy_config(self._json("GET", _proxy_path(name)))

    def apply_proxy_config(
        self,
        name: str,
        document: bytes | str,
        *,
        format: Literal["json", "yaml"] | None = None,  # noqa: A002 (the docs' word)
        message: str | None = None,
        if_match: str | None = None,
    ) -> AppliedProxyConfig:
        """Create or replace proxy config ``name`` with ``document`` (proxy YAML or JSON).

        The server validates it as the proxy will (422: ``ApiError.issues`` names each path);
        ``if_match`` (an ETag) makes it an update of exactly that version (412 otherwise).
        """
        headers = _write_headers(format, message, if_match)
        content = document.encode() if isinstance(document, str) else document
        response = self._send("PUT", _proxy_path(name), content=content, headers=headers)
        return AppliedProxyConfig(_proxy_config(response.json()), response.status_code == 201)

    def delete_proxy_config(self, name: str, *, if_match: str | None = None) -> None:
        headers = {"If-Match": _quoted(if_match)} if if_match else {}
        self._send("DELETE", _proxy_path(name), headers=headers)

    def list_proxy_config_versions(
        self, name: str, *, limit: int = 100
    ) -> list[ProxyConfigVersionInfo]:
        body = self._json("GET", _proxy_path(name) + "/versions", params={"limit": limit})
        return [
            ProxyConfigVersionInfo(
                row["proxy_config"],
                row["version"],
                row["etag"],
                row.get("author", ""),
                row.get("message", ""),
                row.get("created_at", ""),
            )
            for row in body.get("versions", [])
        ]

    # --- rollouts ------------------------------------------------------------------------

    def start_rollout(
        self,
        plan: bytes | str,
        *,
        format: Literal["json", "yaml"] | None = None,  # noqa: A002 (the docs' word)
    ) -> RolloutInfo:
        """Start a rollout from ``plan`` (YAML or JSON). 422: ``ApiError.issues`` names each bad
        path of the plan; 409: its service has a rollout running."""
        headers = _write_headers(format, None, None)
        content = plan.encode() if isinstance(plan, str) else plan
        body = self._json("POST", _ROLLOUTS, content=content, headers=headers)
        return RolloutInfo.from_json(body)

    def list_rollouts(
        self, *, status: Literal["running", "finished"] | None = None, limit: int = 100
    ) -> list[RolloutInfo]:
        """Rollouts, newest first (``status``: only running or only finished ones)."""
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status
        body = self._json("GET", _ROLLOUTS, params=params)
        return [RolloutInfo.from_json(row) for row in body.get("rollouts", [])]

    def get_rollout(self, rollout: str) -> RolloutInfo:
        return RolloutInfo.from_json(self._json("GET", _rollout_path(rollout)))

    def request_rollout(
        self,
        rollout: str,
        action: Literal["pause", "resume", "promote", "abort", "approve"],
        *,
        message: str | None = None,
    ) -> RolloutRequestInfo:
        """Ask ``rollout`` to ``action``; the instance running it acts within a tick.
        ``message`` is the reason kept in the history. 409: it cannot take this now."""
        headers = {"X-Stageless-Message": message} if message else {}
        body = self._json("POST", f"{_rollout_path(rollout)}/{action}", headers=headers)
        return RolloutRequestInfo.from_json(body["request"])

    def rollout_history(
        self, rollout: str, *, after: int = 0, limit: int = 100
    ) -> list[TransitionInfo]:
        """The rollout's transitions, oldest first, after sequence number ``after``."""
        params = {"after": after, "limit": limit}
        body = self._json("GET", f"{_rollout_path(rollout)}/history", params=params)
        return [TransitionInfo.from_json(row) for row in body.get("transitions", [])]

    def send_proxy_report(
        self,
        proxy_config: str,
        batches: Sequence[Mapping[str, Any]],
        diff: Mapping[str, Any] | None,
    ) -> int:
        """Report batches and a diff delta for ``proxy_config`` (as a proxy does, with its
        proxy token); the number of batches the control plane took."""
        body = self._json(
            "POST",
            _proxy_path(proxy_config) + "/reports",
            json={"batches": list(batches), "diff": diff},
        )
        return int(body["accepted"])

    # --- plumbing -------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerUnreachableError(
                f"cannot reach the control plane at {self.server}: {exc or type(exc).__name__}"
            ) from exc
        if response.is_success:
            return response
        raise _api_error(response)


def _path(name: str) -> str:
    return f"/api/v1/flag-sets/{quote(name, safe='')}"


def _rollout_path(rollout: str) -> str:
    return f"{_ROLLOUTS}/{quote(rollout, safe='')}"


def _proxy_path(name: str) -> str:
    return f"/api/v1/proxy-configs/{quote(name, safe='')}"


def _write_headers(
    format: Literal["json", "yaml"] | None,  # noqa: A002 (the docs' word)
    message: str | None,
    if_match: str | None,
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if format is not None:
        headers["Content-Type"] = _MEDIA_TYPES[format]
    if message:
        headers["X-Stageless-Message"] = message
    if if_match:
        headers["If-Match"] = _quoted(if_match)
    return headers


def _quoted(etag: str) -> str:
    return etag if etag.startswith(('"', "W/")) else f'"{etag}"'


def _flag_set(body: Mapping[str, Any]) -> FlagSetInfo:
    return FlagSetInfo(
        name=body["name"],
        version=body["version"],
        etag=body["etag"],
        document=body.get("document") or {},
        created_at=body.get("created_at", ""),
        updated_at=body.get("updated_at", ""),
        warnings=tuple(_issues(body.get("warnings"))),
        raw=body,
    )


def _proxy_config(body: Mapping[str, Any]) -> ProxyConfigInfo:
    return ProxyConfigInfo(
        name=body["name"],
        version=body["version"],
        etag=body["etag"],
        document=body.get("document") or {},
        created_at=body.get("created_at", ""),
        updated_at=body.get("updated_at", ""),
        raw=body,
    )


def _issues(rows: Any) -> list[Issue]:
    if not isinstance(rows, list):
        return []
    return [
        Issue(str(row.get("path", "")), str(row.get("message", "")))
        for row in rows
        if isinstance(row, dict)
    ]


def _api_error(response: httpx.Response) -> ApiError:
    """An ``ApiError`` from a problem+json body, or from the bare status if there is none."""
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    status = response.status_code
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        code = body.get("code")
        return ApiError(
            status,
            code if isinstance(code, str) else "error",
            body["detail"],
            tuple(_issues(body.get("errors"))),
        )
    return ApiError(status, "error", f"{response.reason_phrase or 'HTTP error'}")


__all__ = [
    "DEFAULT_SERVER",
    "ApiError",
    "AppliedFlagSet",
    "AppliedProxyConfig",
    "ControlPlaneClient",
    "FlagSetInfo",
    "FlagSetSummary",
    "ProxyConfigInfo",
    "ProxyConfigSummary",
    "ProxyConfigVersionInfo",
    "ServerUnreachableError",
    "VersionInfo",
]
