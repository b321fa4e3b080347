"""Every AWS call a local function makes, checked against its IAM role's policy and written down.

Locally nothing stops a function from calling what its role in AWS would refuse, so a missing grant
shows up only after deploying. Here each call to a local double (moto's DynamoDB and S3, the Bedrock
double, the local Lambda Invoke API) passes an `IamGate`: it maps the request to the (action,
resource) pairs AWS authorizes (`local.aws_calls`), evaluates each with moto's own IAM policy
evaluator against the caller's statements, appends one `AwsCall` per pair to a JSON-lines log, and
answers a denied call the way that service answers it in AWS, so the function fails as it would there.

Callers without an entry in the policy set (the harness seeding tables, tests) are `unchecked`:
recorded, never refused. The policy set is `{deployed function name: [statement, ...]}`, statements
resolved to plain strings; moto's evaluator ignores `NotResource` and treats an unmet `Condition` on
an Allow as a Deny, so statements using those (or a `Principal`) are refused when loaded rather than
judged wrongly.
"""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

from moto.iam.access_control import IAMPolicy, PermissionResult

from local.aws_calls import ACCOUNT_ID, AwsRequest, Permission, describe, s3_bucket_arn

logger = logging.getLogger(__name__)

CALLS_ENV = "COACH_LOCAL_AWS_CALLS"  # path of the JSON-lines call log
POLICIES_ENV = "COACH_LOCAL_IAM_POLICIES"  # path of the policy set JSON
Verdict = Literal["allowed", "denied", "unchecked"]

_UNSUPPORTED_ELEMENTS = ("NotResource", "Condition", "Principal", "NotPrincipal")
_BEDROCK_ERROR_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


MISSING_KEY = " of a missing key"  # marks the `s3:ListBucket` denial behind a 403 for a missing key


@dataclass(frozen=True)
class AwsCall:
    """One permission one request needed, and whether the caller's policy grants it."""

    caller: str
    service: str
    action: str
    resource: str
    verdict: Verdict
    operation: str = ""  # the API operation that needed it (`TransactWriteItems`, `ConverseStream`)
    trace: str = ""  # the invocation that made it (its trace root), when the caller sent one
    request_id: str = ""  # the HTTP request it belongs to (a transaction needs several permissions)
    item_key: str = ""  # DynamoDB: the item a single-item request names (`local.aws_calls.dynamodb_item_key`)

    @property
    def hid_a_missing_key(self) -> bool:
        """S3's answer to a read of a missing key without `s3:ListBucket`: AWS's rule, not a role defect."""
        return self.operation.endswith(MISSING_KEY)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> AwsCall:
        return cls(**json.loads(line))


class PolicySet:
    """Each checked caller's identity-based statements, judged by moto's `IAMPolicy`."""

    def __init__(self, statements: Mapping[str, Any], source: Path | None = None) -> None:
        """`statements`: per caller, a list of statements or a whole policy document."""
        self.source = source  # the file it was loaded from, so another process can load it too
        self._policies: dict[str, IAMPolicy] = {}
        for caller, value in statements.items():
            listed = _statements(value)
            for statement in listed:
                _validate(caller, statement)
            document = {"Version": "2012-10-17", "Statement": [dict(s) for s in listed]}
            self._policies[caller] = IAMPolicy(json.dumps(document))

    @classmethod
    def load(cls, path: str | Path) -> PolicySet:
        """`{caller: [statement, ...]}`; a whole policy document per caller is accepted too."""
        return cls(json.loads(Path(path).read_text()), Path(path))

    def covers(self, caller: str) -> bool:
        return caller in self._policies

    def evaluate(self, caller: str, permission: Permission) -> PermissionResult:
        """moto's answer: PERMITTED, DENIED (an explicit Deny matched) or NEUTRAL (nothing allows it)."""
        return self._policies[caller].is_action_permitted(permission.action, permission.resource)

    def verdict(self, caller: str, permission: Permission) -> Verdict:
        if not self.covers(caller):
            return "unchecked"
        return "allowed" if self.evaluate(caller, permission) == PermissionResult.PERMITTED else "denied"


def _statements(value: Any) -> Sequence[Mapping[str, Any]]:
    listed = value.get("Statement", []) if isinstance(value, dict) else value
    return [listed] if isinstance(listed, dict) else list(listed)


