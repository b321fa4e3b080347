"""Faults in the local DynamoDB, switched on and off at run time by tests.

A rule matches a DynamoDB operation (`TransactWriteItems`, `UpdateItem`, ...) and, optionally,
substrings its request body must all contain (as they appear in the request's JSON: a
conversation id, `"assistant"`), and acts on the next `times` requests it matches:

- `stall_before`: waits `seconds`, then serves the request;
- `stall_after`: serves the request, then waits `seconds` before answering. Past the client's read
  timeout this is a write that was applied while its caller saw a timeout (and the SDK retries it);
- `fail`: answers DynamoDB's error `error` (`InternalServerError`, 500;
  `ProvisionedThroughputExceededException`, 400; ...) without serving the request.

`FaultInjector` wraps moto's server app (outside the IAM gate, so an injected failure never reached
the service and is not recorded as a call; a stalled request is). Its rules are set over HTTP on the
server itself, at `CONTROL_PATH`: `PUT` replaces them (a JSON list of rules), `GET` lists them with
how often each fired, `DELETE` removes them. `FaultControl` is that API for a test.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from http import HTTPStatus
from typing import Any, Literal

from local.iam_gate import Answer, _take_body

CONTROL_PATH = "/_local/db-faults"
Action = Literal["stall_before", "stall_after", "fail"]
ACTIONS: tuple[Action, ...] = ("stall_before", "stall_after", "fail")
# DynamoDB's status for each error a test may ask for; any other error code is a 400, as client errors are.
ERROR_STATUSES = {
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "ProvisionedThroughputExceededException": 400,
    "ThrottlingException": 400,
    "RequestLimitExceeded": 400,
    "TransactionConflictException": 400,
    "LimitExceededException": 400,
}
_ERROR_TYPE_PREFIX = "com.amazonaws.dynamodb.v20120810#"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class FaultRule:
    operation: str
    action: Action
    contains: tuple[str, ...] = ()
    seconds: float = 0.0  # the stalls
    error: str = "InternalServerError"  # fail
    times: int = 1
    fired: int = 0  # how many requests it has acted on so far (reported by the server)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {self.action!r}")
        if not self.operation or not self.operation.isalnum():
            raise ValueError(f"operation must name a DynamoDB operation, not {self.operation!r}")
        if self.times < 1 or self.seconds < 0 or (self.action != "fail" and self.seconds == 0):
            raise ValueError(f"times must be at least 1 and a stall must last: {self}")

    @classmethod
    def stall_before(cls, operation: str, seconds: float, *, contains: Iterable[str] = (), times: int = 1) -> FaultRule:
        return cls(operation, "stall_before", tuple(contains), seconds=seconds, times=times)

    @classmethod
    def stall_after(cls, operation: str, seconds: float, *, contains: Iterable[str] = (), times: int = 1) -> FaultRule:
        return cls(operation, "stall_after", tuple(contains), seconds=seconds, times=times)

    @classmethod
    def fail(
        cls, operation: str, error: str = "InternalServerError", *, contains: Iterable[str] = (), times: int = 1
    ) -> FaultRule:
        return cls(operation, "fail", tuple(contains), error=error, times=times)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        """A rule as `to_json` writes it; a rule set anew starts with no firings, whatever `fired` says."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a rule is a JSON object, not {data!r}")
        unknown = set(data) - {"operation", "action", "contains", "seconds", "error", "times", "fired"}
        if unknown:
            raise ValueError(f"unknown rule fields: {sorted(unknown)}")
        contains = data.get("contains", ())
        return cls(
            operation=str(data.get("operation", "")),
            action=data.get("action", ""),
            contains=(contains,) if isinstance(contains, str) else tuple(str(part) for part in contains),
            seconds=float(data.get("seconds", 0.0)),
            error=str(data.get("error", "InternalServerError")),
            times=int(data.get("times", 1)),
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "contains": list(self.contains)}

    @property
    def exhausted(self) -> bool:
        return self.fired >= self.times

    def matches(self, operation: str, body: str) -> bool:
        return not self.exhausted and operation == self.operation and all(part in body for part in self.contains)

    def error_answer(self) -> Answer:
        """The error as DynamoDB answers it (JSON 1.0: botocore reads the code after the `#` of `__type`)."""
        body = {"__type": _ERROR_TYPE_PREFIX + self.error, "message": f"injected fault: {self.error}"}
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": uuid.uuid4().hex}
        return Answer(ERROR_STATUSES.get(self.error, 400), headers, json.dumps(body).encode())


