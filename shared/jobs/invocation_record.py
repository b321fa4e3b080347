"""The record Lambda sends to an asynchronous invocation's destination, as a model.

After the last attempt of a failed asynchronous invocation (or once the event is older than the function's
maximum event age), Lambda sends this record to the on-failure destination: a Lambda function receives it
as its event, an SQS queue as a message body. Its shape, as AWS documents it ("Capturing records of Lambda
asynchronous invocations"):

    {"version": "1.0", "timestamp": "2019-11-14T18:16:05.568Z",
     "requestContext": {"requestId": "...", "functionArn": "arn:aws:lambda:...:function:name:$LATEST",
                        "condition": "RetriesExhausted", "approximateInvokeCount": 3},
     "requestPayload": <the original event>,
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
     "responsePayload": {"errorMessage": "...", "errorType": "..."}}

Unknown fields are ignored and the response parts are optional: an event that expired before any attempt
ran has no response to describe.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# Why Lambda gave up: every attempt failed, or the event waited longer than the maximum event age.
FAILURE_CONDITIONS = frozenset({"RetriesExhausted", "EventAgeExceeded"})


class _Camel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)


class RequestContext(_Camel):
    request_id: str
    function_arn: str
    condition: str
    approximate_invoke_count: int


class ResponseContext(_Camel):
    status_code: int | None = None
    executed_version: str | None = None
    function_error: str | None = None


class InvocationRecord(_Camel):
    version: str
    timestamp: str
    request_context: RequestContext
    request_payload: Any = None
    response_context: ResponseContext | None = None
    response_payload: Any = None

    @property
    def failed(self) -> bool:
        return self.request_context.condition in FAILURE_CONDITIONS

    @property
    def function_name(self) -> str:
        """The invoked function's name, from `arn:...:function:<name>[:<qualifier>]`."""
        parts = self.request_context.function_arn.split(":")
        return parts[parts.index("function") + 1] if "function" in parts[:-1] else parts[-1]

    @property
    def error_type(self) -> str | None:
        """The last attempt's error type (never its message: it may quote what the user wrote)."""
        payload = self.response_payload
        found = payload.get("errorType") if isinstance(payload, dict) else None
        return str(found) if found else None
