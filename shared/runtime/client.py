"""A client for the Lambda Runtime API: next invocation, buffered response, errors, streams.

Dropped connections. One kept-alive connection carries every call. When the Runtime API closes it,
refuses it or resets it, the client reconnects, waiting 10 ms, then twice as long each time up to 1 s,
and gives up with `RuntimeApiUnreachable` 10 s after the first failure (the loop then exits, and Lambda
starts a new runtime). A request is sent again only when the Runtime API cannot have acted on it:

- a failure while connecting or while writing the request: the request never arrived whole, and the
  Runtime API reads a whole body before it takes a response;
- a reset (RST) before the first byte of the answer: TCP resets a connection closed with bytes
  still unread, or bytes sent after it was closed; one request at a time is all that goes out, so
  the server never read this one whole;
- otherwise (a clean close with no answer, or a failure once the answer began) the Runtime API may
  have taken the request: a `GET /next` is asked again (as libcurl and hyper do on a dead kept-alive
  connection), but a POST is not, since a response must not be posted twice: that is logged and
  the loop moves on. The one response this can lose is one posted at the instant the server closes
  an idle connection, a window the check below narrows to almost nothing.

Before each request, the connection checks whether the server already closed the idle socket, so a
connection closed between invocations costs a reconnect, not a lost response. A streamed response
is never sent again: its bytes were the handler's, written once (see `api_stream`). The reasoning on
resets holds for the Runtime API, a local server with nothing in between that has no reason to
abort connections (SO_LINGER 0); through a proxy, or from a server that aborts, a reset could mean more.

What AWS's own clients do (read at awslambdaric 4.0.1, aws-lambda-cpp 0.2.6 as it vendors, and
aws-lambda-rust-runtime's lambda_runtime 0.14.4): none retries forever. awslambdaric's `next` goes
through aws-lambda-cpp on libcurl, which opens a fresh connection once when a reused one turns out
dead; any other failure of `next` or of a post raises and ends the process (exit 1). Only its
multi-concurrent mode retries `next`, 5 attempts, 100 ms doubling. aws-lambda-cpp's own loop tries
`next` 3 times without delay. The Rust runtime relies on hyper's pool (a closed pooled connection is
replaced; a request cancelled before being written is retried) and otherwise returns the error, which
ends the process. This client is more patient than all of them, but bounded as they are.
"""

from __future__ import annotations

import http.client
import json
import logging
import select
import socket
import time
from dataclasses import dataclass
from email.message import Message
from typing import Any

from shared.runtime.api_stream import RuntimeApiStream
from shared.runtime.protocol import API_VERSION, ERROR_TYPE_HEADER, error_payload

logger = logging.getLogger(__name__)


class RuntimeApiUnreachable(ConnectionError):
    """The Runtime API stayed out of reach for the whole reconnect budget."""


class ResponseUnconfirmed(ConnectionError):
    """A post went out whole but its answer never came: the Runtime API may or may not have it."""


class _Unanswered(Exception):
    """The request was written whole, then the connection failed before the answer was read."""


@dataclass(frozen=True)
class Reconnect:
    """The reconnect schedule: `first_delay` doubling up to `max_delay`, for `give_up_after` seconds."""

    first_delay: float = 0.01
    max_delay: float = 1.0
    give_up_after: float = 10.0

    def pause(self, attempt: int, since: float, failure: BaseException) -> None:
        """Sleep before attempt `attempt + 1`, or raise if that would run past the budget."""
        elapsed = time.monotonic() - since
        delay = min(self.max_delay, self.first_delay * 2 ** (attempt - 1))
        if elapsed + delay > self.give_up_after:
            raise RuntimeApiUnreachable(
                f"Runtime API unreachable for {elapsed:.1f} s over {attempt} attempts; last error: {failure!r}"
            ) from failure
        time.sleep(delay)


RECONNECT = Reconnect()


@dataclass(frozen=True)
class Invocation:
    """One event from `/invocation/next`, with what its headers say about it."""

    request_id: str
    deadline_ms: int
    function_arn: str
    trace_id: str | None
    client_context: Any
    cognito_identity: Any
    tenant_id: str | None
    event: Any


def _json_header(value: str | None) -> Any:
    return json.loads(value) if value else None


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read: on a kept-alive connection, the server's close."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class _RuntimeApiConnection(http.client.HTTPConnection):
    """Drops a kept-alive socket the server has closed before writing the next request on it.

    `http.client` then opens a new connection by itself; a stream's request goes through here too.
    """

    def putrequest(self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False) -> None:
        if self.sock is not None and _readable(self.sock):
            self.close()
        super().putrequest(method, url, skip_host=skip_host, skip_accept_encoding=skip_accept_encoding)


