"""Server-Sent Events on the wire: one `data:` line of compact JSON and a blank line per event.

JSON escapes newlines, so a `data:` line never breaks whatever text a reply holds. A `TurnFailed`
is written as the contract's `error` event, its code and message taken from the error table.
"""

from __future__ import annotations

import json
from typing import Any

from shared.events import SseEvent, TurnEvent, TurnFailed
from shared.http.errors import Problem

KEEP_ALIVE = b": keep-alive\n\n"
SSE_HEADERS: dict[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def encode_json(payload: Any) -> str:
    """Compact JSON, UTF-8 kept as is: the smallest `data:` line the browser can parse."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def wire_event(event: TurnEvent) -> SseEvent:
    """The contract event a turn event is sent as."""
    return Problem.of(event.error).event() if isinstance(event, TurnFailed) else event


def encode(event: TurnEvent | dict[str, Any], event_id: str | None = None) -> bytes:
    """One event on the wire: an optional `id:` line, one `data:` line, one blank line."""
    payload = event if isinstance(event, dict) else wire_event(event).to_dict()
    data = f"data: {encode_json(payload)}\n\n"
    if event_id is not None:
        if "\n" in event_id or "\r" in event_id:
            raise ValueError("an SSE id cannot hold a line break")
        data = f"id: {event_id}\n{data}"
    return data.encode("utf-8")
