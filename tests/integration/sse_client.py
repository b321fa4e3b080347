"""A small SSE reader for tests: each event with the moment its bytes arrived."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx


def iter_events(response: httpx.Response) -> Iterator[tuple[float, dict[str, Any]]]:
    buffer = b""
    for data in response.iter_raw():
        now = time.monotonic()
        buffer += data
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            for line in frame.split(b"\n"):
                if line.startswith(b"data: "):
                    yield now, json.loads(line[6:])


def parse_body(body: str) -> list[dict[str, Any]]:
    """Events of a buffered SSE body."""
    return [json.loads(line[6:]) for line in body.split("\n") if line.startswith("data: ")]


class EventCollector:
    """Reads a stream on its own thread, so a test can ask what has arrived *so far*."""

    def __init__(self, response: httpx.Response) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()

    def _read(self, response: httpx.Response) -> None:
        try:
            for item in iter_events(response):
                with self._changed:
                    self.events.append(item)
                    self._changed.notify_all()
        except httpx.HTTPError:
            return  # the test closed the response on purpose (a disconnecting client)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.events) >= count, timeout):
                raise TimeoutError(f"{len(self.events)} events after {timeout}s, wanted {count}")
            return [event for _, event in self.events]

    def join(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        self._thread.join(timeout)
        return [event for _, event in self.events]
