"""The non-streaming answer: the same events as the stream, collected into one JSON document."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.events import CompleteEvent, TurnEvent, TurnFailed


def collect_complete(events: Iterable[TurnEvent], fields: tuple[str, ...]) -> dict[str, Any]:
    """Run the turn to its very end and return `fields` of its `complete` event.

    To the end, not to `complete`: what a turn does after `complete` (handing off the coach build)
    must happen for the fallback too. A turn that ends failed raises its error,
    which the adapter answers with the table's status (a timed-out reply is a 504, an unavailable
    model a 503), as a plain JSON error.
    """
    result: dict[str, Any] | None = None
    for event in events:
        if isinstance(event, TurnFailed):
            raise event.error
        if isinstance(event, CompleteEvent):
            payload = event.to_dict()
            result = {name: payload[name] for name in fields if name in payload}
    if result is None:
        raise RuntimeError("the turn ended without a complete event")
    return result
