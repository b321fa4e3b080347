"""Everything a streaming turn checks before its first byte, in the contract's order.

Route (404/405), token (401), path user (403), body (400/413/403): each failure is an `HttpError`
raised before anything is written, so a rejected request changes nothing. Both flows and both of
their handlers (stream and fallback) go through this one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.http.auth import AuthenticatedUser, authenticate, require_path_user
from shared.http.body import StreamRequestBody, parse_stream_body
from shared.http.event import HttpRequest
from shared.http.routes import Router

P = TypeVar("P")


@dataclass(frozen=True)
class StreamRequest(Generic[P]):
    user: AuthenticatedUser
    path: P
    body: StreamRequestBody
    request_id: str


def open_stream_request(request: HttpRequest, router: Router) -> StreamRequest[Any]:
    """Authenticate and validate a turn request; raises the contract's pre-stream errors."""
    _, params = router.match(request.method, request.path)
    user = authenticate(request.headers)
    require_path_user(user, params.user_id)  # type: ignore[attr-defined] - every stream path has a user
    body = parse_stream_body(request, user.user_id)
    return StreamRequest(user=user, path=params, body=body, request_id=request.request_id)