def _validate(caller: str, statement: Mapping[str, Any]) -> None:
    unsupported = [name for name in _UNSUPPORTED_ELEMENTS if name in statement]
    if unsupported:
        raise ValueError(f"{caller}: statement uses {unsupported}, which this check cannot judge: {statement}")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise ValueError(f"{caller}: statement without Effect Allow or Deny: {statement}")
    for element in ("Resource", "Action" if "Action" in statement else "NotAction"):
        values = statement.get(element)
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not values or not all(isinstance(value, str) for value in values):
            raise ValueError(f"{caller}: {element} must be strings, resolved: {statement}")


class CallLog:
    """JSON lines, one per call; several processes append to one file, one `write` per line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, calls: Iterable[AwsCall]) -> None:
        for call in calls:
            line = (call.to_json() + "\n").encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def read(self) -> list[AwsCall]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [AwsCall.from_json(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class Decision:
    request: AwsRequest
    calls: tuple[AwsCall, ...]
    explicit_deny: bool = False  # the first denied call met an explicit Deny (else nothing allowed it)

    @property
    def allowed(self) -> bool:
        return self.denied is None

    @property
    def denied(self) -> AwsCall | None:
        return next((call for call in self.calls if call.verdict == "denied"), None)


@dataclass(frozen=True)
class Answer:
    """An HTTP response a double sends instead of doing the work; servers add `Content-Length`."""

    status: int
    headers: dict[str, str]
    body: bytes


class IamGate:
    """Checks (with `policies`) and records (into `log`) each call; either may be absent."""

    def __init__(
        self, policies: PolicySet | None = None, log: CallLog | None = None, *, account: str = ACCOUNT_ID
    ) -> None:
        self.policies = policies
        self.log = log
        self.account = account

    @classmethod
    def from_paths(cls, *, calls: str | Path | None = None, policies: str | Path | None = None) -> IamGate:
        return cls(PolicySet.load(policies) if policies else None, CallLog(calls) if calls else None)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> IamGate | None:
        """The gate a separate process (moto's server) builds from `CALLS_ENV` and `POLICIES_ENV`."""
        calls, policies = environ.get(CALLS_ENV), environ.get(POLICIES_ENV)
        return cls.from_paths(calls=calls, policies=policies) if calls or policies else None

    def environment(self) -> dict[str, str]:
        """The variables that give another process (moto's server) the same policies and log."""
        environment = {}
        if self.log is not None:
            environment[CALLS_ENV] = str(self.log.path.resolve())
        if self.policies is not None and self.policies.source is not None:
            environment[POLICIES_ENV] = str(self.policies.source.resolve())
        return environment

    def check(self, request: AwsRequest) -> Decision:
        """Judge every permission the request needs, record them, and say whether AWS would serve it."""
        explicit: bool | None = None  # whether the first denied permission met an explicit Deny
        calls = []
        for permission in request.permissions:
            verdict: Verdict = "unchecked"
            if self.policies is not None and self.policies.covers(request.caller):
                result = self.policies.evaluate(request.caller, permission)
                verdict = "allowed" if result == PermissionResult.PERMITTED else "denied"
                if verdict == "denied" and explicit is None:
                    explicit = result == PermissionResult.DENIED
            call = AwsCall(
                request.caller,
                request.service,
                permission.action,
                permission.resource,
                verdict,
                request.operation,
                request.trace,
                request.request_id,
                request.item_key,
            )
            calls.append(call)
        decision = Decision(request, tuple(calls), bool(explicit))
        self.record(decision.calls)
        if decision.denied is not None:
            denied = decision.denied
            logger.warning("IAM denies %s: %s on %s", denied.caller, denied.action, denied.resource)
        return decision

    def record(self, calls: Iterable[AwsCall]) -> None:
        if self.log is not None:
            self.log.append(calls)

    def screen(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b"", *, service: str
    ) -> Answer | None:
        """For a double's handler: None to serve the request, else the AccessDenied answer to send."""
        request = describe(method, target, headers, body, service=service, account=self.account)
        decision = self.check(request)
        return None if decision.allowed else self.denial(decision, method)

    def denial(self, decision: Decision, method: str = "POST") -> Answer:
        denied = decision.denied
        if denied is None:
            raise ValueError("the decision allows the call")
        return access_denied(decision.request.service, denial_message(denied, decision.explicit_deny), method)

    def hidden_listing(self, decision: Decision) -> Permission | None:
        """S3 answers a missing key with 403, not 404, to a caller who may not list the bucket.

        The `s3:ListBucket` permission such a caller lacks, for an allowed object read; else None.
        """
        request = decision.request
        if request.operation not in ("GetObject", "HeadObject") or not decision.allowed:
            return None
        if self.policies is None or not self.policies.covers(request.caller):
            return None
        bucket = request.permissions[0].resource.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        listing = Permission("s3:ListBucket", s3_bucket_arn(bucket))
        return None if self.policies.verdict(request.caller, listing) == "allowed" else listing

    def wsgi(self, app: WsgiApp) -> WsgiApp:
        """moto's server behind this gate: DynamoDB and S3 calls checked before moto sees them."""
        return _GatedWsgiApp(app, self)


def denial_message(call: AwsCall, explicit: bool = False, *, account: str = ACCOUNT_ID) -> str:
    """AWS's wording for a role session (Lambda's session name is the function name)."""
    who = f"arn:aws:sts::{account}:assumed-role/{call.caller}/{call.caller}"
    why = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {call.action} action"
    )
    return f"User: {who} is not authorized to perform: {call.action} on resource: {call.resource} {why}"


