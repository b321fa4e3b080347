"""schemathesis against the local stack: every REST operation of the served `/openapi.json`, fuzzed.

The document is the one the local API Gateway serves (a test checks they are equal); requests carry
a token of the local issuer for a user of this test's own (so no other test's data moves), and the
path ids are that user's, else nearly every case would stop at 403 or 404. The checks: no 5xx, and
every answer's status, content type and body are the document's. Bounded and derandomized, so a
failure reproduces.
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from local.stack import TABLE_NAME, LocalStack
from shared.api.openapi import FLOWS, contract_document
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.records import Coach

pytestmark = pytest.mark.integration

FUZZ_USER = "fuzz-user"
FUZZ_COACH = "fuzz-coach"
MAX_EXAMPLES = 12  # per operation (9 of them): about a minute on 2 cores with the model double
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_ids(stack: LocalStack) -> dict[str, str]:
    table = stack.dynamodb.resource().Table(TABLE_NAME)
    DynamoCoachRepository(table).create_coach(Coach(user_id=FUZZ_USER, coach_id=FUZZ_COACH, name="Fuzz"))
    conversation = DynamoConversationRepository(table).create_conversation(FUZZ_USER, FUZZ_COACH, "fuzz")
    api = stack.outputs()["apiUrl"]
    token = stack.issuer.mint(FUZZ_USER)
    started = httpx.post(f"{api}/users/{FUZZ_USER}/coach-creator-sessions", json={}, headers=_auth(token))
    assert started.status_code == 201, started.text
    return {
        "userId": FUZZ_USER,
        "coachId": FUZZ_COACH,
        "conversationId": conversation.conversation_id,
        "sessionId": started.json()["sessionId"],
        "token": token,
        "apiUrl": api,
    }


def test_the_local_stack_serves_the_document_it_is_fuzzed_with(stack: LocalStack) -> None:
    outputs = stack.outputs()
    served = httpx.get(f"{outputs['apiUrl']}/openapi.json", timeout=30).raise_for_status().json()
    assert served == json.loads(json.dumps(contract_document(outputs)))
    assert served["servers"][0]["url"] == outputs["apiUrl"]


# The schema is generated here, at collection, as the local API Gateway generates what it serves (the
# test above holds the two together): the cases exist before the stack does, and the base URL comes later.
# The streams are Function URLs of their own (path-level servers); the stream suites test them.
STREAMS = [flow.stream_function.replace("-", "_") for flow in FLOWS]  # their operationIds
schema = schemathesis.openapi.from_dict(contract_document()).exclude(operation_id=STREAMS)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_rest_operation_answers_as_documented(case: schemathesis.Case, fuzz_ids: dict[str, str]) -> None:
    for name in case.path_parameters or {}:
        if name in fuzz_ids:
            case.path_parameters[name] = fuzz_ids[name]
    case.call_and_validate(base_url=fuzz_ids["apiUrl"], headers=_auth(fuzz_ids["token"]), checks=CHECKS, timeout=60)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