def _wait_for_answer(sock: socket.socket | None) -> None:
    """Block until the answer's first byte or the end of the connection, and tell them apart.

    A reset now is the one failure after sending that proves the request was never read whole;
    anything else that goes wrong is `_Unanswered`.
    """
    if sock is None:
        return
    try:
        sock.recv(1, socket.MSG_PEEK)
    except ConnectionResetError:
        raise
    except OSError as exc:
        raise _Unanswered from exc


class RuntimeApiClient:
    """One connection to the Runtime API, reused for every call: one invocation at a time."""

    def __init__(self, address: str, reconnect: Reconnect = RECONNECT) -> None:
        host, _, port = address.rpartition(":")
        self._connection = _RuntimeApiConnection(host, int(port), timeout=None)
        self._reconnect = reconnect

    def _once(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None
    ) -> tuple[int, Message, bytes]:
        """One request and its answer; `_Unanswered` if the Runtime API may have taken it regardless."""
        connection = self._connection
        try:
            connection.request(method, f"/{API_VERSION}{path}", body=body, headers=headers or {})
            _wait_for_answer(connection.sock)
        except (OSError, http.client.HTTPException, _Unanswered):
            connection.close()
            raise
        try:
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _Unanswered from exc

    def _exchange(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        repeatable: bool,
    ) -> tuple[int, Message, bytes]:
        """One request and its answer, reconnecting as the module docstring says."""
        since = time.monotonic()
        attempt = 0
        while True:
            failure: BaseException
            try:
                answer = self._once(method, path, body, headers)
            except _Unanswered as lost:
                failure = lost.__cause__ or lost
                if not repeatable:
                    raise ResponseUnconfirmed(
                        f"{method} {path} was sent but its answer was lost ({failure!r}); not sent again"
                    ) from failure
            except (OSError, http.client.HTTPException) as exc:
                failure = exc
            else:
                if attempt:
                    logger.warning("Runtime API reachable again after %d attempts", attempt + 1)
                return answer
            attempt += 1
            if attempt == 1:
                logger.warning("Runtime API connection failed on %s %s (%r); reconnecting", method, path, failure)
            self._reconnect.pause(attempt, since, failure)

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            status, _, data = self._exchange("POST", path, body, headers, repeatable=False)
        except ResponseUnconfirmed as exc:
            logger.error("%s", exc)
            return
        if status >= 400:
            logger.warning("Runtime API POST %s answered %s: %s", path, status, data[:200])

    def next_invocation(self) -> Invocation:
        status, headers, body = self._exchange("GET", "/runtime/invocation/next", repeatable=True)
        if status != 200:
            raise RuntimeError(f"/invocation/next answered {status}: {body[:200]!r}")
        return Invocation(
            request_id=headers["Lambda-Runtime-Aws-Request-Id"],
            deadline_ms=int(headers.get("Lambda-Runtime-Deadline-Ms", "0")),
            function_arn=headers.get("Lambda-Runtime-Invoked-Function-Arn", ""),
            trace_id=headers.get("Lambda-Runtime-Trace-Id"),
            client_context=_json_header(headers.get("Lambda-Runtime-Client-Context")),
            cognito_identity=_json_header(headers.get("Lambda-Runtime-Cognito-Identity")),
            tenant_id=headers.get("Lambda-Runtime-Aws-Tenant-Id"),
            event=json.loads(body) if body else None,
        )

    def post_response(self, request_id: str, payload: Any) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        self._post(f"/runtime/invocation/{request_id}/response", body, {"Content-Type": "application/json"})

    def post_error(self, request_id: str, exc: BaseException) -> None:
        self._post_error(f"/runtime/invocation/{request_id}/error", exc)

    def post_init_error(self, exc: BaseException) -> None:
        self._post_error("/runtime/init/error", exc)

    def _post_error(self, path: str, exc: BaseException) -> None:
        payload = error_payload(exc)
        body = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", ERROR_TYPE_HEADER: payload["errorType"]}
        self._post(path, body, headers)

    def open_stream(self, request_id: str) -> RuntimeApiStream:
        """A stream for the invocation's response; nothing goes out until the handler starts it."""
        return RuntimeApiStream(self._connection, request_id)

    def close(self) -> None:
        self._connection.close()
