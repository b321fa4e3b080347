"""A per-user request limit in memory: a sliding window log per user and budget, as the adapter keeps."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from shared.errors import RateLimited
from shared.store.ports import WRITES_BUDGET, RequestLimiter

WINDOW_SECONDS = 60


class InMemoryRateLimiter(RequestLimiter):
    """The last `limit` admissions per user; a request is admitted once the oldest has left the window."""

    def __init__(
        self,
        limit: int,
        clock: Callable[[], float] = time.time,
        *,
        name: str = WRITES_BUDGET,
        window_seconds: int = WINDOW_SECONDS,
    ) -> None:
        self.limit = limit
        self.name = name
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._log: dict[str, deque[float]] = {}

    def hit(self, user_id: str) -> None:
        if self.limit <= 0:
            return
        now = self._clock()
        with self._lock:
            log = self._log.setdefault(user_id, deque(maxlen=self.limit))
            if len(log) == self.limit and log[0] > now - self.window_seconds:  # refused: nothing recorded
                raise RateLimited(math.ceil(log[0] + self.window_seconds - now), "too many requests; try again shortly")
            log.append(now)
