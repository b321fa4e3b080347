"""The runtime peer cases on our Python runtime, written on the runtime's own response stream.

They mirror `tests/runtime_peers/node/peer_handlers.mjs` (AWS's Node client) case for case, so the
Function URL's answer can be compared byte for byte across the two runtimes. `ResponseStream` is the
lowest level a Python handler has: `start(prelude)` sends the prelude and its delimiter at once,
`start(None)` opens a raw stream (whose content type the runtime fixes), and an exception after
`start` is reported in the stream's trailers by the runtime loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from shared.runtime.stream import ResponseStream, current_stream

RUNTIME = "python"
COOKIES = ["peer_a=1; Path=/", "peer_b=2; Path=/; HttpOnly"]


def _headers(case: str, content_type: str | None = "text/plain; charset=utf-8") -> dict[str, str]:
    headers = {"x-peer-case": case, "x-peer-runtime": RUNTIME}
    if content_type is not None:
        headers["content-type"] = content_type
    return headers


def _stream() -> ResponseStream:
    stream = current_stream.get()
    if stream is None:
        raise RuntimeError("no response stream: this handler needs the streaming runtime loop")
    return stream


def prelude(event: dict[str, Any], context: Any) -> None:
    """201, headers and two cookies in the prelude; five chunks 100 ms apart."""
    stream = _stream()
    stream.start(
        {
            "statusCode": 201,
            "headers": _headers("prelude"),
            "cookies": COOKIES,
        }
    )
    for index in range(5):
        if index:
            time.sleep(0.1)
        stream.write(f"chunk {index}\n".encode())
    stream.finish()


def throw_mid_stream(event: dict[str, Any], context: Any) -> None:
    """Two chunks out, then a raise: the runtime loop can only report it in the stream's trailers."""
    stream = _stream()
    stream.start(
        {
            "statusCode": 200,
            "headers": _headers("throw-mid-stream"),
            "cookies": COOKIES,
        }
    )
    stream.write(b"partial 0\n")
    time.sleep(0.05)
    stream.write(b"partial 1\n")
    time.sleep(0.05)
    raise RuntimeError("boom mid-stream")


def throw_before_write(event: dict[str, Any], context: Any) -> None:
    """A raise before `start`: nothing reached Lambda, so the loop posts an invocation error."""
    _stream()
    time.sleep(0.01)
    raise RuntimeError("boom before the first write")


def no_prelude(event: dict[str, Any], context: Any) -> None:
    """A raw stream: no prelude, a content type of its own."""
    stream = _stream()
    stream.start(None, content_type="text/plain")
    for index in range(3):
        if index:
            time.sleep(0.05)
        stream.write(f"raw {index}\n".encode())
    stream.finish()


def prelude_without_status(event: dict[str, Any], context: Any) -> None:
    """A prelude with headers and cookies but no statusCode."""
    stream = _stream()
    stream.start(
        {
            "headers": _headers("prelude-without-status"),
            "cookies": COOKIES,
        }
    )
    stream.write(b"no status 0\n")
    time.sleep(0.02)
    stream.write(b"no status 1\n")
    stream.finish()


CASES: dict[str, Callable[[dict[str, Any], Any], None]] = {
    "/prelude": prelude,
    "/throw-mid-stream": throw_mid_stream,
    "/throw-mid-stream-early-next": throw_mid_stream,
    "/throw-before-write": throw_before_write,
    "/no-prelude": no_prelude,
    "/prelude-without-status": prelude_without_status,
}


def stream(event: dict[str, Any], context: Any) -> None:
    """Picks a case by the request's path."""
    handler = CASES.get(event.get("rawPath", ""))
    if handler is None:
        raise LookupError(f"no case for {event.get('rawPath')}")
    handler(event, context)


def buffered(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Returns its answer without starting the stream, so the runtime posts it buffered."""
    return {
        "statusCode": 202,
        "headers": _headers("buffered", "application/json"),
        "cookies": COOKIES,
        "body": json.dumps({"peer": "buffered", "ok": True}, separators=(",", ":")),
    }
