"""What the OpenAPI document says of one operation: summary, answers (errors included) and security.

Kept apart from `routing` so that the API's own routes and the operations other functions serve (the
turn fallbacks, the streams; see `shared.api.openapi`) are described by the same rules: every refusal
in the contract's error shape, plus the two answers API Gateway gives before any function runs.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel

from shared.api.schemas import ErrorBody, GatewayMessage

BEARER = "cognitoIdToken"
"""The security scheme's name: a Cognito ID token as `Authorization: Bearer ...`."""

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


def operation(
    summary: str,
    ok: type[BaseModel] | None,
    *,
    status: int = 200,
    gateway: bool = True,
    authorized: bool = True,
    body: bool = False,
    turn: bool = False,
    event_stream: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for Powertools' `Router.route`: summary, responses and security.

    `gateway`: API Gateway stands in front (its 401, 429 and 500 are `{"message"}`); `authorized`:
    a token is required (else optional); `body`: a JSON body is read (400, 413); `turn`: a model turn
    runs (409 and the turn's failures); `event_stream`: the 200 answer may be Server-Sent Events.
    """
    content: dict[str, Any] = {}
    if ok is not None:
        content[JSON] = {"model": ok}
    if event_stream is not None:
        content[EVENT_STREAM] = event_stream
    responses: dict[int, Any] = {status: {"description": HTTPStatus(status).phrase, "content": content}}
    refusals = [429, 500]
    if authorized:
        refusals += [401, 403, 404]
    if body:
        refusals += [400, 413]
    if turn:
        refusals += [409, 502, 503, 504]
    for code in sorted(refusals):
        from_gateway = gateway and code in (401, 429, 500)
        responses[code] = _refusal(code, from_gateway)
    security = [{BEARER: []}] if authorized else [{}, {BEARER: []}]
    return {"summary": summary, "responses": responses, "security": security, "status_code": status}


def _refusal(code: int, from_gateway: bool) -> dict[str, Any]:
    description = HTTPStatus(code).phrase
    if not from_gateway:
        return {"description": description, "content": {JSON: {"model": ErrorBody}}}
    either = {"oneOf": [_ref(ErrorBody), _ref(GatewayMessage)]}
    description += " (a bare `message` when API Gateway answers)"
    return {"description": description, "content": {JSON: {"schema": either}}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}
