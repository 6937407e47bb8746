"""Use cases of the control plane over ``stageless.store`` and ``stageless.flags``.

The REST API and the CLI go through this package, never through a store backend directly.
``Service`` bundles the use cases over one store::

    service = open_service(settings.database_url)
    written = service.flag_sets.put("web", text, precondition=Precondition(), actor="ci")
    compiled = service.flag_sets.compiled("web")      # for evaluation, cached per version
    service.proxy_configs.put("edge", proxy_yaml, precondition=Precondition(), actor="ci")
    rollout = service.rollouts.start(plan_yaml, actor="ci")   # the runner picks it up
    service.reports.add_json("edge", report_body)              # what a proxy measured
"""

from __future__ import annotations

from stageless.service.admin import AuditService, TokenService
from stageless.service.diff import Change, DocumentDiff, diff_documents
from stageless.service.documents import Checked, check_document
from stageless.service.errors import PreconditionFailedError
from stageless.service.flagsets import (
    Compiled,
    FlagSetService,
    FlagSetView,
    Precondition,
    Written,
)
from stageless.service.hub import ChangeHub, Closed, Listener
from stageless.service.proxyconfigs import (
    CheckedProxyConfig,
    ProxyConfigService,
    ProxyConfigView,
    WrittenProxyConfig,
    check_proxy_config,
)
from stageless.service.reports import Report, ReportService, parse_report
from stageless.service.rollouts import RolloutService, RolloutView
from stageless.store import Store, open_store

__all__ = [
    "AuditService",
    "Change",
    "ChangeHub",
    "Checked",
    "CheckedProxyConfig",
    "Closed",
    "Compiled",
    "DocumentDiff",
    "FlagSetService",
    "FlagSetView",
    "Listener",
    "Precondition",
    "PreconditionFailedError",
    "ProxyConfigService",
    "ProxyConfigView",
    "Report",
    "ReportService",
    "RolloutService",
    "RolloutView",
    "Service",
    "TokenService",
    "Written",
    "WrittenProxyConfig",
    "check_document",
    "check_proxy_config",
    "diff_documents",
    "open_service",
    "parse_report",
]


class Service:
    """Every use case over one store. ``close()`` closes the store if the service opened it."""

    def __init__(self, store: Store, *, owns_store: bool = False) -> None:
        self.store = store
        self.flag_sets = FlagSetService(store)
        self.proxy_configs = ProxyConfigService(store)
        self.rollouts = RolloutService(store)
        self.reports = ReportService(store)
        self.tokens = TokenService(store)
        self.audit = AuditService(store)
        self._owns_store = owns_store

    def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        self.store.ping()

    def close(self) -> None:
        self.flag_sets.close()
        if self._owns_store:
            self.store.close()


def open_service(database_url: str) -> Service:
    """Open the store at ``database_url`` (applying migrations) and wrap it in a ``Service``."""
    return Service(open_store(database_url), owns_store=True)
