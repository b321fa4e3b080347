"""The one table from failures to the contract's statuses and codes (CONTRACT.md section 2).

The domain raises `shared.errors` classes, which know nothing of HTTP; every exit (the streaming
adapter, the fallbacks, the REST resolver, a turn's final `error` event) asks `Problem.of` what to
say. Two failures exist only at the HTTP edge and are defined here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from shared.errors import (
    CoachError,
    Conflict,
    Forbidden,
    IdempotencyMismatch,
    InternalError,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    RateLimited,
    ReplyInterrupted,
    ReplyTimedOut,
    ReplyUnavailable,
    StreamingDisabled,
)
from shared.events import ErrorEvent


class MethodNotAllowed(CoachError):
    default_message = "method not allowed"

    def __init__(self, allowed: Iterable[str], message: str | None = None) -> None:
        super().__init__(message)
        self.allowed = sorted(allowed)


class PayloadTooLarge(InvalidRequest):
    default_message = "request body too large"


@dataclass(frozen=True)
class ErrorStatus:
    status: int
    code: str


ERROR_STATUSES = MappingProxyType(
    {
        InvalidRequest: ErrorStatus(400, "VALIDATION_ERROR"),
        NotAuthenticated: ErrorStatus(401, "UNAUTHORIZED"),
        Forbidden: ErrorStatus(403, "FORBIDDEN"),
        NotFound: ErrorStatus(404, "NOT_FOUND"),
        MethodNotAllowed: ErrorStatus(405, "METHOD_NOT_ALLOWED"),
        Conflict: ErrorStatus(409, "CONFLICT"),
        IdempotencyMismatch: ErrorStatus(409, "IDEMPOTENCY_MISMATCH"),
        PayloadTooLarge: ErrorStatus(413, "PAYLOAD_TOO_LARGE"),
        RateLimited: ErrorStatus(429, "RATE_LIMITED"),
        InternalError: ErrorStatus(500, "INTERNAL_ERROR"),
        ReplyInterrupted: ErrorStatus(502, "MODEL_STREAM_INTERRUPTED"),
        ReplyUnavailable: ErrorStatus(503, "MODEL_UNAVAILABLE"),
        StreamingDisabled: ErrorStatus(503, "STREAMING_DISABLED"),
        ReplyTimedOut: ErrorStatus(504, "TIMEOUT"),
    }
)
"""Looked up along the class's MRO, so a subclass (a store's `RecordNotFound`) answers as its base."""


def error_status(error: BaseException) -> ErrorStatus:
    for cls in type(error).__mro__:
        found = ERROR_STATUSES.get(cls)  # type: ignore[call-overload]
        if found is not None:
            return found
    return ERROR_STATUSES[InternalError]


@dataclass(frozen=True)
class Problem:
    """What the client is told about one failure: status, contract code, message, extra headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, error: BaseException) -> Problem:
        """Anything that is not a `CoachError`, and every `InternalError`, says only "internal error"."""
        known = error_status(error)
        if not isinstance(error, CoachError) or known.code == "INTERNAL_ERROR":
            return cls(known.status, known.code, InternalError.default_message)
        return cls(known.status, known.code, error.message, _headers(error))

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}

    def body_json(self) -> str:
        return json.dumps(self.body(), separators=(",", ":"), ensure_ascii=False)

    def event(self) -> ErrorEvent:
        return ErrorEvent(code=self.code, message=self.message)


def _headers(error: CoachError) -> dict[str, str]:
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after_seconds)}
    if isinstance(error, MethodNotAllowed):
        return {"Allow": ", ".join(error.allowed)}
    return {}


def error_metric_name(code: str) -> str:
    """One metric per contract error code, named the same wherever it is counted (`MODEL_UNAVAILABLE` ->
    `ErrorsModelUnavailable`)."""
    return f"Errors{code.title().replace('_', '')}"
