"""The model port: what domain code may ask of a language model, with no SDK in sight.

Adapters (Bedrock, OpenAI-compatible) implement `ModelPort`; tests and the local stack swap
adapters or point them at a double, never monkeypatch. Every failure surfaces as a `ModelError`
subclass, split by the one fact the caller acts on: did any reply text reach it already?
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

ImageFormat = Literal["png", "jpeg", "gif", "webp"]
Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Image:
    data: bytes
    format: ImageFormat


@dataclass(frozen=True)
class Message:
    role: Role
    text: str
    images: tuple[Image, ...] = ()


@dataclass(frozen=True)
class SystemPrompt:
    """Split in two so the static part can be cached by the provider and the dynamic part cannot.

    `cache` puts a cache point after `static` where the provider supports one.
    """

    static: str
    dynamic: str = ""
    cache: bool = True


@dataclass(frozen=True)
class ModelRequest:
    model_id: str
    messages: tuple[Message, ...]
    system: SystemPrompt | None = None
    max_tokens: int = 1024
    temperature: float | None = None


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply, in order; the pieces concatenated are the reply."""

    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The last item of a successful stream; a stream without one has failed."""

    stop_reason: str
    usage: Usage
    latency_ms: int
    model_id: str


@dataclass(frozen=True)
class ModelReply:
    text: str
    stop_reason: str
    usage: Usage
    latency_ms: int
    model_id: str


ModelEvent = TextDelta | StreamEnd


class ModelError(Exception):
    """Any model failure. `cause` is a short machine-friendly name (an error code or exception class)."""

    def __init__(self, message: str, *, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


class ModelUnavailable(ModelError):
    """Failed before any text: throttling, validation, timeouts, or a stream that died empty.

    The caller has shown nothing yet, so it may fall back to another call or model.
    """


class ModelStreamInterrupted(ModelError):
    """Failed after some text had been yielded; `partial_text` is all of it, to store and show."""

    def __init__(self, message: str, *, partial_text: str, cause: str = "") -> None:
        super().__init__(message, cause=cause)
        self.partial_text = partial_text


class ModelPort(ABC):
    @abstractmethod
    def converse(self, request: ModelRequest) -> ModelReply:
        """One whole reply (side tasks: routing, summaries, JSON extraction). Raises `ModelUnavailable`."""

    @abstractmethod
    def stream(self, request: ModelRequest) -> Iterator[ModelEvent]:
        """`TextDelta`s as the model produces them, then exactly one `StreamEnd`.

        The request is sent on the first `next()`. Closing the iterator early releases the connection.
        Raises `ModelUnavailable` before the first delta, `ModelStreamInterrupted` after it.
        """
