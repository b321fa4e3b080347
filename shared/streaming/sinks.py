"""Where a response goes: the Runtime API as a stream, or a buffer turned into a proxy response.

The handler writes the same calls to either, so buffered and streamed delivery cannot drift apart.
"""

from __future__ import annotations

import base64
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from shared.http.sse import KEEP_ALIVE


def response_metadata(status: int, headers: dict[str, str], cookies: list[str], payload_version: str) -> dict[str, Any]:
    """The status line of a proxy response: the streaming prelude, or the head of a buffered one.

    Payload 2.0 (Function URLs, HTTP APIs) carries cookies in `cookies`; v1 (REST APIs) has none,
    so they go out as a multi-value `Set-Cookie` header.
    """
    metadata: dict[str, Any] = {"statusCode": status, "headers": dict(headers)}
    if payload_version == "1.0":
        if cookies:
            metadata["multiValueHeaders"] = {"Set-Cookie": list(cookies)}
    else:
        metadata["cookies"] = list(cookies)
    return metadata


class ResponseSink(ABC):
    """One response on its way out: `start` once, `write` per event, `finish` once."""

    started: bool = False

    @abstractmethod
    def start(self, status: int, headers: dict[str, str], cookies: list[str]) -> None: ...

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def finish(self, error: BaseException | None = None) -> None: ...


class BufferedSink(ResponseSink):
    """Collects the whole response for the stock runtime (`sam local invoke`, plain Invoke, HTTP APIs)."""

    def __init__(self, payload_version: str = "2.0") -> None:
        self.payload_version = payload_version
        self._metadata: dict[str, Any] = {}
        self._parts: list[bytes] = []

    def start(self, status: int, headers: dict[str, str], cookies: list[str]) -> None:
        self.started = True
        self._metadata = response_metadata(status, headers, cookies, self.payload_version)

    def write(self, data: bytes) -> None:
        self._parts.append(data)

    def finish(self, error: BaseException | None = None) -> None:
        """A buffered response has no trailers: an error event in the body already tells the client."""

    def proxy_response(self) -> dict[str, Any]:
        body = b"".join(self._parts)
        try:
            text, is_base64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode("ascii"), True
        return {**self._metadata, "body": text, "isBase64Encoded": is_base64}


class KeepAlive:
    """Sends an SSE comment after `interval` seconds without a write, so idle proxies keep the stream.

    Writes from the handler and from the heartbeat thread share one lock: a comment can never land
    inside an event.
    """

    def __init__(self, sink: ResponseSink, interval: float) -> None:
        self._sink = sink
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
            self._sink.write(data)
            self._last_write = time.monotonic()

    def _beat(self) -> None:
        while not self._stopped.wait(max(0.0, self._last_write + self._interval - time.monotonic())):
            with self._lock:
                if time.monotonic() - self._last_write >= self._interval:
                    self._sink.write(KEEP_ALIVE)
                    self._last_write = time.monotonic()
