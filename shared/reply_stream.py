"""Stream one model reply as `chunk` events, with every failure the contract names handled once.

Both flows use it: the conversation passes text through as is, the coach creator passes it through
its marker filter. Whatever happens, `ReplyOutcome` ends up holding the text the user saw and how
the reply ended, so the caller can store it (whole or partial) before saying `complete` or `error`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from shared.deadline import DeadlineExceeded, call_before_deadline, until_deadline
from shared.errors import CoachError, ReplyInterrupted, ReplyTimedOut, ReplyUnavailable
from shared.events import ChunkEvent
from shared.models import (
    ModelError,
    ModelPort,
    ModelRequest,
    ModelStreamInterrupted,
    ModelUnavailable,
    StreamEnd,
    TextDelta,
)
from shared.store.records import MessageStatus

logger = logging.getLogger(__name__)

_FALLBACK_PIECE = re.compile(r"\S+\s*(?:\S+\s*){0,5}")


class TextFilter(Protocol):
    """Decides what of the model's text the user sees (`feed` per delta, `finish` at the end)."""

    def feed(self, delta: str) -> str: ...

    def finish(self) -> str: ...


class PassThrough:
    def feed(self, delta: str) -> str:
        return delta

    def finish(self) -> str:
        return ""


@dataclass
class ReplyOutcome:
    text: str = ""
    status: MessageStatus = "complete"
    error: CoachError | None = None
    model_id: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    fallback: bool = False
    latency_ms: int | None = None
    first_token_at: float | None = None  # time.monotonic() of the first text shown


def stream_reply(
    model: ModelPort,
    request: ModelRequest,
    deadline: float,
    outcome: ReplyOutcome,
    text_filter: TextFilter | None = None,
    observe: Callable[[str, float], None] = lambda name, value: None,
    clock: Callable[[], float] | None = None,
) -> Iterator[ChunkEvent]:
    """Yield the reply's chunks; on failure fill `outcome.status`/`outcome.error` instead of raising.

    Before any text, a failed stream falls back to one non-streaming call; after text, the turn ends
    with `MODEL_STREAM_INTERRUPTED`; past `deadline` (a `time.monotonic()` value) with `TIMEOUT`.
    Anything unexpected propagates, with `outcome.status` already set to interrupted.
    """
    now = clock or time.monotonic
    shown = text_filter or PassThrough()

    def show(text: str) -> Iterator[ChunkEvent]:
        if text:
            if outcome.first_token_at is None:
                outcome.first_token_at = now()
            outcome.text += text
            yield ChunkEvent(content=text)

    try:
        for event in until_deadline(model.stream(request), deadline):
            if isinstance(event, TextDelta):
                yield from show(shown.feed(event.text))
            elif isinstance(event, StreamEnd):
                _record_usage(outcome, event.model_id, event.usage.input_tokens, event.usage.output_tokens)
                outcome.latency_ms = event.latency_ms
        yield from show(shown.finish())
    except ModelUnavailable as exc:
        logger.warning("reply stream failed before its first token (%s); trying the fallback", exc.cause)
        yield from _fallback(model, request, deadline, outcome, shown, observe, show)
    except ModelStreamInterrupted as exc:
        logger.warning("reply stream interrupted after %d characters (%s)", len(outcome.text), exc.cause)
        outcome.status = "interrupted"
        outcome.error = ReplyInterrupted()
    except DeadlineExceeded:
        _timed_out(outcome)
    except BaseException:
        outcome.status = "interrupted"
        raise


def _timed_out(outcome: ReplyOutcome) -> None:
    outcome.status = "timeout"
    outcome.error = ReplyTimedOut()


def _fallback(
    model: ModelPort,
    request: ModelRequest,
    deadline: float,
    outcome: ReplyOutcome,
    shown: TextFilter,
    observe: Callable[[str, float], None],
    show: Callable[[str], Iterator[ChunkEvent]],
) -> Iterator[ChunkEvent]:
    observe("Fallbacks", 1)
    try:
        # Bounded by the turn's deadline too: its attempts and read timeouts could outlast the function.
        reply = call_before_deadline(lambda: model.converse(request), deadline)
    except DeadlineExceeded:
        logger.error("fallback call did not answer before the turn's deadline")
        _timed_out(outcome)
        return
    except ModelError as exc:
        logger.error("fallback call failed too (%s)", exc.cause)
        outcome.status = "interrupted"
        outcome.error = ReplyUnavailable()
        return
    outcome.fallback = True
    _record_usage(outcome, reply.model_id, reply.usage.input_tokens, reply.usage.output_tokens)
    outcome.latency_ms = reply.latency_ms
    text = shown.feed(reply.text) + shown.finish()
    for piece in _FALLBACK_PIECE.findall(text) or [text]:
        yield from show(piece)


def _record_usage(outcome: ReplyOutcome, model_id: str, input_tokens: int, output_tokens: int) -> None:
    outcome.model_id = model_id
    outcome.input_tokens = input_tokens
    outcome.output_tokens = output_tokens
