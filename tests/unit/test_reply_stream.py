"""`stream_reply` on its own: how each way a model reply can end shows up in the chunks and the outcome.

(The stalled fallback call is covered in `test_conversation_pieces.py`.)
"""

from __future__ import annotations

import itertools
import time

import pytest

from shared.errors import ReplyInterrupted, ReplyTimedOut, ReplyUnavailable
from shared.models import Message, ModelRequest
from shared.reply_stream import ReplyOutcome, TextFilter, stream_reply
from tests.fakes import (
    RecordedMetrics,
    StreamingModel,
    StreamScript,
    interrupted_after,
    reply,
    stalls_after,
    unavailable,
)
from tests.fakes.model import CONVERSE_USAGE, STREAM_USAGE

REPLY = "reply-model"
REQUEST = ModelRequest(REPLY, (Message("user", "How do I brace?"),))
FALLBACK = "Breathe in, brace your core like you are about to be poked, then lift."


class Shout:
    """A filter that changes what it is fed and adds a tail at the end, so both parts show."""

    def feed(self, delta: str) -> str:
        return delta.upper()

    def finish(self) -> str:
        return "!"


def streamed(
    model: StreamingModel,
    seconds: float = 5.0,
    text_filter: TextFilter | None = None,
    metrics: RecordedMetrics | None = None,
) -> tuple[list[str], ReplyOutcome]:
    """The chunks' texts and the outcome, with a clock that counts 1, 2, 3... for `first_token_at`."""
    outcome = ReplyOutcome()
    ticks = itertools.count(1)
    events = stream_reply(
        model,
        REQUEST,
        time.monotonic() + seconds,
        outcome,
        text_filter=text_filter,
        observe=metrics or RecordedMetrics(),
        clock=lambda: float(next(ticks)),
    )
    return [event.content for event in events], outcome


def test_deltas_pass_through_and_the_outcome_holds_the_streams_usage() -> None:
    chunks, outcome = streamed(StreamingModel(reply("Hel", "lo", "", " there")))
    assert chunks == ["Hel", "lo", " there"]
    assert (outcome.text, outcome.status, outcome.error, outcome.fallback) == ("Hello there", "complete", None, False)
    assert (outcome.model_id, outcome.input_tokens, outcome.output_tokens, outcome.latency_ms) == (
        REPLY,
        STREAM_USAGE.input_tokens,
        STREAM_USAGE.output_tokens,
        40,
    )
    assert outcome.first_token_at == 1.0, "stamped once, when the first text is shown"


def test_an_empty_reply_completes_without_chunks_or_a_first_token() -> None:
    chunks, outcome = streamed(StreamingModel(reply()))
    assert (chunks, outcome.text, outcome.status, outcome.first_token_at) == ([], "", "complete", None)
    assert outcome.output_tokens == STREAM_USAGE.output_tokens


def test_a_stream_failing_before_its_first_token_falls_back_in_word_groups() -> None:
    model = StreamingModel(unavailable(), answers={REPLY: [FALLBACK]})
    metrics = RecordedMetrics()
    chunks, outcome = streamed(model, metrics=metrics)

    assert "".join(chunks) == FALLBACK
    assert len(chunks) == 3 and all(len(chunk.split()) <= 6 for chunk in chunks)
    assert (outcome.text, outcome.status, outcome.error, outcome.fallback) == (FALLBACK, "complete", None, True)
    assert (outcome.input_tokens, outcome.output_tokens, outcome.latency_ms) == (
        CONVERSE_USAGE.input_tokens,
        CONVERSE_USAGE.output_tokens,
        7,
    )
    assert outcome.first_token_at == 1.0
    assert model.converse_requests == [REQUEST]
    assert metrics.values("Fallbacks") == [1]


def test_when_the_fallback_fails_too_the_reply_is_unavailable() -> None:
    chunks, outcome = streamed(StreamingModel(unavailable()))
    assert (chunks, outcome.text, outcome.fallback) == ([], "", False)
    assert (outcome.status, type(outcome.error)) == ("interrupted", ReplyUnavailable)


def test_a_stream_broken_after_text_is_interrupted_with_what_was_shown_and_no_fallback() -> None:
    model = StreamingModel(interrupted_after("Half ", "a "), answers={REPLY: [FALLBACK]})
    chunks, outcome = streamed(model)
    assert chunks == ["Half ", "a "]
    assert (outcome.text, outcome.status, type(outcome.error)) == ("Half a ", "interrupted", ReplyInterrupted)
    assert model.converse_requests == []


def test_a_stream_stalled_past_the_deadline_times_out_with_what_was_shown() -> None:
    model = StreamingModel(stalls_after("Slow "))
    started = time.monotonic()
    try:
        chunks, outcome = streamed(model, seconds=0.2)
    finally:
        model.release()
    assert time.monotonic() - started < 1.0
    assert chunks == ["Slow "]
    assert (outcome.text, outcome.status, type(outcome.error)) == ("Slow ", "timeout", ReplyTimedOut)


def test_a_deadline_already_past_times_out_before_any_text() -> None:
    chunks, outcome = streamed(StreamingModel(reply("late", delay=0.2)), seconds=-1)
    assert (chunks, outcome.text, outcome.status, type(outcome.error)) == ([], "", "timeout", ReplyTimedOut)


def test_an_unexpected_error_propagates_with_the_reply_marked_interrupted() -> None:
    model = StreamingModel(StreamScript(deltas=("Par", "tial"), fail_at=1, error=RuntimeError("adapter bug")))
    outcome = ReplyOutcome()
    events = stream_reply(model, REQUEST, time.monotonic() + 5, outcome)
    assert next(events).content == "Par"
    with pytest.raises(RuntimeError, match="adapter bug"):
        next(events)
    assert (outcome.text, outcome.status, outcome.error) == ("Par", "interrupted", None)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: StreamingModel(reply("brace ", "hard")), id="streamed"),
        pytest.param(lambda: StreamingModel(unavailable(), answers={REPLY: ["brace hard"]}), id="fallback"),
    ],
)
def test_the_text_filter_decides_what_is_shown_on_both_paths(model) -> None:
    chunks, outcome = streamed(model(), text_filter=Shout())
    assert "".join(chunks) == outcome.text == "BRACE HARD!"
