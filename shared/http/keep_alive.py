"""SSE heartbeats: idle proxies and browsers keep a stream that says something now and then."""

from __future__ import annotations

import threading
import time

from shared.http.sse import KEEP_ALIVE
from shared.runtime.stream import ResponseStream


class KeepAlive:
    """Sends an SSE comment after `interval` seconds without a write, so idle proxies keep the stream.

    Writes from the handler and from the heartbeat thread share one lock: a comment can never land
    inside an event.
    """

    def __init__(self, stream: ResponseStream, interval: float) -> None:
        self._stream = stream
        self._interval = interval
        self._lock = threading.Lock()
        self._last_write = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sse-keep-alive", daemon=True)

    def __enter__(self) -> KeepAlive:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._stream.write(data)
            self._last_write = time.monotonic()

    def _beat(self) -> None:
        while not self._stopped.wait(max(0.0, self._last_write + self._interval - time.monotonic())):
            with self._lock:
                if time.monotonic() - self._last_write >= self._interval:
                    self._stream.write(KEEP_ALIVE)
                    self._last_write = time.monotonic()
