"""The non-streaming answer: the same events as the stream, collected into one JSON document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.http.errors import HttpError
from shared.sse import CompleteEvent, ErrorEvent, SseEvent

_STATUS_OF_STREAM_ERRORS = {
    "MODEL_UNAVAILABLE": 503,
    "MODEL_STREAM_INTERRUPTED": 502,
    "TIMEOUT": 504,
}


class StreamEndedInError(HttpError):
    """A turn whose stream would have ended with an `error` event, as a plain JSON error."""

    def __init__(self, event: ErrorEvent) -> None:
        super().__init__(event.message)
        self.status = _STATUS_OF_STREAM_ERRORS.get(event.code, 500)  # type: ignore[misc]
        self.code = event.code  # type: ignore[misc]


def collect_complete(events: Iterable[SseEvent], fields: tuple[str, ...]) -> dict[str, Any]:
    """Run the turn to its end and return `fields` of its `complete` event."""
    for event in events:
        if isinstance(event, ErrorEvent):
            raise StreamEndedInError(event)
        if isinstance(event, CompleteEvent):
            payload = event.to_dict()
            return {name: payload[name] for name in fields if name in payload}
    raise RuntimeError("the turn ended without a complete event")
