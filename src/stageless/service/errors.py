"""Errors the service adds to ``stageless.errors``: a failed precondition.

``ConflictError`` from the store means "the flag set moved on" or "it already exists"; when the
caller stated a precondition (an ETag to match, or create-only), that is a failed precondition,
which the API answers with 412 rather than 409.
"""

from __future__ import annotations

from stageless.errors import ConflictError


class PreconditionFailedError(ConflictError):
    """The caller's precondition (``If-Match`` ETag, or create-only) does not hold."""
