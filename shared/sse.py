"""Server-Sent Events: the contract's event models and their wire encoding.

Every event is one `data:` line of compact JSON and a blank line (CONTRACT.md section 2). JSON
escapes newlines, so a `data:` line never breaks whatever text a reply holds.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

KEEP_ALIVE = b": keep-alive\n\n"
SSE_HEADERS: dict[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class SseEvent(BaseModel):
    """Base of every event; `type` tells the client which one it is."""

    model_config = ConfigDict(frozen=True)

    type: str

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class StartEvent(SseEvent):
    type: Literal["start"] = "start"
    status: Literal["initialized"] = "initialized"
    requestId: str  # noqa: N815 - the contract's field name


class ContextualEvent(SseEvent):
    type: Literal["contextual"] = "contextual"
    content: str
    updateType: str  # noqa: N815


class ChunkEvent(SseEvent):
    type: Literal["chunk"] = "chunk"
    content: str


class ProgressEvent(SseEvent):
    type: Literal["progress"] = "progress"
    progressDetails: dict[str, Any]  # noqa: N815


class CompleteEvent(SseEvent):
    """The flow decides the payload (see CONTRACT.md); it rides as extra fields."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: Literal["complete"] = "complete"
    status: Literal["finished"] = "finished"


class ErrorEvent(SseEvent):
    type: Literal["error"] = "error"
    code: str
    message: str


def encode_json(payload: dict[str, Any]) -> str:
    """Compact JSON, UTF-8 kept as is: the smallest `data:` line the browser can parse."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def encode(event: SseEvent | dict[str, Any], event_id: str | None = None) -> bytes:
    """One event on the wire: an optional `id:` line, one `data:` line, one blank line."""
    payload = event.to_dict() if isinstance(event, SseEvent) else event
    data = f"data: {encode_json(payload)}\n\n"
    if event_id is not None:
        if "\n" in event_id or "\r" in event_id:
            raise ValueError("an SSE id cannot hold a line break")
        data = f"id: {event_id}\n{data}"
    return data.encode("utf-8")
