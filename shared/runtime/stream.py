"""What a handler writes a streamed response to, and how the loop offers it one.

The loop sets `current_stream` for the length of each invocation; it is None where nothing can
stream (the stock runtime, `streaming=False`), and the handler then returns its answer instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any


class ResponseStream(ABC):
    """One response on its way out: `start` once, `write` per piece, `finish` once.

    The prelude given to `start` is whatever metadata the integration in front expects (for an
    HTTP integration, status, headers and cookies), already built by the layer that knows it. A stream
    without one is the raw body, sent with `content_type` (the client sees it as the response's).
    """

    started: bool = False

    @abstractmethod
    def start(self, prelude: Mapping[str, Any] | None = None, *, content_type: str | None = None) -> None: ...

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def finish(self, error: BaseException | None = None) -> None: ...


current_stream: ContextVar[ResponseStream | None] = ContextVar("current_stream", default=None)
