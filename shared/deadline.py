"""Pull from an iterator, but never past a deadline: a stalled model cannot hold a stream hostage.

The iterator runs on its own daemon thread and hands items over a queue, so waiting for the next
item can time out even while the producer is blocked inside a socket read.
"""

from __future__ import annotations

import math
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

    Exceptions raised by `items` are re-raised here, in the consumer's thread. When the consumer stops
    early (the deadline, or closing this generator), `items` is closed as soon as its producer thread
    gets its next item, so a model stream nobody reads is not read to its end.
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
        finally:
            if abandoned.is_set():
                _close(items)  # nobody reads on: release what `items` holds (the model's connection)
        handoff.put(_DONE)

    threading.Thread(target=produce, name="until-deadline", daemon=True).start()
    try:
        while True:
            try:
                item = handoff.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise DeadlineExceeded from None
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        abandoned.set()  # past the deadline, or the consumer closed this generator: stop at the next item


def _close(items: Iterator[object]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()


def call_before_deadline(call: Callable[[], T], deadline: float) -> T:
    """`call()`'s result, or `DeadlineExceeded` at `deadline`; a late call runs on, abandoned, in the background."""

    def once() -> Iterator[T]:
        yield call()

    return next(until_deadline(once(), deadline))


def claim_until(now: float, seconds_to_deadline: float, margin_seconds: float) -> int:
    """The epoch second a claim taken at `now` expires (inclusive), for a turn `seconds_to_deadline` from
    its deadline.

    A turn streams until its deadline at the latest; after it, it only stores what it has, in writes
    that fit the deadline margin the function keeps before Lambda's own deadline. With that margin
    (and some slack for clocks) in `margin_seconds`, a claim never lapses while its turn can still
    legitimately write, and a crashed turn's claim frees the session no later than the function's
    deadline plus the slack. Until then another answer is refused (409); after it, it takes over.
    """
    return math.ceil(now + max(0.0, seconds_to_deadline) + margin_seconds)
