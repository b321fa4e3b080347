"""Powertools' request validation (on for the OpenAPI document) changes no answer of the contract.

Powertools validates a declared body before the endpoint runs and would answer 422 in its own shape;
ours answers as before: the first failure in the contract's order (path, caller, size, body), in the
contract's shape and words. coach-api's own tests (`test_coach_api.py`) pin the words; these pin the
order, and what Powertools alone would have got wrong.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.unit.test_coach_api import (  # noqa: F401 - `aws` is the module's autouse fixture: moto's table
    CONVERSATIONS,
    api_event,
    assert_error,
    aws,
    call,
    make_coach,
    stored_conversations,
)

PATH = {"userId": "user-1", "coachId": "c1"}
CREATOR_SESSIONS = "/users/{userId}/coach-creator-sessions"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


@pytest.fixture(autouse=True)
def coach() -> None:
    make_coach("user-1", "c1")


def test_a_body_powertools_refuses_is_the_contracts_400_never_422():
    status, headers, body = call(api_event("POST", CONVERSATIONS, PATH, body='{"title": 7}'))
    assert (status, body) == (400, {"error": {"code": "VALIDATION_ERROR", "message": "title: must be a string"}})
    assert headers["Content-Type"] == "application/json"


def test_another_users_path_is_403_before_the_body_is_judged():
    event = api_event("POST", CONVERSATIONS, PATH, user="user-2", body='{"title": 7, "x": 1}')
    assert_error(call(event), 403, "FORBIDDEN")
    event = api_event("POST", CREATOR_SESSIONS, {"userId": "user-1"}, user="user-2", body="[")
    assert_error(call(event), 403, "FORBIDDEN")
    assert stored_conversations() == []


def test_an_impossible_id_is_404_before_the_body_is_judged():
    event = api_event("POST", CONVERSATIONS, PATH, raw_path="/users/user-1/coaches/c.1/conversations", body="{")
    assert assert_error(call(event), 404, "NOT_FOUND") == "not found"


def test_a_body_valid_to_the_schema_but_over_64_kib_is_413():
    padded = json.dumps({"title": " " * 70_000 + "x"})  # blanks are stripped: the schema's 200 characters hold
    assert_error(call(api_event("POST", CONVERSATIONS, PATH, body=padded)), 413, "PAYLOAD_TOO_LARGE")
    assert stored_conversations() == []


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=x", ""],
)
def test_a_json_body_of_any_declared_type_is_read_as_json(content_type):
    event = api_event("POST", CONVERSATIONS, PATH, body='{"title": "Legs"}', headers={"content-type": content_type})
    status, _, created = call(event)
    assert (status, created["title"]) == (201, "Legs")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "multipart/form-data"])
def test_a_bad_body_of_any_declared_type_is_400(content_type):
    event = api_event(
        "POST", CONVERSATIONS, PATH, body='{"title": "x", "y": 1}', headers={"content-type": content_type}
    )
    assert assert_error(call(event), 400, "VALIDATION_ERROR") == "unknown field 'y'"
    assert stored_conversations() == []


def test_a_json_null_body_is_refused_as_the_document_says():
    """The document declares the body optional (absent), not nullable: `null` is no JSON object."""
    event = api_event("POST", CONVERSATIONS, PATH, body="null")
    assert assert_error(call(event), 400, "VALIDATION_ERROR") == "request body must be a JSON object"
    assert stored_conversations() == []


@pytest.mark.parametrize(
    ("body", "is_base64"),
    [
        (base64.b64encode(b'{"title": "\xff\xfe"}').decode(), True),  # not UTF-8: API Gateway sends it base64
        ("[" * 20_000 + "]" * 20_000, False),  # under 64 KiB, nested deeper than the parser goes
    ],
    ids=["not-utf-8", "too-deep"],
)
def test_a_body_that_is_no_json_at_all_is_400_not_500(body, is_base64):
    event = api_event("POST", CONVERSATIONS, PATH, body=body, is_base64=is_base64)
    assert assert_error(call(event), 400, "VALIDATION_ERROR") == "request body is not valid JSON"
