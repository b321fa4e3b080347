"""One view of an HTTP request, whichever front door delivered it.

Function URLs and HTTP APIs send payload 2.0; REST APIs (also when they stream) send the v1 proxy
event. Handlers see an `HttpRequest` and never care which one arrived.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from shared.errors import InvalidRequest


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    raw_body: str | None
    is_base64_encoded: bool
    request_id: str
    source_ip: str | None
    cookies: tuple[str, ...] = ()
    payload_version: str = "2.0"
    authorizer_claims: Mapping[str, Any] | None = None
    raw_event: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def body_bytes(self) -> bytes:
        """The body as sent by the client, base64 undone; a broken base64 body is a 400."""
        if self.raw_body is None:
            return b""
        if not self.is_base64_encoded:
            return self.raw_body.encode("utf-8")
        try:
            return base64.b64decode(self.raw_body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest("body is not valid base64") from exc


def is_http_event(event: Any) -> bool:
    return isinstance(event, Mapping) and (_is_v2(event) or _is_v1(event))


def is_api_gateway_completion(event: Any) -> bool:
    """The follow-up invocation API Gateway may send after a streamed REST response.

    It carries API Gateway's request context but no HTTP method: there is nothing to answer.
    """
    if not isinstance(event, Mapping) or is_http_event(event):
        return False
    context = event.get("requestContext")
    return isinstance(context, Mapping) and ("apiId" in context or "stage" in context)


def _is_v2(event: Mapping[str, Any]) -> bool:
    context = event.get("requestContext")
    return event.get("version") == "2.0" and isinstance(context, Mapping) and "http" in context


def _is_v1(event: Mapping[str, Any]) -> bool:
    return "httpMethod" in event and isinstance(event.get("requestContext"), Mapping)


def _lower_keys(headers: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (headers or {}).items() if v is not None}


def parse_http_event(event: Mapping[str, Any]) -> HttpRequest:
    """Normalize a payload 2.0 or v1 proxy event; anything else is not ours to answer."""
    context: Mapping[str, Any] = event.get("requestContext") or {}
    if _is_v2(event):
        http = context["http"]
        query = dict(parse_qsl(event.get("rawQueryString") or "", keep_blank_values=True))
        query.update(event.get("queryStringParameters") or {})
        jwt = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims")
        return HttpRequest(
            method=str(http.get("method", "GET")).upper(),
            path=str(event.get("rawPath") or http.get("path") or "/"),
            headers=_lower_keys(event.get("headers")),
            query=query,
            raw_body=event.get("body"),
            is_base64_encoded=bool(event.get("isBase64Encoded")),
            request_id=str(context.get("requestId", "")),
            source_ip=http.get("sourceIp"),
            cookies=tuple(event.get("cookies") or ()),
            payload_version="2.0",
            authorizer_claims=jwt,
            raw_event=event,
        )
    if _is_v1(event):
        headers = _lower_keys(event.get("headers"))
        for name, values in (event.get("multiValueHeaders") or {}).items():
            if values and name.lower() not in headers:
                headers[name.lower()] = ",".join(str(v) for v in values)
        claims = (context.get("authorizer") or {}).get("claims")
        return HttpRequest(
            method=str(event["httpMethod"]).upper(),
            path=str(event.get("path") or "/"),
            headers=headers,
            query=dict(event.get("queryStringParameters") or {}),
            raw_body=event.get("body"),
            is_base64_encoded=bool(event.get("isBase64Encoded")),
            request_id=str(context.get("requestId", "")),
            source_ip=(context.get("identity") or {}).get("sourceIp"),
            cookies=tuple(c.strip() for c in headers.get("cookie", "").split(";") if c.strip()),
            payload_version="1.0",
            authorizer_claims=claims,
            raw_event=event,
        )
    raise ValueError("not an HTTP event")
