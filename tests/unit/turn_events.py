"""Reading a turn's events in tests: what was streamed, in which order, and how the turn ended."""

from __future__ import annotations

from collections.abc import Iterator

from shared.events import ChunkEvent, TurnEvent, TurnFailed


def chunks(events: list[TurnEvent]) -> list[str]:
    return [event.content for event in events if isinstance(event, ChunkEvent)]


def kinds(events: list[TurnEvent]) -> list[str]:
    return [type(event).__name__ for event in events]


def failure(events: list[TurnEvent]) -> type[Exception] | None:
    """The class of the error the turn ended with, None if it ended any other way."""
    last = events[-1]
    return type(last.error) if isinstance(last, TurnFailed) else None


def leave_after_first_chunk(events: Iterator[TurnEvent]) -> None:
    """The client going away: the turn is read up to its first chunk, then closed."""
    for event in events:
        if isinstance(event, ChunkEvent):
            break
    events.close()  # type: ignore[attr-defined] - a generator
