"""coach-api's creator session routes through the real handler: HTTP API 2.0 events in, moto's DynamoDB."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from shared.coach_creator.questions import QUESTIONS, next_question
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.records import QuestionAnswer
from tests.unit.test_coach_api import TABLE, api_event, assert_error, aws, call  # noqa: F401  (aws: autouse fixture)

SESSIONS = "/users/{userId}/coach-creator-sessions"
SESSION = SESSIONS + "/{sessionId}"
LATER = int(time.time()) + 300

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def stored_sessions() -> list[dict]:
    items = boto3.resource("dynamodb").Table(TABLE).scan()["Items"]
    return [item for item in items if item.get("type") == "creator-session"]


def start(user: str = "user-1", body: str | None = None) -> tuple[int, dict, dict]:
    return call(api_event("POST", SESSIONS, {"userId": user}, user=user, body=body))


def get(session_id: str, user: str = "user-1", path_user: str | None = None) -> tuple[int, dict, dict]:
    params = {"userId": path_user or user, "sessionId": session_id}
    return call(api_event("GET", SESSION, params, user=user))


def answer(session_id: str, text: str, *, is_complete: bool = False) -> None:
    repository = DynamoCreatorSessionRepository()
    session = repository.get_session("user-1", session_id)
    assert session is not None and session.current_question_id
    question = next(q for q in QUESTIONS if q.id == session.current_question_id)
    claimed = repository.claim(session, "req", LATER)
    following = None if is_complete else next_question({question.id}, "INTERMEDIATE")
    qa = QuestionAnswer(
        question_id=question.id,
        question=question.text,
        answer=text,
        ai_response="Thanks!",
        answered_at="2026-01-01T00:00:00.000Z",
    )
    repository.commit(claimed, qa, following.id if following else None, "INTERMEDIATE", is_complete)


# --- POST ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, "", "{}"])
def test_start_a_session_gives_the_first_question(body):
    status, headers, created = start(body=body)
    assert status == 201
    assert headers["Content-Type"] == "application/json"
    first = QUESTIONS[0]
    assert set(created) == {"sessionId", "question", "progressDetails", "isComplete"}
    assert created["question"] == {"id": first.id, "text": first.text}
    assert created["isComplete"] is False
    details = created["progressDetails"]
    assert (details["questionsCompleted"], details["percentage"], details["sophisticationLevel"]) == (0, 0, "BEGINNER")
    assert details["totalQuestions"] > 0
    (item,) = stored_sessions()
    assert (item["session_id"], item["user_id"], item["version"]) == (created["sessionId"], "user-1", 0)
    assert item["current_question_id"] == first.id


def test_each_start_is_a_new_session():
    first, second = start()[2]["sessionId"], start()[2]["sessionId"]
    assert first != second
    assert len(stored_sessions()) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"userId": "user-2"}', "unknown field 'userId'"),
        ("[]", "request body must be a JSON object"),
        ("{nope", "request body is not valid JSON"),
    ],
)
def test_start_refuses_bad_bodies_and_stores_nothing(body, expected):
    assert assert_error(start(body=body), 400, "VALIDATION_ERROR") == expected
    assert stored_sessions() == []


# --- GET ----------------------------------------------------------------------------------------


def test_get_a_new_session():
    session_id = start()[2]["sessionId"]
    status, _, body = get(session_id)
    assert status == 200
    assert body == {
        "sessionId": session_id,
        "history": [],
        "currentQuestion": {"id": QUESTIONS[0].id, "text": QUESTIONS[0].text},
        "progressDetails": {
            "questionsCompleted": 0,
            "totalQuestions": body["progressDetails"]["totalQuestions"],
            "percentage": 0,
            "sophisticationLevel": "BEGINNER",
        },
        "isComplete": False,
        "sophisticationLevel": "BEGINNER",
        "coachConfigStatus": "none",
    }


def test_get_shows_history_progress_and_the_next_question():
    session_id = start()[2]["sessionId"]
    answer(session_id, "Run a sub-4 marathon in October")
    body = get(session_id)[2]
    assert body["history"] == [
        {
            "questionId": QUESTIONS[0].id,
            "question": QUESTIONS[0].text,
            "answer": "Run a sub-4 marathon in October",
            "aiResponse": "Thanks!",
            "answeredAt": "2026-01-01T00:00:00.000Z",
            "status": "complete",
        }
    ]
    following = next_question({QUESTIONS[0].id}, "INTERMEDIATE")
    assert following is not None
    assert body["currentQuestion"] == {"id": following.id, "text": following.text}
    assert body["progressDetails"]["questionsCompleted"] == 1
    assert body["sophisticationLevel"] == "INTERMEDIATE"
    assert "coachId" not in body


def test_get_a_complete_session_shows_the_coach_once_it_exists():
    session_id = start()[2]["sessionId"]
    answer(session_id, "Everything", is_complete=True)
    body = get(session_id)[2]
    assert (body["isComplete"], body["currentQuestion"], body["coachConfigStatus"]) == (True, None, "generating")
    assert "coachId" not in body

    DynamoCreatorSessionRepository().attach_coach("user-1", session_id, f"coach-{session_id}")
    body = get(session_id)[2]
    assert (body["coachId"], body["coachConfigStatus"]) == (f"coach-{session_id}", "ready")


def test_missing_and_other_users_sessions_are_404():
    session_id = start(user="user-2")[2]["sessionId"]
    assert assert_error(get("nope"), 404, "NOT_FOUND") == "coach creator session not found"
    assert assert_error(get(session_id), 404, "NOT_FOUND") == "coach creator session not found"


# --- authorization and routing ------------------------------------------------------------------

ROUTES = [("POST", SESSIONS, {}), ("GET", SESSION, {"sessionId": "s1"})]


@pytest.mark.parametrize(("method", "template", "params"), ROUTES)
def test_cross_user_access_is_forbidden_and_changes_nothing(method, template, params):
    event = api_event(method, template, {"userId": "user-2", **params}, user="user-1", body="{}")
    assert_error(call(event), 403, "FORBIDDEN")
    assert stored_sessions() == []


@pytest.mark.parametrize(("method", "template", "params"), ROUTES)
def test_a_token_without_user_id_is_not_authenticated(method, template, params):
    event = api_event(method, template, {"userId": "user-1", **params}, user=None, body="{}")
    assert_error(call(event), 401, "UNAUTHORIZED")
    assert stored_sessions() == []


@pytest.mark.parametrize(("method", "template", "params"), ROUTES)
def test_an_access_token_is_refused(method, template, params):
    event = api_event(method, template, {"userId": "user-1", **params}, body="{}")
    event["requestContext"]["authorizer"]["jwt"]["claims"]["token_use"] = "access"
    assert_error(call(event), 401, "UNAUTHORIZED")
    assert stored_sessions() == []


@pytest.mark.parametrize(
    "raw_path",
    [
        "/users/user-1/coach-creator-sessions/s.1",
        "/users/user-1/coach-creator-sessions/" + "s" * 129,
        "/users/user-1/coach-creator-sessions/s1/",
        "/users/user-1/coach-creator-sessions/s1/extra",
    ],
)
def test_impossible_session_ids_are_404(raw_path):
    assert assert_error(call(api_event("GET", SESSION, raw_path=raw_path)), 404, "NOT_FOUND") == "not found"


def test_wrong_methods_are_405_with_allow():
    result = call(api_event("DELETE", SESSION, {"userId": "user-1", "sessionId": "s1"}))
    assert_error(result, 405, "METHOD_NOT_ALLOWED")
    assert result[1]["Allow"] == "GET, PUT", "the session's PUT is the creator fallback's, on the same path"
    result = call(api_event("GET", SESSIONS, {"userId": "user-1"}))
    assert_error(result, 405, "METHOD_NOT_ALLOWED")
    assert result[1]["Allow"] == "POST"


def test_start_over_a_broken_table_is_500_without_internals():
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    status, _, body = start(body="{}")
    assert (status, body) == (500, {"error": {"code": "INTERNAL_ERROR", "message": "internal error"}})
    assert json.dumps(body).count("Table") == 0
