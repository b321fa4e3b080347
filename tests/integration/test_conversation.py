"""A coach conversation through the local stack: real workers, moto DynamoDB, the Bedrock double."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from local.bedrock_double import Finish, Script, Stall, StreamException, Text
from local.demo import DEMO_COACH_ID, DEMO_USER_ID
from local.stack import TABLE_NAME, LocalStack
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.records import ChatMessage, Conversation
from tests.integration.conftest import RATE_LIMIT_PER_MINUTE
from tests.integration.model_script import TurnScript, pieces, router_reply
from tests.integration.sse_client import EventCollector, parse_body

pytestmark = pytest.mark.integration


@pytest.fixture
def repository(stack: LocalStack) -> DynamoConversationRepository:
    return DynamoConversationRepository(stack.dynamodb.resource().Table(TABLE_NAME))


@pytest.fixture
def conversation(repository: DynamoConversationRepository) -> Conversation:
    return repository.create_conversation(DEMO_USER_ID, DEMO_COACH_ID, "test")


@pytest.fixture
def token(stack: LocalStack) -> str:
    return stack.issuer.mint(DEMO_USER_ID)


@pytest.fixture
def model(stack: LocalStack) -> Iterator[None]:
    """Each test scripts the double by setting its responder; this restores the default after."""
    assert stack.bedrock is not None
    default = stack.bedrock.responder
    stack.bedrock.reset()
    yield
    stack.bedrock.responder = default


def script(stack: LocalStack, turn: TurnScript) -> None:
    assert stack.bedrock is not None
    stack.bedrock.responder = turn


def stream_url(stack: LocalStack, conversation: Conversation, function: str = "stream-coach-conversation") -> str:
    base = stack.function_urls[function].url
    return f"{base}/users/{conversation.user_id}/coaches/{conversation.coach_id}/conversations/{conversation.conversation_id}/stream"


def post(url: str, token: str | None, body: object, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url, headers=headers, json=body, timeout=30, **kwargs)


def stored(repository: DynamoConversationRepository, conversation: Conversation) -> list[ChatMessage]:
    return repository.list_messages(conversation.user_id, conversation.conversation_id)


def model_calls(stack: LocalStack) -> int:
    assert stack.bedrock is not None
    return len(stack.bedrock.requests)


def test_a_whole_turn_streams_stores_and_reads_back(stack, conversation, token, repository, model):
    script(stack, TurnScript(reply=Script.of(*pieces("Great ", "squats ", "today!"), Finish())))
    response = post(stream_url(stack, conversation), token, {"userResponse": "I squatted 5x5 at 100kg"})

    assert response.status_code == 200
    events = parse_body(response.text)
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "complete"
    assert "contextual" in types[1 : types.index("chunk")]
    chunks = "".join(e["content"] for e in events if e["type"] == "chunk")
    complete = events[-1]
    assert chunks == complete["fullMessage"] == "Great squats today!"
    assert complete["aiMessage"]["metadata"]["fallback"] is False
    assert complete["userMessage"]["content"] == "I squatted 5x5 at 100kg"
    messages = stored(repository, conversation)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "I squatted 5x5 at 100kg"),
        ("assistant", chunks),
    ]
    assert messages[1].id == complete["messageId"]

    api = httpx.get(
        f"{stack.outputs()['apiUrl']}/users/{DEMO_USER_ID}/coaches/{DEMO_COACH_ID}/conversations/{conversation.conversation_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert api.status_code == 200
    assert [m["content"] for m in api.json()["messages"]] == ["I squatted 5x5 at 100kg", chunks]


def timed_turn(stack: LocalStack, conversation: Conversation, token: str, text: str) -> dict[str, float]:
    """When each event type first arrived, in seconds from the request."""
    started = time.monotonic()
    with httpx.stream(
        "POST",
        stream_url(stack, conversation),
        headers={"Authorization": f"Bearer {token}"},
        json={"userResponse": text},
        timeout=30,
    ) as response:
        collector = EventCollector(response)
        collector.join()
    return {event["type"]: at - started for at, event in reversed(collector.events)}


def test_the_first_chunk_never_waits_for_a_slow_router(stack, conversation, token, model):
    timed_turn(stack, conversation, token, "Warm up.")  # what is timed is the order, not a first request's setup
    script(
        stack,
        TurnScript(router=router_reply(delay=1.5), reply=Script.of(*pieces("One ", "two", first_delay=0.3), Finish())),
    )
    arrivals = timed_turn(stack, conversation, token, "How do I brace?")
    assert arrivals["start"] < 0.25, "start goes out before any model call"
    assert arrivals["contextual"] < 0.25, "progress lines never wait for a model"
    assert 0.3 <= arrivals["chunk"] < 0.7, f"first chunk at {arrivals['chunk']:.3f}s: the first token, not the router"


def test_a_quick_router_leads_with_its_progress_lines(stack, conversation, token, repository, model):
    script(
        stack,
        TurnScript(
            # a route that asks for no post-turn work: nothing of this turn may reach the next test's model
            router=router_reply(delay=0.05, needsMemoryRetrieval=True),
            reply=Script.of(*pieces("As you said, ", "mornings.", first_delay=0.4), Finish()),
        ),
    )
    response = post(stream_url(stack, conversation), token, {"userResponse": "When should I train?"})
    events = parse_body(response.text)
    types = [e["type"] for e in events]
    before_reply = [e["updateType"] for e in events[: types.index("chunk")] if e["type"] == "contextual"]
    assert before_reply == ["thinking", "memory_retrieval"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"userResponse": "   "}, 400, "VALIDATION_ERROR"),
        ({"userResponse": "hi", "extra": 1}, 400, "VALIDATION_ERROR"),
        ({"userResponse": "hi", "imageS3Keys": ["user-uploads/someone-else/a.png"]}, 403, "FORBIDDEN"),
        ({"userResponse": "x" * 70_000}, 413, "PAYLOAD_TOO_LARGE"),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(stack, conversation, token, repository, model, body, status, code):
    response = post(stream_url(stack, conversation), token, body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert stored(repository, conversation) == []
    assert model_calls(stack) == 0


def test_auth_and_lookup_failures_are_refused_and_change_nothing(stack, conversation, token, repository, model):
    url = stream_url(stack, conversation)
    body = {"userResponse": "hi"}
    cases = [
        (post(url, None, body), 401),
        (post(url, stack.issuer.mint(DEMO_USER_ID, ttl_seconds=-120), body), 401),
        (post(url, stack.issuer.mint("intruder"), body), 403),
        (post(url.replace(conversation.conversation_id, "missing"), token, body), 404),
        (post(url.replace(DEMO_COACH_ID, "other-coach"), token, body), 404),
        (httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30), 405),
        (post(stream_url(stack, conversation, "t-conversation-streaming-off"), token, body), 503),
        (post(stream_url(stack, conversation, "t-conversation-misconfigured"), token, body), 502),
    ]
    assert [response.status_code for response, _ in cases] == [status for _, status in cases]
    assert cases[0][0].json() == {"error": {"code": "UNAUTHORIZED", "message": "missing token"}}
    assert cases[1][0].json()["error"]["message"] == "token expired"
    assert cases[-2][0].json()["error"]["code"] == "STREAMING_DISABLED"
    # A missing setting fails the init, never a request: Lambda answers a failed init with its own 502,
    # and the init error names the variable.
    assert cases[-1][0].json() == {"Message": "Internal Server Error"}
    init_errors = [env.server.last_init_error for env in stack.functions["t-conversation-misconfigured"].environments]
    assert any(error and b"JWT_AUDIENCE is required" in error for error in init_errors)
    assert stored(repository, conversation) == []
    assert model_calls(stack) == 0


def test_rate_limit_answers_429_with_retry_after(stack, conversation, model):
    user = f"busy-{uuid.uuid4().hex[:8]}"
    token = stack.issuer.mint(user)
    url = stream_url(stack, conversation).replace(f"/users/{DEMO_USER_ID}/", f"/users/{user}/")
    statuses = [post(url, token, {"userResponse": "hi"}).status_code for _ in range(RATE_LIMIT_PER_MINUTE + 1)]
    assert statuses[:RATE_LIMIT_PER_MINUTE] == [404] * RATE_LIMIT_PER_MINUTE  # counted, then not theirs: 404
    limited = post(url, token, {"userResponse": "hi"})
    assert statuses[RATE_LIMIT_PER_MINUTE] == limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(limited.headers["retry-after"]) <= 61


def test_failure_before_the_first_token_falls_back_to_one_converse_call(stack, conversation, token, repository, model):
    script(
        stack,
        TurnScript(reply=Script.of(StreamException("throttlingException")), fallback=Script.reply("Steady reply.")),
    )
    events = parse_body(post(stream_url(stack, conversation), token, {"userResponse": "hello"}).text)
    assert events[-1]["type"] == "complete"
    assert events[-1]["fullMessage"] == "Steady reply."
    assert events[-1]["aiMessage"]["metadata"]["fallback"] is True
    assert stored(repository, conversation)[-1].metadata.fallback is True


def test_when_the_fallback_fails_too_the_turn_ends_model_unavailable(stack, conversation, token, repository, model):
    failing = Script.of(StreamException("throttlingException"))
    script(stack, TurnScript(reply=failing, fallback=Script.error(400, "ValidationException", "no")))
    events = parse_body(post(stream_url(stack, conversation), token, {"userResponse": "hello"}).text)
    assert events[-1] == {
        "type": "error",
        "code": "MODEL_UNAVAILABLE",
        "message": "the coach is unavailable; please try again",
    }
    assert [m.role for m in stored(repository, conversation)] == ["user"]


def test_failure_after_text_stores_the_partial_reply_marked_interrupted(stack, conversation, token, repository, model):
    script(
        stack,
        TurnScript(reply=Script.of(*pieces("Half ", "a "), StreamException("modelStreamErrorException"))),
    )
    events = parse_body(post(stream_url(stack, conversation), token, {"userResponse": "hello"}).text)
    assert [e["content"] for e in events if e["type"] == "chunk"] == ["Half ", "a "]
    assert events[-1]["code"] == "MODEL_STREAM_INTERRUPTED"
    reply = stored(repository, conversation)[-1]
    assert (reply.role, reply.content, reply.metadata.status) == ("assistant", "Half a ", "interrupted")


def test_a_stall_past_the_budget_ends_with_timeout_and_keeps_the_partial(stack, conversation, token, repository, model):
    script(stack, TurnScript(reply=Script.of(*pieces("Before ", "the "), Stall(10), Text("never"), Finish())))
    started = time.monotonic()
    response = post(stream_url(stack, conversation, "t-conversation-short-budget"), token, {"userResponse": "hello"})
    assert time.monotonic() - started < 5
    events = parse_body(response.text)
    assert events[-1]["code"] == "TIMEOUT"
    reply = stored(repository, conversation)[-1]
    assert (reply.content, reply.metadata.status) == ("Before the ", "timeout")


def test_a_client_that_disconnects_still_gets_its_reply_stored(stack, conversation, token, repository, model):
    script(stack, TurnScript(reply=Script.of(*pieces("One ", "two ", "three ", "four", delay=0.15), Finish())))
    with httpx.stream(
        "POST",
        stream_url(stack, conversation),
        headers={"Authorization": f"Bearer {token}"},
        json={"userResponse": "hello"},
        timeout=30,
    ) as response:
        EventCollector(response).wait_for(1)
    deadline = time.monotonic() + 10
    while len(stored(repository, conversation)) < 2:
        assert time.monotonic() < deadline, "the reply was lost with the client"
        time.sleep(0.05)
    assert stored(repository, conversation)[-1].content == "One two three four"


def test_a_retry_with_the_same_client_message_id_replays_without_a_model_call(
    stack, conversation, token, repository, model
):
    script(stack, TurnScript(reply=Script.of(*pieces("Only ", "once."), Finish())))
    body = {"userResponse": "hello", "clientMessageId": "msg-1"}
    first = parse_body(post(stream_url(stack, conversation), token, body).text)
    calls = model_calls(stack)
    second = parse_body(post(stream_url(stack, conversation), token, body).text)
    assert model_calls(stack) == calls
    assert second[-1]["fullMessage"] == first[-1]["fullMessage"] == "Only once."
    assert second[-1]["messageId"] == first[-1]["messageId"]
    assert len(stored(repository, conversation)) == 2


def test_a_retry_while_the_first_is_in_flight_gets_409(stack, conversation, token, repository, model):
    script(stack, TurnScript(reply=Script.of(*pieces("Slow ", "reply", delay=0.5), Finish())))
    body = {"userResponse": "hello", "clientMessageId": "msg-2"}
    first: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: first.append(post(stream_url(stack, conversation), token, body)))
    thread.start()
    time.sleep(0.3)
    second = post(stream_url(stack, conversation), token, body)
    thread.join()
    assert second.status_code == 409
    assert parse_body(first[0].text)[-1]["type"] == "complete"
    assert len(stored(repository, conversation)) == 2


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_images_under_the_users_prefix_reach_the_model_as_image_blocks(stack, conversation, token, model):
    s3 = stack.dynamodb.client("s3")
    key = f"user-uploads/{DEMO_USER_ID}/form-check.png"
    s3.put_object(Bucket="coach-stream-local-uploads", Key=key, Body=PNG)
    script(stack, TurnScript(reply=Script.of(*pieces("Nice ", "depth."), Finish())))
    response = post(stream_url(stack, conversation), token, {"userResponse": "How is my squat?", "imageS3Keys": [key]})
    assert parse_body(response.text)[-1]["type"] == "complete"
    reply_request = next(r for r in stack.bedrock.requests if r.streaming)
    blocks = reply_request.body["messages"][-1]["content"]
    images = [block["image"] for block in blocks if "image" in block]
    assert len(images) == 1
    assert images[0]["format"] == "png"


def test_a_missing_image_is_refused_before_the_stream(stack, conversation, token, repository, model):
    """In AWS the role cannot list the bucket, so S3 answers 403, not 404: the local gate answers the same."""
    key = f"user-uploads/{DEMO_USER_ID}/never-uploaded.png"
    response = post(stream_url(stack, conversation), token, {"userResponse": "look", "imageS3Keys": [key]})
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "VALIDATION_ERROR", "message": f"image not found: {key}"}
    assert stored(repository, conversation) == []
    assert model_calls(stack) == 0
    assert any(c.hid_a_missing_key and c.caller.endswith("stream-coach-conversation") for c in stack.recorded_calls())


def test_a_file_that_is_not_an_image_is_refused_before_the_stream(stack, conversation, token, repository, model):
    s3 = stack.dynamodb.client("s3")
    key = f"user-uploads/{DEMO_USER_ID}/notes.txt"
    s3.put_object(Bucket="coach-stream-local-uploads", Key=key, Body=b"just text")
    response = post(stream_url(stack, conversation), token, {"userResponse": "look", "imageS3Keys": [key]})
    assert response.status_code == 400
    assert "image" in response.json()["error"]["message"]
    assert stored(repository, conversation) == []
