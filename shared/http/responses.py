"""What a handler returns: status, headers, cookies and a body that may still be in the making."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.events import SseEvent, TurnFailed
from shared.http.sse import SSE_HEADERS, encode, encode_json

BodyItem = SseEvent | TurnFailed | bytes | str


@dataclass
class StreamingResponse:
    """A response whose body is produced while it is being sent.

    The body is pulled lazily: work done before its first item (auth, loading, validation) may
    still raise a `CoachError` and turn into a plain JSON error response with a real status.
    """

    body: Iterable[BodyItem]
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: dict(SSE_HEADERS))
    cookies: list[str] = field(default_factory=list)


@dataclass
class JsonResponse:
    """A whole JSON answer: errors before the stream, and the non-streaming API."""

    payload: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)

    def as_streaming(self) -> StreamingResponse:
        headers = {"Content-Type": "application/json", **self.headers}
        return StreamingResponse(
            body=[encode_json(self.payload).encode("utf-8")],
            status=self.status,
            headers=headers,
            cookies=list(self.cookies),
        )


def encode_item(item: BodyItem) -> bytes:
    """Bytes for one body item: events are SSE-encoded, text is UTF-8, bytes pass through."""
    if isinstance(item, SseEvent | TurnFailed):
        return encode(item)
    if isinstance(item, str):
        return item.encode("utf-8")
    return bytes(item)
