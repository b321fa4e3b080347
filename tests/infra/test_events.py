"""The sample events under events/ are what the front doors send and what the project's own parsers accept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from functions.catalog import FUNCTIONS
from shared.http.body import parse_stream_body
from shared.http.event import parse_http_event
from shared.http.routes import CONVERSATION_STREAM_ROUTE, CREATOR_SESSION_STREAM_ROUTE, Router

EVENTS = Path(__file__).resolve().parents[2] / "events"
STREAM_ROUTER = Router([CONVERSATION_STREAM_ROUTE, CREATOR_SESSION_STREAM_ROUTE])
CONTRACT_FALLBACK_ROUTES = {
    "POST /users/{userId}/coaches/{coachId}/conversations/{conversationId}/send-message",
    "PUT /users/{userId}/coach-creator-sessions/{sessionId}",
}


def _load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.mark.parametrize("definition", [d for d in FUNCTIONS if d.streaming], ids=lambda d: d.name)
def test_each_streaming_function_has_a_function_url_sample(definition):
    event = _load(f"{definition.name}.json")
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["rawPath"] == event["requestContext"]["http"]["path"]
    assert event["requestContext"]["domainName"].endswith(".lambda-url.us-east-1.on.aws")
    request = parse_http_event(event)
    match = STREAM_ROUTER.match(request.method, request.path)
    assert match.route.method == "POST"
    body = parse_stream_body(request, match.params.user_id)
    assert body.user_response


@pytest.mark.parametrize("name", ["send-message-fallback.json", "coach-creator-session-fallback.json"])
def test_http_api_fallback_samples(name):
    event = _load(name)
    assert event["version"] == "2.0"
    assert event["routeKey"] in CONTRACT_FALLBACK_ROUTES
    method, route = event["routeKey"].split(" ", 1)
    assert event["requestContext"]["http"]["method"] == method
    pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route) + "$"
    assert re.match(pattern, event["rawPath"]).groupdict() == event["pathParameters"]
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["custom:user_id"] == event["pathParameters"]["userId"]
    request = parse_http_event(event)
    assert request.authorizer_claims == claims
    assert parse_stream_body(request, claims["custom:user_id"]).user_response


def test_every_sample_is_valid_json_without_real_secrets():
    for path in EVENTS.glob("*.json"):
        text = path.read_text()
        json.loads(text)
        assert "eyJ" not in text, f"{path.name} must not carry a real token"
