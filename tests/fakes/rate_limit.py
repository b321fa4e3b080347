"""A per-user request limit in memory: a counter per user and clock minute, as the adapter keeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.errors import RateLimited
from shared.store.ports import RequestLimiter

WINDOW_SECONDS = 60


class InMemoryRateLimiter(RequestLimiter):
    def __init__(self, limit: int, clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, int], int] = {}

    def hit(self, user_id: str) -> None:
        if self.limit <= 0:
            return
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            hits = self._hits.get((user_id, window), 0)
            if hits >= self.limit:  # refused: nothing counted
                retry_after = (window + 1) * WINDOW_SECONDS - now
                raise RateLimited(int(retry_after) + 1, "too many requests; try again shortly")
            self._hits[(user_id, window)] = hits + 1
