"""A clock the test sets: what adapters and pipelines read as the time, moved by hand."""

from __future__ import annotations


class SettableClock:
    """Called for the time, like `time.time`; `now` is whatever the test last set."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