class FaultSet:
    """The rules in force; the first unexhausted rule that matches a request acts on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def replace(self, rules: Iterable[FaultRule]) -> None:
        with self._lock:
            self._rules = list(rules)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, operation: str, body: str) -> FaultRule | None:
        """The rule that acts on this request, counted as fired; None to serve it untouched."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.matches(operation, body):
                    self._rules[index] = replace(rule, fired=rule.fired + 1)
                    return rule
        return None

    @property
    def armed(self) -> bool:
        with self._lock:
            return any(not rule.exhausted for rule in self._rules)


class FaultInjector:
    """moto's server app with the rules of `faults` applied to DynamoDB requests, and their control path."""

    def __init__(self, app: WsgiApp, faults: FaultSet | None = None) -> None:
        self.app = app
        self.faults = faults if faults is not None else FaultSet()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == CONTROL_PATH:
            return self._control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_") or not self.faults.armed:
            return self.app(environ, start_response)
        body = _take_body(environ).decode("utf-8", errors="replace")
        rule = self.faults.take(target.rpartition(".")[2], body)
        if rule is None:
            return self.app(environ, start_response)
        if rule.action == "fail":
            return _send(start_response, rule.error_answer())
        if rule.action == "stall_before":
            time.sleep(rule.seconds)
            return self.app(environ, start_response)
        return self._answer_late(environ, start_response, rule.seconds)

    def _answer_late(self, environ: dict[str, Any], start_response: StartResponse, seconds: float) -> list[bytes]:
        """Serves the request now (the write is applied) and answers `seconds` later."""
        started: list[tuple[Any, ...]] = []

        def hold(*args: Any) -> Callable[[bytes], None]:
            started.append(args)
            return lambda _data: None

        inner = self.app(environ, hold)
        try:
            body = b"".join(inner)
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        time.sleep(seconds)
        start_response(*started[0])
        return [body]

    def _control(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if method == "PUT":
                listed = json.loads(_take_body(environ) or b"[]")
                if not isinstance(listed, list):
                    raise ValueError("the body is a JSON list of rules")
                self.faults.replace(FaultRule.from_json(rule) for rule in listed)
            elif method == "DELETE":
                self.faults.replace(())
            elif method != "GET":
                return _send(start_response, _json_answer(405, {"message": "GET, PUT or DELETE"}))
        except (ValueError, TypeError) as exc:
            return _send(start_response, _json_answer(400, {"message": str(exc)}))
        return _send(start_response, _json_answer(200, [rule.to_json() for rule in self.faults.rules()]))


def _json_answer(status: int, value: Any) -> Answer:
    return Answer(status, {"Content-Type": "application/json"}, json.dumps(value).encode())


def _send(start_response: StartResponse, answer: Answer) -> list[bytes]:
    headers = [*answer.headers.items(), ("Content-Length", str(len(answer.body)))]
    start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", headers)
    return [answer.body]


class FaultControl:
    """A test's handle on a running local DynamoDB's faults (`LocalDynamoDb.endpoint`)."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.url = endpoint.rstrip("/") + CONTROL_PATH
        self.timeout = timeout

    def set(self, *rules: FaultRule) -> None:
        """Replaces the rules in force (and their counts) with `rules`."""
        self._call("PUT", json.dumps([rule.to_json() for rule in rules]))

    def clear(self) -> None:
        self._call("DELETE")

    def rules(self) -> list[FaultRule]:
        """The rules in force, each with how often it fired."""
        return [FaultRule(**{**rule, "contains": tuple(rule["contains"])}) for rule in self._call("GET")]

    @contextmanager
    def injected(self, *rules: FaultRule) -> Iterator[FaultControl]:
        """The rules in force for the `with` block only."""
        self.set(*rules)
        try:
            yield self
        finally:
            self.clear()

    def _call(self, method: str, body: str | None = None) -> Any:
        data = body.encode() if body is not None else None
        request = urllib.request.Request(self.url, data=data, method=method)  # noqa: S310  # a loopback http URL
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            return json.loads(response.read())
