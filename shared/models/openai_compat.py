"""An adapter for OpenAI-compatible chat completions (`POST {base}/v1/chat/completions`).

For local models and other providers. Standard library only, so it adds nothing to the bundle.
Streaming answers are SSE: `data: {json}` lines, the last choice with its `finish_reason`, then
`data: [DONE]`. A stream is whole only when a `finish_reason` arrived: a server may end a stream it cut
with a bare `[DONE]` (llama.cpp's server does when a newer request interrupts it), and a cut reply must
not be stored as a whole one. Anything else is a failure, mapped by `guard.py` like Bedrock's.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from shared.models.guard import guard_call, guard_stream
from shared.models.port import (
    Message,
    ModelEvent,
    ModelPort,
    ModelReply,
    ModelRequest,
    ModelUnavailable,
    StreamEnd,
    TextDelta,
    Usage,
)
from shared.models.settings import ModelSettings

# Network errors, broken HTTP, and answers that are not the JSON they should be.
FAILURES = (OSError, http.client.HTTPException, ValueError, LookupError)
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

# Bedrock's names, so callers see one vocabulary whichever provider answered.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "content_filtered"}


class OpenAICompatibleModel(ModelPort):
    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        base = settings.openai_base_url.rstrip("/")
        self._url = urlsplit(base if base.endswith("/v1") else f"{base}/v1")

    def converse(self, request: ModelRequest) -> ModelReply:
        started = time.monotonic()
        with guard_call(FAILURES):
            connection, response = self._post(chat_body(request, stream=False))
            try:
                answer = json.loads(response.read())
            finally:
                connection.close()
            choice = answer["choices"][0]
            return ModelReply(
                text=choice.get("message", {}).get("content") or "",
                stop_reason=_stop_reason(choice.get("finish_reason")),
                usage=_usage(answer.get("usage")),
                latency_ms=_elapsed_ms(started),
                model_id=request.model_id,
            )

    def stream(self, request: ModelRequest) -> Iterator[ModelEvent]:
        return guard_stream(self._events(request), FAILURES)

    def _events(self, request: ModelRequest) -> Iterator[ModelEvent]:
        started = time.monotonic()
        connection, response = self._post(chat_body(request, stream=True))
        finish_reason: str | None = None
        usage: dict[str, Any] | None = None
        try:
            for data in sse_data(response):
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield TextDelta(text)
                    finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            connection.close()
        if finish_reason is not None:
            yield StreamEnd(_stop_reason(finish_reason), _usage(usage), _elapsed_ms(started), request.model_id)

    def _post(self, body: dict[str, Any]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send, retrying throttling and server errors with jittered backoff, as botocore does."""
        attempt = 1
        while True:
            connection, response = self._send(body)
            if response.status < 400:
                return connection, response
            detail = response.read(2048).decode(errors="replace")
            connection.close()
            if response.status not in RETRYABLE_STATUSES or attempt >= self.settings.max_attempts:
                raise ModelUnavailable(f"HTTP {response.status}: {detail}", cause=f"HTTP{response.status}")
            time.sleep(random.random() * 0.1 * 2**attempt)  # noqa: S311 - jitter, not security
            attempt += 1

    def _send(self, body: dict[str, Any]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url = self._url
        connection_type = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = connection_type(url.netloc, timeout=self.settings.connect_timeout)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if self.settings.openai_api_key:
            headers["Authorization"] = f"Bearer {self.settings.openai_api_key}"
        try:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(self.settings.read_timeout)
            connection.request("POST", f"{url.path}/chat/completions", body=json.dumps(body), headers=headers)
            return connection, connection.getresponse()
        except BaseException:
            connection.close()
            raise


def chat_body(request: ModelRequest, *, stream: bool) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if request.system is not None:
        system = "\n\n".join(part for part in (request.system.static, request.system.dynamic) if part)
        if system:
            messages.append({"role": "system", "content": system})
    messages.extend(_message(message) for message in request.messages)
    body: dict[str, Any] = {
        "model": request.model_id,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


def sse_data(lines: Iterable[bytes]) -> Iterator[str]:
    """The `data:` values of an SSE body; a multi-line event's lines are joined by newlines."""
    pending: list[str] = []
    for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if pending:
                yield "\n".join(pending)
                pending = []
        elif line.startswith("data:"):
            pending.append(line[5:].removeprefix(" "))
    if pending:
        yield "\n".join(pending)


def _message(message: Message) -> dict[str, Any]:
    if not message.images:
        return {"role": message.role, "content": message.text}
    parts: list[dict[str, Any]] = [
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/{image.format};base64,{base64.b64encode(image.data).decode()}"},
        }
        for image in message.images
    ]
    if message.text:
        parts.append({"type": "text", "text": message.text})
    return {"role": message.role, "content": parts}


def _stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason or "stop", finish_reason or "end_turn")


def _usage(usage: dict[str, Any] | None) -> Usage:
    usage = usage or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
    )


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
