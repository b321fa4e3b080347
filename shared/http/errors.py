"""Typed HTTP errors, mapped one to one onto the status table of CONTRACT.md section 2.

Raise one anywhere before the first byte of a response and the adapter answers with its status
and the contract's JSON error body; nothing else needs to know about status codes.
"""

from __future__ import annotations

import json
from typing import ClassVar


class HttpError(Exception):
    """Base of every error that has a status and a stable code the client can switch on."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}

    def body_json(self) -> str:
        return json.dumps(self.body(), separators=(",", ":"), ensure_ascii=False)


class BadRequest(HttpError):
    status, code, default_message = 400, "VALIDATION_ERROR", "invalid request"


class Unauthorized(HttpError):
    status, code, default_message = 401, "UNAUTHORIZED", "authentication required"


class Forbidden(HttpError):
    status, code, default_message = 403, "FORBIDDEN", "forbidden"


class NotFound(HttpError):
    status, code, default_message = 404, "NOT_FOUND", "not found"


class MethodNotAllowed(HttpError):
    status, code, default_message = 405, "METHOD_NOT_ALLOWED", "method not allowed"

    def __init__(self, allowed: list[str], message: str | None = None) -> None:
        super().__init__(message, headers={"Allow": ", ".join(sorted(allowed))})


class Conflict(HttpError):
    status, code, default_message = 409, "CONFLICT", "conflict"


class PayloadTooLarge(HttpError):
    status, code, default_message = 413, "PAYLOAD_TOO_LARGE", "request body too large"


class RateLimited(HttpError):
    status, code, default_message = 429, "RATE_LIMITED", "too many requests"

    def __init__(self, retry_after_seconds: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after_seconds)))})


class StreamingDisabled(HttpError):
    status, code, default_message = 503, "STREAMING_DISABLED", "streaming is disabled; use the fallback API"


class InternalError(HttpError):
    """The only error whose message is fixed: internals never reach the client."""


def error_metric_name(code: str) -> str:
    """One metric per contract error code, named the same wherever it is counted (`MODEL_UNAVAILABLE` ->
    `ErrorsModelUnavailable`)."""
    return f"Errors{code.title().replace('_', '')}"
