"""The control plane's HTTP API: a Starlette ASGI app served by uvicorn.

``create_app(settings, store=None)`` builds it; ``stageless serve`` runs it. Routes: the REST
API under /api/v1 (``flagsets``, ``audit``, ``streams``, ``system``) and OFREP under /ofrep/v1
(``ofrep``). Every route module reads the app's ``AppContext`` (``context``); errors outside
/ofrep/v1 answer in one problem+json shape (``problem``).
"""

from stageless.api.app import create_app
from stageless.api.auth import Principal, require
from stageless.api.context import AppContext, get_context
from stageless.api.problem import Problem

__all__ = ["AppContext", "Principal", "Problem", "create_app", "get_context", "require"]
