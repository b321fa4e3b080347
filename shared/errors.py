"""What can go wrong, in the domain's words: no status codes, no contract codes, no HTTP.

Raise one anywhere before a turn's first event and the caller's exit (the streaming adapter, the
fallbacks, the REST resolver) answers with the status and code that `shared.http.errors` maps it
to. The three `Reply…` failures happen after the first event too: a turn then ends with them as its
last event instead of raising.
"""

from __future__ import annotations

from typing import ClassVar


class CoachError(Exception):
    """Base of every failure the client is told about; `message` is meant for a person to read."""

    default_message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidRequest(CoachError):
    default_message = "invalid request"


class NotAuthenticated(CoachError):
    default_message = "authentication required"


class Forbidden(CoachError):
    default_message = "forbidden"


class NotFound(CoachError):
    default_message = "not found"


class Conflict(CoachError):
    default_message = "conflict"


class IdempotencyMismatch(CoachError):
    """A `clientMessageId` already used in this conversation or session with different content."""

    default_message = "this clientMessageId was already used for a different message"


class RateLimited(CoachError):
    default_message = "too many requests"

    def __init__(self, retry_after_seconds: float, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, int(retry_after_seconds))


class StreamingDisabled(CoachError):
    default_message = "streaming is disabled; use the fallback API"


class ReplyUnavailable(CoachError):
    """Neither the stream nor the one non-streaming retry produced a reply."""

    default_message = "the coach is unavailable; please try again"


class ReplyInterrupted(CoachError):
    """The model's stream broke after the user had seen part of the reply."""

    default_message = "the reply was cut off"


class ReplyTimedOut(CoachError):
    default_message = "the reply took too long and was stopped"


class InternalError(CoachError):
    """The only failure whose message is fixed wherever it is shown: internals never reach the client."""
