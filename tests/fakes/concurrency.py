"""Many requests at once: what the stores' conditional writes exist for."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


def race(count: int, attempt: Callable[[int], Result]) -> tuple[list[Result], list[Exception]]:
    """Runs `attempt(0..count-1)` on `count` threads released together; what they returned and raised."""
    start = threading.Barrier(count)
    lock = threading.Lock()
    won: list[Result] = []
    lost: list[Exception] = []

    def run(index: int) -> None:
        start.wait()
        try:
            result = attempt(index)
        except Exception as exc:
            with lock:
                lost.append(exc)
            return
        with lock:
            won.append(result)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return won, lost
