"""The proxy-integration response: its metadata (the streaming prelude), and a buffered whole.

Status, headers and cookies are written the same way whether they head a stream or a buffered
response, so streamed and buffered delivery cannot drift apart.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from shared.runtime.stream import ResponseStream


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


class BufferedProxyResponse(ResponseStream):
    """Collects the whole response for the stock runtime (`sam local invoke`, plain Invoke, HTTP APIs)."""

    def __init__(self) -> None:
        self._metadata: dict[str, Any] = {}
        self._parts: list[bytes] = []

    def start(self, prelude: Mapping[str, Any] | None = None, *, content_type: str | None = None) -> None:
        self.started = True
        self._metadata = dict(prelude or {})

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
