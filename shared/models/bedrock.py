"""The Bedrock adapter: `converse` and `converse_stream` of `bedrock-runtime` behind the model port.

Failures, and where botocore raises them:
- before the stream (`ClientError`, e.g. ThrottlingException, already retried by botocore's
  standard mode; `BotoCoreError` for connect and read timeouts);
- during it (`EventStreamError` for in-stream exceptions; urllib3 `ProtocolError` or
  `ReadTimeoutError`, botocore `ResponseStreamingError`, or a checksum `ParserError` when the
  socket is cut or stalls; or the stream simply ends without `messageStop`).
`guard.py` turns all of them into `ModelUnavailable` or `ModelStreamInterrupted`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from botocore.eventstream import ParserError
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError as Urllib3Error

from shared.aws_clients import make_client
from shared.models.guard import guard_call, guard_stream
from shared.models.port import (
    ModelEvent,
    ModelPort,
    ModelReply,
    ModelRequest,
    StreamEnd,
    TextDelta,
    Usage,
)
from shared.models.settings import ModelSettings

FAILURES = (ClientError, BotoCoreError, Urllib3Error, ParserError, OSError)


def describe(error: BaseException) -> str:
    """The AWS error code when there is one (ThrottlingException, modelStreamErrorException)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or type(error).__name__)
    return type(error).__name__


class BedrockModel(ModelPort):
    def __init__(self, settings: ModelSettings, client: Any = None) -> None:
        self.settings = settings
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """Created on first use, once: the instance lives as long as the container."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _create_client(self.settings)
        return self._client

    def converse(self, request: ModelRequest) -> ModelReply:
        started = time.monotonic()
        with guard_call(FAILURES, describe):
            response = self.client.converse(**converse_arguments(request))
        content = response.get("output", {}).get("message", {}).get("content", [])
        return ModelReply(
            text="".join(block.get("text", "") for block in content),
            stop_reason=response.get("stopReason", ""),
            usage=_usage(response.get("usage")),
            latency_ms=_latency_ms(response.get("metrics"), started),
            model_id=request.model_id,
        )

    def stream(self, request: ModelRequest) -> Iterator[ModelEvent]:
        return guard_stream(self._events(request), FAILURES, describe)

    def _events(self, request: ModelRequest) -> Iterator[ModelEvent]:
        """Raw events; `messageStop` and `metadata` are folded into one `StreamEnd` at the end."""
        started = time.monotonic()
        response = self.client.converse_stream(**converse_arguments(request))
        stream = response["stream"]
        stop_reason: str | None = None
        metadata: dict[str, Any] = {}
        try:
            for event in stream:
                if "contentBlockDelta" in event:
                    text = event["contentBlockDelta"].get("delta", {}).get("text")
                    if text:
                        yield TextDelta(text)
                elif "messageStop" in event:
                    stop_reason = event["messageStop"].get("stopReason", "")
                elif "metadata" in event:
                    metadata = event["metadata"]
        finally:
            stream.close()
        if stop_reason is not None:
            yield StreamEnd(
                stop_reason=stop_reason,
                usage=_usage(metadata.get("usage")),
                latency_ms=_latency_ms(metadata.get("metrics"), started),
                model_id=request.model_id,
            )


def converse_arguments(request: ModelRequest) -> dict[str, Any]:
    """The keyword arguments of `converse`/`converse_stream`: one shape for both calls."""
    arguments: dict[str, Any] = {
        "modelId": request.model_id,
        "messages": [
            {
                "role": message.role,
                "content": [
                    *({"image": {"format": image.format, "source": {"bytes": image.data}}} for image in message.images),
                    *([{"text": message.text}] if message.text else []),
                ],
            }
            for message in request.messages
        ],
        "inferenceConfig": {
            "maxTokens": request.max_tokens,
            **({"temperature": request.temperature} if request.temperature is not None else {}),
        },
    }
    system = request.system
    if system is not None:
        blocks: list[dict[str, Any]] = []
        if system.static:
            blocks.append({"text": system.static})
            if system.cache:
                blocks.append({"cachePoint": {"type": "default"}})
        if system.dynamic:
            blocks.append({"text": system.dynamic})
        if blocks:
            arguments["system"] = blocks
    return arguments


def _create_client(settings: ModelSettings) -> Any:
    """`total_max_attempts`, not `max_attempts`: in a client `Config` the latter counts retries only,
    so `max_attempts: 3` would send four requests.
    """
    config = settings.limits.botocore_config()
    return make_client("bedrock-runtime", config)


def _usage(usage: dict[str, Any] | None) -> Usage:
    usage = usage or {}
    return Usage(input_tokens=int(usage.get("inputTokens", 0)), output_tokens=int(usage.get("outputTokens", 0)))


def _latency_ms(metrics: dict[str, Any] | None, started: float) -> int:
    """Bedrock's own figure when it sent one, else what this container measured."""
    if metrics and "latencyMs" in metrics:
        return int(metrics["latencyMs"])
    return round((time.monotonic() - started) * 1000)
