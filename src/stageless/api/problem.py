"""RFC 9457 problem details: the one error shape of every route outside /ofrep/v1.

::

    HTTP/1.1 422 Unprocessable Content
    Content-Type: application/problem+json

    {"type": "https://stageless.dev/problems/validation", "title": "Unprocessable Content",
     "status": 422, "detail": "the flag document has 1 problem", "code": "validation",
     "errors": [{"path": "flags.x.defaultVariant", "message": "'blue' is not one of ..."}]}

``code`` is machine-readable and stable; ``errors`` appears only for validation problems. Raise
``Problem`` in an endpoint, or let a ``StagelessError`` escape: the handlers installed by
``install_handlers`` turn both (and Starlette's own 404/405, and anything unexpected) into this
shape. The OFREP routes catch ``Problem`` themselves and answer with the protocol's bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from stageless.errors import ErrorCode, Issue, StagelessError, ValidationError
from stageless.service import PreconditionFailedError

PROBLEM_TYPE_BASE = "https://stageless.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = logging.getLogger("stageless.api")

#: Status of each ``stageless.errors.ErrorCode``.
STATUS_BY_CODE: dict[ErrorCode, int] = {
    ErrorCode.VALIDATION: 422,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.STORE: 503,
    ErrorCode.UPSTREAM: 502,
    ErrorCode.INTERNAL: 500,
}

#: Codes for statuses that arise outside ``StagelessError`` (HTTP-level problems).
CODE_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation",
    500: "internal",
    503: "unavailable",
}


class Problem(Exception):  # noqa: N818  # named for the RFC's term
    """An HTTP problem to answer with; ``code`` defaults to the status's usual code."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str | None = None,
        errors: Iterable[Issue] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or CODE_BY_STATUS.get(status, "error")
        self.errors = tuple(errors)
        self.headers = dict(headers or {})


def problem_body(problem: Problem) -> dict[str, Any]:
    """The JSON object of ``problem``."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + problem.code,
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "detail": problem.detail,
        "code": problem.code,
    }
    if problem.errors:
        body["errors"] = [{"path": i.path, "message": i.message} for i in problem.errors]
    return body


def problem_response(problem: Problem) -> Response:
    """``problem`` as an ``application/problem+json`` response."""
    return JSONResponse(
        problem_body(problem),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def problem_from_error(error: StagelessError) -> Problem:
    """The problem a ``StagelessError`` escaping an endpoint stands for."""
    if isinstance(error, PreconditionFailedError):
        return Problem(412, str(error), code="precondition_failed")
    if isinstance(error, ValidationError):
        count = len(error.issues)
        detail = f"{count} {'problem' if count == 1 else 'problems'} with the input"
        return Problem(422, detail, code=str(error.code), errors=error.issues)
    status = STATUS_BY_CODE.get(error.code, 500)
    detail = str(error) if status != 500 else "internal error"
    return Problem(status, detail, code=str(error.code))


async def _on_problem(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)  # noqa: S101  # registered for Problem only
    return problem_response(exc)


async def _on_stageless_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StagelessError)  # noqa: S101  # registered for StagelessError only
    problem = problem_from_error(exc)
    if problem.status >= 500:
        log.error("request failed: %s", exc, exc_info=exc)
    return problem_response(problem)


async def _on_http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101  # registered for HTTPException only
    if exc.status_code == 404:
        detail = "no such route"
    elif exc.status_code == 405:
        detail = "method not allowed on this route"
    else:
        detail = exc.detail
    return problem_response(Problem(exc.status_code, detail, headers=exc.headers))


async def _on_unexpected(_request: Request, exc: Exception) -> Response:
    # The one broad boundary of the API: anything unexpected becomes a logged 500 problem.
    log.error("unexpected error", exc_info=exc)
    return problem_response(Problem(500, "internal error"))


def install_handlers(app: Starlette) -> None:
    """Make every error answer in the problem shape."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StagelessError, _on_stageless_error)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