def access_denied(service: str, message: str, method: str = "POST") -> Answer:
    """The AccessDenied response of each service, in the shape botocore parses for it."""
    if service == "dynamodb":  # JSON 1.0 protocol: the code is the `__type` after '#'
        body = {"__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException", "message": message}
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        return Answer(400, headers, json.dumps(body).encode())
    if service == "s3":  # REST-XML; a HEAD response has no body, so botocore reports just "403"
        request_id = uuid.uuid4().hex.upper()[:16]
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        )
        body_bytes = b"" if method == "HEAD" else xml.encode()
        return Answer(403, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body_bytes)
    headers = {"Content-Type": "application/json"}
    if service == "bedrock":  # REST-JSON: the code is `x-amzn-ErrorType` before ':'
        headers["x-amzn-ErrorType"] = "AccessDeniedException" + _BEDROCK_ERROR_SUFFIX
        return Answer(403, headers, json.dumps({"message": message}).encode())
    headers["x-amzn-ErrorType"] = "AccessDeniedException"
    return Answer(403, headers, json.dumps({"Type": "User", "message": message}).encode())


# --- moto's server (WSGI) ----------------------------------------------------------------------------

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_STATUS_TEXT = {400: "Bad Request", 403: "Forbidden"}


class _GatedWsgiApp:
    def __init__(self, app: WsgiApp, gate: IamGate) -> None:
        self.app = app
        self.gate = gate

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        target = environ.get("RAW_URI") or _target_of(environ)
        if urlsplit(target).path.startswith("/moto-api"):  # moto's own controls, not AWS
            return self.app(environ, start_response)
        headers = _headers_of(environ)
        body = _take_body(environ) if "x-amz-target" in headers else b""
        decision = self.gate.check(describe(method, target, headers, body, account=self.gate.account))
        if not decision.allowed:
            return _send(start_response, self.gate.denial(decision, method))
        listing = self.gate.hidden_listing(decision)
        if listing is not None:
            return self._missing_as_denied(environ, start_response, decision, listing)
        return self.app(environ, start_response)

    def _missing_as_denied(
        self, environ: dict[str, Any], start_response: StartResponse, decision: Decision, listing: Permission
    ) -> Iterator[bytes]:
        """moto's 404 for a missing key becomes S3's 403 for a caller who may not list the bucket."""
        method = environ.get("REQUEST_METHOD", "GET")
        answer = access_denied("s3", "Access Denied", method)
        missing = False

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
            nonlocal missing
            if not status.startswith("404"):
                return start_response(status, headers, exc_info)
            missing = True
            _start(start_response, answer, exc_info)
            return lambda _data: None

        inner = self.app(environ, capture)
        try:
            for chunk in inner:
                if missing:
                    break
                yield chunk
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        if missing:
            operation = decision.request.operation + MISSING_KEY
            self.gate.record(
                [AwsCall(decision.request.caller, "s3", listing.action, listing.resource, "denied", operation)]
            )
            yield answer.body


def _start(start_response: StartResponse, answer: Answer, exc_info: Any = None) -> None:
    headers = [*answer.headers.items(), ("Content-Length", str(len(answer.body)))]
    start_response(f"{answer.status} {_STATUS_TEXT.get(answer.status, '')}".strip(), headers, exc_info)


def _send(start_response: StartResponse, answer: Answer) -> list[bytes]:
    _start(start_response, answer)
    return [answer.body]


def _target_of(environ: Mapping[str, Any]) -> str:
    path = quote(environ.get("PATH_INFO", "").encode("latin-1"))
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def _headers_of(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def _take_body(environ: dict[str, Any]) -> bytes:
    """Read the body once and give moto an intact copy of it."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body
