"""A typed Python client for the control plane's REST API (``/api/v1``).

The ``stageless flags list|get|apply|delete|history`` and ``stageless proxy-config`` commands
are a thin presentation layer over it; scripts, tests and benchmarks use it directly::

    with ControlPlaneClient("http://127.0.0.1:7411", token) as client:
        applied = client.apply_flag_set("web", Path("flags.yaml").read_bytes(), format="yaml")
        print(applied.flag_set.version)

Every refusal raises :class:`ApiError` built from the server's RFC 9457 problem body (``status``,
``problem_code``, ``detail`` and, for a rejected document, ``issues`` with each JSON path); a
server that cannot be reached raises :class:`ServerUnreachableError`.
"""

from stageless.client.rest import (
    DEFAULT_SERVER,
    ApiError,
    AppliedFlagSet,
    AppliedProxyConfig,
    ControlPlaneClient,
    FlagSetInfo,
    FlagSetSummary,
    ProxyConfigInfo,
    ProxyConfigSummary,
    ProxyConfigVersionInfo,
    ServerUnreachableError,
    VersionInfo,
)
from stageless.client.rollouts import RolloutInfo, RolloutRequestInfo, TransitionInfo

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
    "RolloutInfo",
    "RolloutRequestInfo",
    "ServerUnreachableError",
    "TransitionInfo",
    "VersionInfo",
]
