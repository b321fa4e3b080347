"""The OpenAPI document generated from the code (`shared.api.openapi`): valid, complete, honest.

Complete: every route the HTTP API is synthesized with (the catalog's) is an operation on the API's
server, nothing else is, and each stream is on its own Function URL. Honest: refusals are the
contract's error shape (no Powertools 422), events and answers validate as the code produces them.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from functions.catalog import FUNCTIONS
from infra.catalog_rules import declared_routes, routes
from local.api_gateway import OPENAPI_PATH, ApiGatewayServer
from shared.api.openapi import FLOWS, contract_document
from shared.events import ChunkEvent, ContextualEvent, StartEvent
from shared.http.errors import MethodNotAllowed, Problem, RateLimited
from shared.http.sse import wire_event

OUTPUTS = {
    "apiUrl": "https://api.example.test",
    "coachConversationStreamUrl": "https://conversation.example.test/",
    "coachCreatorStreamUrl": "https://creator.example.test/",
}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return contract_document(OUTPUTS)


def operations(document: dict[str, Any]) -> dict[str, tuple[dict[str, Any], str]]:
    """`METHOD /path` -> (operation, the server URL it is reached on)."""
    found = {}
    for path, item in document["paths"].items():
        server = (item.get("servers") or document["servers"])[0]["url"]
        for method in METHODS:
            if method in item:
                found[f"{method.upper()} {path}"] = (item[method], server)
    return found


def valid(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    root = {**schema, "components": document["components"]}
    return [error.message for error in Draft202012Validator(root).iter_errors(instance)]


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)


def test_every_http_api_route_is_documented_on_the_api_and_nothing_else_is(document):
    on_api = {key for key, (_, server) in operations(document).items() if server == OUTPUTS["apiUrl"]}
    assert on_api == {route.key for route in declared_routes(FUNCTIONS)}


def test_each_stream_is_on_its_own_function_url(document):
    streams = {key: server for key, (_, server) in operations(document).items() if server != OUTPUTS["apiUrl"]}
    by_name = {definition.name: definition for definition in FUNCTIONS}
    expected = {
        # a Function URL output ends in "/", which a server URL leaves out (paths start with one)
        f"{flow.stream_route.method} {flow.stream_route.template}": OUTPUTS[
            by_name[flow.stream_function].url_output_key or ""
        ].rstrip("/")
        for flow in FLOWS
    }
    assert streams == expected
    streaming = {d.name for d in FUNCTIONS if d.streaming and d.url_output_key}
    assert {flow.stream_function for flow in FLOWS} == streaming


def test_without_outputs_the_servers_are_relative():
    document = contract_document()
    assert document["servers"][0]["url"] == "/"
    assert all(
        not item.get("servers") or item["servers"][0]["url"].startswith("/") for item in document["paths"].values()
    )


def test_refusals_are_the_contracts_error_shape_never_powertools_422(document):
    for key, (operation, server) in operations(document).items():
        responses = operation["responses"]
        assert "422" not in responses, key
        refusals = [code for code in responses if int(code) >= 400]
        assert refusals, key
        for code in refusals:
            schema = responses[code]["content"]["application/json"]["schema"]
            refs = [schema.get("$ref")] + [choice["$ref"] for choice in schema.get("oneOf", [])]
            assert "#/components/schemas/ErrorBody" in refs, (key, code)
            # only API Gateway's own answers (never a Function URL's) may be a bare {"message"}
            if server != OUTPUTS["apiUrl"]:
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (key, code)
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(
    "error", [MethodNotAllowed(["GET"]), RateLimited(7), ValueError("boom")], ids=lambda e: type(e).__name__
)
def test_the_error_table_answers_validate_against_the_error_shape(document, error):
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    assert valid(document, schema, Problem.of(error).body()) == []
    assert valid(document, schema, {"error": {"code": "NOT_A_CODE", "message": "x"}}) != []


def test_secured_operations_ask_for_the_bearer_token_and_config_makes_it_optional(document):
    scheme = document["components"]["securitySchemes"]["cognitoIdToken"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for key, (operation, _) in operations(document).items():
        expected = [{}, {"cognitoIdToken": []}] if key == "GET /config" else [{"cognitoIdToken": []}]
        assert operation["security"] == expected, key


def test_stream_events_validate_as_the_code_writes_them(document):
    schemas = document["components"]["schemas"]
    conversation = {"$ref": "#/components/schemas/ConversationStreamEvent"}
    creator = {"$ref": "#/components/schemas/CreatorStreamEvent"}
    written = [
        StartEvent(requestId="r-1"),
        ChunkEvent(content="Nice work"),
        ContextualEvent(content="Scouting...", updateType="workout_analysis"),
        wire_event(Problem.of(ValueError()).event()),
    ]
    for event in written:
        assert valid(document, conversation, json.loads(json.dumps(event.to_dict()))) == []
    message = {"id": "m1", "role": "user", "content": "hi", "timestamp": "2026-01-01T00:00:00Z"}
    complete = {
        "type": "complete",
        "status": "finished",
        "conversationId": "c1",
        "messageId": "m2",
        "fullMessage": "hello",
        "userMessage": message,
        "aiMessage": {**message, "id": "m2", "role": "assistant", "metadata": {"model": "m", "fallback": False}},
    }
    assert valid(document, conversation, complete) == []
    assert valid(document, conversation, {**complete, "surprise": 1}) != []
    assert valid(document, conversation, {"type": "progress", "progressDetails": {}}) != []  # creator only
    progress = {"questionsCompleted": 3, "totalQuestions": 12, "percentage": 25, "sophisticationLevel": "INTERMEDIATE"}
    assert valid(document, creator, {"type": "progress", "progressDetails": progress}) == []
    assert valid(document, creator, {"type": "contextual", "content": "x", "updateType": "y"}) != []
    assert schemas["StartEvent"]["required"] == ["requestId", "type", "status"]


def test_turn_operations_answer_json_or_the_event_stream(document):
    for key, (operation, server) in operations(document).items():
        if not key.endswith(("/send-message", "/stream")) and not key.startswith("PUT "):
            continue
        content = operation["responses"]["200"]["content"]
        assert "text/event-stream" in content, key
        data = content["text/event-stream"]["schema"]["properties"]["data"]
        assert data["contentMediaType"] == "application/json", key
        assert data["contentSchema"]["$ref"].endswith("StreamEvent"), key
        assert ("application/json" in content) == (server == OUTPUTS["apiUrl"]), key
        body = operation["requestBody"]
        assert body["required"] is True, key
        schema = body["content"]["application/json"]["schema"]
        assert valid(document, schema, {"userResponse": "hi", "clientMessageId": "a_1"}) == []
        assert valid(document, schema, {"userResponse": "hi", "extra": 1}) != []
        assert valid(document, schema, {}) != []


def test_the_local_api_gateway_serves_the_document_with_the_stacks_urls():
    demo = {**OUTPUTS, "token": "t", "demo": {"userId": "u"}}
    server = ApiGatewayServer(0, lambda _: {}, lambda: {}, "/pool", demo=lambda: demo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}{OPENAPI_PATH}"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            served = json.load(response)
    finally:
        server.shutdown()
        server.server_close()
    assert served == json.loads(json.dumps(contract_document(demo)))
    assert served["servers"][0]["url"] == OUTPUTS["apiUrl"]
    assert "token" not in json.dumps(served["servers"])


def test_the_document_is_served_locally_only_no_deployed_route_claims_its_path():
    """Where local and deployed differ: in AWS no route (catch-alls included) serves `/openapi.json`."""
    assert all(route.path != OPENAPI_PATH for route in routes(FUNCTIONS))
