"""Build the payload 2.0 events that Function URLs and HTTP APIs send, from a real HTTP request."""

from __future__ import annotations

import base64
import time
import uuid
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
)


def _body_field(body: bytes, content_type: str) -> tuple[str | None, bool]:
    """Text bodies travel as text, anything else base64, as AWS front doors do."""
    if not body:
        return None, False
    if content_type.lower().startswith(_TEXT_TYPES) or "+json" in content_type.lower():
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def build_v2_event(
    method: str,
    target: str,
    headers: Message,
    body: bytes,
    source_ip: str,
    *,
    api_id: str,
    domain_name: str,
    route_key: str = "$default",
    authorizer: dict[str, Any] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    url = urlsplit(target)
    merged: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    cookie_header = merged.pop("cookie", "")
    cookies = [c.strip() for c in cookie_header.split(";") if c.strip()]
    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = time.time()
    body_text, is_base64 = _body_field(body, merged.get("content-type", ""))
    context: dict[str, Any] = {
        "accountId": "anonymous",
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_name.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": url.path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": merged,
        "requestContext": context,
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body_text is not None:
        event["body"] = body_text
    return event
