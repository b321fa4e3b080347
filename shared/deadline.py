"""Pull from an iterator, but never past a deadline: a stalled model cannot hold a stream hostage.

The iterator runs on its own daemon thread and hands items over a queue, so waiting for the next
item can time out even while the producer is blocked inside a socket read.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class DeadlineExceeded(Exception):
    """The next item did not come before the deadline."""


def until_deadline(items: Iterator[T], deadline: float) -> Iterator[T]:
    """Yield `items` until exhausted; raise `DeadlineExceeded` at `deadline` (a `time.monotonic()` value).

    Exceptions raised by `items` are re-raised here, in the consumer's thread.
    """
    handoff: queue.Queue[object] = queue.Queue()
    abandoned = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if abandoned.is_set():
                    return
                handoff.put(item)
        except BaseException as exc:
            handoff.put(exc)
            return
        handoff.put(_DONE)

    threading.Thread(target=produce, name="until-deadline", daemon=True).start()
    while True:
        try:
            item = handoff.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            abandoned.set()
            raise DeadlineExceeded from None
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item  # type: ignore[misc]


def call_before_deadline(call: Callable[[], T], deadline: float) -> T:
    """`call()`'s result, or `DeadlineExceeded` at `deadline`; a late call runs on, abandoned, in the background."""

    def once() -> Iterator[T]:
        yield call()

    return next(until_deadline(once(), deadline))
