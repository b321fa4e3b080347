"""The coach creator interview through the local stack, from the first question to a usable coach."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from local.bedrock_double import Finish, RecordedRequest, Script, StreamException, Text
from local.model_responders import local_coach_responder
from local.stack import TABLE_NAME, LocalStack
from shared.coach_creator.questions import question_by_id
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from tests.integration.sse_client import parse_body

pytestmark = pytest.mark.integration


class InterviewModel:
    """Quick interview replies (optionally split around a marker); the default responder otherwise."""

    def __init__(self, *pieces: str, delay: float = 0.005) -> None:
        self.pieces = pieces or ("Thanks, that helps. ", "Next question coming up.")
        self.delay = delay
        self.default = local_coach_responder(speed=50)

    def __call__(self, request: RecordedRequest) -> Script:
        if request.streaming:
            return Script((*(Text(p, self.delay) for p in self.pieces), Finish()))
        return self.default(request)


@pytest.fixture
def model(stack: LocalStack):
    assert stack.bedrock is not None
    default = stack.bedrock.responder
    stack.bedrock.reset()
    stack.bedrock.responder = InterviewModel()
    yield stack.bedrock
    stack.bedrock.responder = default


@pytest.fixture
def user(stack: LocalStack) -> tuple[str, str]:
    user_id = f"creator-{time.monotonic_ns()}"
    return user_id, stack.issuer.mint(user_id)


@pytest.fixture
def sessions(stack: LocalStack) -> DynamoCreatorSessionRepository:
    return DynamoCreatorSessionRepository(stack.dynamodb.resource().Table(TABLE_NAME))


def api(stack: LocalStack, method: str, path: str, token: str, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, f"{stack.outputs()['apiUrl']}{path}", headers=headers, timeout=30, **kwargs)


def new_session(stack: LocalStack, user: tuple[str, str]) -> dict:
    created = api(stack, "POST", f"/users/{user[0]}/coach-creator-sessions", user[1])
    assert created.status_code == 201, created.text
    return created.json()


def answer(
    stack: LocalStack, user: tuple[str, str], session_id: str, text: str, message_id: str | None = None
) -> httpx.Response:
    url = f"{stack.outputs()['coachCreatorStreamUrl']}/users/{user[0]}/coach-creator-sessions/{session_id}/stream"
    body = {"userResponse": text} | ({"clientMessageId": message_id} if message_id else {})
    return httpx.post(url, headers={"Authorization": f"Bearer {user[1]}"}, json=body, timeout=30)


def streamed(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return parse_body(response.text)


def progress_of(events: list[dict]) -> dict:
    [found] = [event["progressDetails"] for event in events if event["type"] == "progress"]
    return found


def test_a_whole_interview_builds_a_coach_you_can_talk_to(stack, user, model):
    session = new_session(stack, user)
    assert session["question"]["text"]
    answers = 0
    complete: dict = {}
    while not complete.get("isComplete"):
        response = answer(
            stack, user, session["sessionId"], f"Answer {answers}: I have a sore left knee, 3 days a week."
        )
        assert response.status_code == 200, response.text
        events = parse_body(response.text)
        types = [e["type"] for e in events]
        assert types[0] == "start" and types[-1] == "complete" and "progress" in types
        complete = events[-1]
        chunks = "".join(e["content"] for e in events if e["type"] == "chunk")
        assert complete["aiResponse"] == chunks
        answers += 1
        assert answers <= 15
    assert 10 <= answers <= 15
    assert complete["coachConfigGenerating"] is True
    assert complete["progressDetails"]["percentage"] == 100
    assert answer(stack, user, session["sessionId"], "one more").status_code == 409

    deadline = time.monotonic() + 20
    while True:
        state = api(stack, "GET", f"/users/{user[0]}/coach-creator-sessions/{session['sessionId']}", user[1]).json()
        if state.get("coachId"):
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state["isComplete"] is True
    assert len(state["history"]) == answers
    coach = api(stack, "GET", f"/users/{user[0]}/coaches/{state['coachId']}", user[1]).json()
    assert "knee" in coach["safetyNotes"].lower()

    conversation = api(stack, "POST", f"/users/{user[0]}/coaches/{state['coachId']}/conversations", user[1], json={})
    assert conversation.status_code == 201
    conversation_id = conversation.json()["conversationId"]
    url = f"{stack.outputs()['coachConversationStreamUrl']}/users/{user[0]}/coaches/{state['coachId']}/conversations/{conversation_id}/stream"
    turn = httpx.post(
        url, headers={"Authorization": f"Bearer {user[1]}"}, json={"userResponse": "Hi coach!"}, timeout=30
    )
    assert parse_body(turn.text)[-1]["type"] == "complete"


def test_the_marker_never_reaches_the_user_however_it_is_split(stack, user, model):
    model.responder = InterviewModel("Love it. ", "Next: how often? [", "[SOPHIST", "ICATION: ADVAN", "CED]", "]")
    session = new_session(stack, user)
    events = parse_body(answer(stack, user, session["sessionId"], "I run my RPE-based mesocycles").text)
    chunks = "".join(e["content"] for e in events if e["type"] == "chunk")
    assert "SOPHISTICATION" not in chunks.upper() and "[[" not in chunks
    assert chunks.strip() == "Love it. Next: how often?"
    assert events[-1]["progressDetails"]["sophisticationLevel"] == "ADVANCED"
    assert "SOPHISTICATION" not in events[-1]["aiResponse"].upper()


def test_concurrent_answers_one_wins_the_others_get_409(stack, user, model, sessions):
    model.responder = InterviewModel("Slow ", "reply.", delay=0.2)
    session = new_session(stack, user)
    statuses: list[int] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        status = answer(stack, user, session["sessionId"], f"racer {index}").status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) <= [200, 409]
    accepted = statuses.count(200)
    assert accepted >= 1 and statuses.count(409) == 10 - accepted
    stored = sessions.get_session(user[0], session["sessionId"])
    assert len(stored.history) == accepted
    assert len({qa.answer for qa in stored.history}) == accepted


def test_pre_stream_errors_write_nothing(stack, user, model, sessions):
    session = new_session(stack, user)
    before = sessions.get_session(user[0], session["sessionId"])
    url = f"{stack.outputs()['coachCreatorStreamUrl']}/users/{user[0]}/coach-creator-sessions/{session['sessionId']}/stream"
    auth = {"Authorization": f"Bearer {user[1]}"}
    cases = [
        (httpx.post(url, json={"userResponse": "hi"}, timeout=30), 401),
        (
            httpx.post(
                url,
                headers={"Authorization": f"Bearer {stack.issuer.mint('someone-else')}"},
                json={"userResponse": "hi"},
                timeout=30,
            ),
            403,
        ),
        (
            httpx.post(
                url.replace(session["sessionId"], "missing"), headers=auth, json={"userResponse": "hi"}, timeout=30
            ),
            404,
        ),
        (httpx.post(url, headers=auth, json={"userResponse": ""}, timeout=30), 400),
        (httpx.post(url, headers=auth, json={"userResponse": "x" * 70_000}, timeout=30), 413),
        (httpx.get(url, headers=auth, timeout=30), 405),
    ]
    assert [r.status_code for r, _ in cases] == [status for _, status in cases]
    assert all("error" in r.json() for r, _ in cases)
    assert sessions.get_session(user[0], session["sessionId"]) == before
    assert [r for r in model.requests if r.streaming] == []


def test_the_fallback_put_answers_with_json(stack, user, model):
    session = new_session(stack, user)
    response = api(
        stack,
        "PUT",
        f"/users/{user[0]}/coach-creator-sessions/{session['sessionId']}",
        user[1],
        json={"userResponse": "Get stronger"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "sessionId",
        "aiResponse",
        "isComplete",
        "nextQuestion",
        "progressDetails",
        "coachConfigGenerating",
    }
    assert body["progressDetails"]["questionsCompleted"] == 1


def test_a_repeated_client_message_id_replays_the_step_without_a_model_call(stack, user, model, sessions):
    session = new_session(stack, user)
    first = streamed(answer(stack, user, session["sessionId"], "I want to run a marathon", "msg-1"))
    assert first[-1]["type"] == "complete"
    recorded = sessions.get_session(user[0], session["sessionId"])
    calls = len(model.requests)

    replay = streamed(answer(stack, user, session["sessionId"], "I want to run a marathon", "msg-1"))
    assert [e["type"] for e in replay] == ["start", "chunk", "progress", "complete"]
    assert replay[0]["requestId"] != first[0]["requestId"]
    assert replay[1]["content"] == first[-1]["aiResponse"]
    assert replay[-1] == first[-1]
    assert progress_of(replay) == progress_of(first)

    fallback = api(
        stack,
        "PUT",
        f"/users/{user[0]}/coach-creator-sessions/{session['sessionId']}",
        user[1],
        json={"userResponse": "I want to run a marathon", "clientMessageId": "msg-1"},
    )
    assert fallback.status_code == 200, fallback.text
    assert fallback.json() == {k: v for k, v in first[-1].items() if k not in ("type", "status")}
    assert len(model.requests) == calls
    assert sessions.get_session(user[0], session["sessionId"]) == recorded


def test_a_client_message_id_reused_for_another_text_is_409_and_writes_nothing(stack, user, model, sessions):
    session = new_session(stack, user)
    streamed(answer(stack, user, session["sessionId"], "I want to run a marathon", "msg-1"))
    recorded = sessions.get_session(user[0], session["sessionId"])
    calls = len(model.requests)

    refused = answer(stack, user, session["sessionId"], "Actually, I want to swim", "msg-1")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "IDEMPOTENCY_MISMATCH"
    assert len(model.requests) == calls
    assert sessions.get_session(user[0], session["sessionId"]) == recorded


def test_an_interrupted_reply_keeps_the_question_open_and_its_retry_answers_it(stack, user, model, sessions):
    session = new_session(stack, user)
    first_question = session["question"]["id"]
    model.enqueue(Script.of(Text("Half "), Text("a thought"), StreamException("modelStreamErrorException")))

    broken = streamed(answer(stack, user, session["sessionId"], "I want to get stronger", "msg-1"))
    assert broken[-1]["type"] == "error" and broken[-1]["code"] == "MODEL_STREAM_INTERRUPTED"
    assert "".join(e["content"] for e in broken if e["type"] == "chunk") == "Half a thought"
    assert progress_of(broken)["questionsCompleted"] == 0
    stored = sessions.get_session(user[0], session["sessionId"])
    assert stored.current_question_id == first_question
    assert [(qa.question_id, qa.ai_response, qa.status) for qa in stored.history] == [
        (first_question, "Half a thought", "interrupted")
    ]

    retried = streamed(answer(stack, user, session["sessionId"], "I want to get stronger", "msg-1"))
    complete = retried[-1]
    assert complete["type"] == "complete"
    assert complete["progressDetails"]["questionsCompleted"] == 1
    stored = sessions.get_session(user[0], session["sessionId"])
    assert [(qa.question_id, qa.status) for qa in stored.history] == [
        (first_question, "interrupted"),
        (first_question, "complete"),
    ]
    assert stored.current_question_id not in (None, first_question)
    assert complete["nextQuestion"] == question_by_id(stored.current_question_id).text


def test_a_known_path_with_a_method_it_does_not_serve_is_405_with_allow(stack, user):
    """The HTTP API's catch-all routes bring the method to the function, which names every method of
    the path, whichever function serves it (a session's GET is coach-api's, its PUT the fallback's)."""
    user_id, token = user
    session = new_session(stack, user)
    refused = api(stack, "DELETE", f"/users/{user_id}/coach-creator-sessions/{session['sessionId']}", token)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, PUT"
    assert refused.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    posted = api(stack, "POST", f"/users/{user_id}/coaches", token, json={})
    assert (posted.status_code, posted.headers["allow"]) == (405, "GET")
    assert (
        api(stack, "GET", f"/users/{user_id}/coach-creator-sessions/{session['sessionId']}", token).status_code == 200
    )
