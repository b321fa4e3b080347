"""A `ModelPort` double scripted call by call: streams that answer, stall or break where a test says.

It keeps the port's promise about failures (`ModelUnavailable` before the first delta,
`ModelStreamInterrupted` with the partial text after it), so the code under test meets the same
errors a real adapter raises. `converse` answers per model id, so the router (side model) and the
fallback (reply model) can be scripted apart even when they run concurrently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from shared.models import ModelEvent, ModelPort, ModelReply, ModelRequest, StreamEnd, TextDelta, Usage
from shared.models.port import ModelStreamInterrupted, ModelUnavailable

STREAM_USAGE = Usage(input_tokens=21, output_tokens=13)
CONVERSE_USAGE = Usage(input_tokens=8, output_tokens=5)


@dataclass(frozen=True)
class StreamScript:
    """One `stream` call: its deltas, and where (after how many deltas) it fails or stalls."""

    deltas: tuple[str, ...] = ()
    delay: float = 0.0  # seconds before each delta
    fail_at: int | None = None
    stall_at: int | None = None  # blocks until `StreamingModel.release()` (or its stall timeout), then goes on
    error: Exception | None = None  # raised at `fail_at` instead of the port's own error
    usage: Usage = STREAM_USAGE
    latency_ms: int = 40


def reply(*deltas: str, delay: float = 0.0) -> StreamScript:
    return StreamScript(deltas=deltas, delay=delay)


def unavailable() -> StreamScript:
    """Throttled (or any failure) before the first token: the caller may fall back."""
    return StreamScript(fail_at=0)


def interrupted_after(*deltas: str) -> StreamScript:
    return StreamScript(deltas=(*deltas, "never shown"), fail_at=len(deltas))


def stalls_after(*deltas: str, then: Sequence[str] = ("too late",)) -> StreamScript:
    return StreamScript(deltas=(*deltas, *then), stall_at=len(deltas))


class StreamingModel(ModelPort):
    def __init__(
        self,
        *streams: StreamScript,
        answers: Mapping[str, Sequence[str | Exception]] | None = None,
        stall_timeout: float = 2.0,
        answer_delays: Mapping[str, float] | None = None,
        streams_after: str | None = None,
    ) -> None:
        self._streams = list(streams)
        self._answers = {model_id: list(replies) for model_id, replies in (answers or {}).items()}
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.stall_timeout = stall_timeout
        self._answer_delays = dict(answer_delays or {})  # per model id: seconds before `converse` answers
        # A model id whose `converse` must have answered before a stream's first event: a test that wants
        # "the router answered first" gets it every time, not by a race it usually wins.
        self._streams_after = streams_after
        self._answered: set[str] = set()
        self._answer = threading.Condition(self._lock)
        self.stream_requests: list[ModelRequest] = []
        self.converse_requests: list[ModelRequest] = []
        self.streams_finished = 0  # read to their `StreamEnd`
        self.streams_closed = 0  # closed by the caller before their end (the connection released)

    def release(self) -> None:
        """Lets every stalled stream go on."""
        self._released.set()

    def converse(self, request: ModelRequest) -> ModelReply:
        """The next answer scripted for `request.model_id`; `ModelUnavailable` when none is left."""
        with self._lock:
            self.converse_requests.append(request)
            scripted = self._answers.get(request.model_id)
            answer = scripted.pop(0) if scripted else None
        time.sleep(self._answer_delays.get(request.model_id, 0.0))
        with self._answer:
            self._answered.add(request.model_id)
            self._answer.notify_all()
        if answer is None:
            raise ModelUnavailable(f"nothing scripted for {request.model_id}", cause="ServiceUnavailableException")
        if isinstance(answer, Exception):
            raise answer
        return ModelReply(answer, "end_turn", CONVERSE_USAGE, 7, request.model_id)

    def stream(self, request: ModelRequest) -> Iterator[ModelEvent]:
        with self._lock:
            self.stream_requests.append(request)
            if not self._streams:
                raise AssertionError("the model was streamed more often than the test scripted")
            script = self._streams.pop(0)
        return self._events(script, request.model_id)

    def _events(self, script: StreamScript, model_id: str) -> Iterator[ModelEvent]:
        shown: list[str] = []
        if self._streams_after is not None:
            with self._answer:
                self._answer.wait_for(lambda: self._streams_after in self._answered, timeout=self.stall_timeout)
        try:
            for index, delta in enumerate(script.deltas):
                self._interrupt(script, index, shown)
                if script.delay:
                    time.sleep(script.delay)
                shown.append(delta)
                yield TextDelta(delta)
            self._interrupt(script, len(script.deltas), shown)
            yield StreamEnd("end_turn", script.usage, script.latency_ms, model_id)
        except GeneratorExit:
            with self._lock:
                self.streams_closed += 1
            raise
        with self._lock:
            self.streams_finished += 1

    def _interrupt(self, script: StreamScript, index: int, shown: list[str]) -> None:
        if script.stall_at == index:
            self._released.wait(self.stall_timeout)
        if script.fail_at != index:
            return
        if script.error is not None:
            raise script.error
        if not shown:
            raise ModelUnavailable("stream failed before its first token", cause="ThrottlingException")
        raise ModelStreamInterrupted("stream broke", partial_text="".join(shown), cause="ReadTimeoutError")
