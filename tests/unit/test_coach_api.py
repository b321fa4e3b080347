"""coach-api through its real handler: HTTP API 2.0 events in, contract responses out, moto's DynamoDB."""

from __future__ import annotations

import base64
import json
import time

import boto3
import pytest

from functions.coach_api.handler import handler
from local.issuer import LOCAL_CLIENT_ID, LocalIssuer
from shared.flags import user_bucket
from shared.http import auth
from shared.observability import metrics
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.table import forget_tables
from shared.store.records import ChatMessage, Coach, MessageMetadata
from tests.fixtures.aws import moto_coach_table
from tests.fixtures.events import CoachApiContext
from tests.fixtures.jwks_server import JwksServer, serving

TABLE = "unit-test"  # the name the handler module read from its settings when it was imported
COACHES = "/users/{userId}/coaches"
COACH = COACHES + "/{coachId}"
CONVERSATIONS = COACH + "/conversations"
CONVERSATION = CONVERSATIONS + "/{conversationId}"

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


def api_event(
    method: str,
    template: str,
    params: dict[str, str] | None = None,
    *,
    user: str | None = "user-1",
    body: str | None = None,
    is_base64: bool = False,
    headers: dict[str, str] | None = None,
    public: bool = False,
    raw_path: str | None = None,
) -> dict:
    """What API Gateway's HTTP API sends for one matched route (claims only behind the authorizer)."""
    params = params or {}
    path = raw_path or template.format(**params)
    context: dict = {
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.execute-api.us-east-1.amazonaws.com",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
        "requestId": "gw-req-1",
        "routeKey": f"{method} {template}",
        "stage": "$default",
        "time": "01/Jan/2026:00:00:00 +0000",
        "timeEpoch": 0,
    }
    if not public:
        claims = {"sub": "s-1", "token_use": "id", "exp": "1999999999"}
        if user is not None:
            claims["custom:user_id"] = user
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict = {
        "version": "2.0",
        "routeKey": f"{method} {template}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": context,
        "isBase64Encoded": is_base64,
    }
    if params:
        event["pathParameters"] = params
    if body is not None:
        event["body"] = body
    return event


def call(event: dict) -> tuple[int, dict, dict]:
    response = handler(event, CoachApiContext())
    return response["statusCode"], response["headers"], json.loads(response["body"])


def assert_error(result: tuple[int, dict, dict], status: int, code: str) -> str:
    got_status, headers, body = result
    assert (got_status, body["error"]["code"]) == (status, code), body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert headers["Content-Type"] == "application/json"
    return body["error"]["message"]


@pytest.fixture(autouse=True)
def aws(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "CoachTest")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "coach-api")
    for name in ("STREAMING_ENABLED", "STREAMING_PERCENTAGE", "JWT_USER_ID_CLAIM"):
        monkeypatch.delenv(name, raising=False)
    # Powertools read the namespace when the module was imported, perhaps before this fixture ran
    monkeypatch.setattr(metrics.provider, "namespace", "CoachTest")
    forget_tables()
    with moto_coach_table(monkeypatch, TABLE):
        yield
    forget_tables()


def make_coach(user_id: str, coach_id: str, name: str = "Coach") -> Coach:
    coach = Coach(user_id=user_id, coach_id=coach_id, name=name, personality="calm", created_at="2026-01-01")
    assert DynamoCoachRepository().create_coach(coach)
    return coach


def stored_conversations() -> list[dict]:
    items = boto3.resource("dynamodb").Table(TABLE).scan()["Items"]
    return [item for item in items if item.get("type") == "conversation"]


# --- coaches ------------------------------------------------------------------------------------


def test_list_coaches_returns_only_the_callers_coaches():
    first, second = make_coach("user-1", "c1", "Ada"), make_coach("user-1", "c2", "Bo")
    make_coach("user-2", "c3", "Other")
    status, headers, body = call(api_event("GET", COACHES, {"userId": "user-1"}))
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert sorted(body["coaches"], key=lambda c: c["coachId"]) == [first.api(), second.api()]
    assert body["coaches"][0]["userId"] == "user-1"


def test_list_coaches_of_a_user_without_any_is_empty():
    assert call(api_event("GET", COACHES, {"userId": "user-9"}, user="user-9"))[::2] == (200, {"coaches": []})


def test_get_coach_and_missing_coach():
    coach = make_coach("user-1", "c1")
    assert call(api_event("GET", COACH, {"userId": "user-1", "coachId": "c1"}))[::2] == (200, coach.api())
    message = assert_error(call(api_event("GET", COACH, {"userId": "user-1", "coachId": "c2"})), 404, "NOT_FOUND")
    assert message == "coach not found"


def test_another_users_coach_is_not_found_under_your_own_path():
    make_coach("user-2", "c1")
    assert_error(call(api_event("GET", COACH, {"userId": "user-1", "coachId": "c1"})), 404, "NOT_FOUND")


# --- authorization ------------------------------------------------------------------------------

ROUTES = [
    ("GET", COACHES, {}),
    ("GET", COACH, {"coachId": "c1"}),
    ("POST", CONVERSATIONS, {"coachId": "c1"}),
    ("GET", CONVERSATION, {"coachId": "c1", "conversationId": "v1"}),
]


@pytest.mark.parametrize(("method", "template", "params"), ROUTES)
def test_cross_user_access_is_forbidden_and_changes_nothing(method, template, params):
    make_coach("user-2", "c1")
    event = api_event(method, template, {"userId": "user-2", **params}, user="user-1", body="{}")
    assert_error(call(event), 403, "FORBIDDEN")
    assert stored_conversations() == []


@pytest.mark.parametrize(("method", "template", "params"), ROUTES)
def test_a_token_without_user_id_is_not_authenticated_as_on_the_streams(method, template, params):
    make_coach("user-1", "c1")
    event = api_event(method, template, {"userId": "user-1", **params}, user=None, body="{}")
    assert_error(call(event), 401, "UNAUTHORIZED")
    assert stored_conversations() == []


@pytest.mark.parametrize(("method", "template", "params"), ROUTES)
def test_an_access_token_is_refused_as_on_the_streams(method, template, params):
    """API Gateway's JWT authorizer accepts an access token of the app client; the routes do not."""
    make_coach("user-1", "c1")
    event = api_event(method, template, {"userId": "user-1", **params}, body="{}")
    event["requestContext"]["authorizer"]["jwt"]["claims"]["token_use"] = "access"
    assert_error(call(event), 401, "UNAUTHORIZED")
    assert stored_conversations() == []


def test_user_id_claim_is_configurable(monkeypatch):
    monkeypatch.setenv("JWT_USER_ID_CLAIM", "sub")
    make_coach("s-1", "c1")
    assert call(api_event("GET", COACH, {"userId": "s-1", "coachId": "c1"}, user="someone-else"))[0] == 200


@pytest.mark.parametrize(
    "raw_path",
    [
        "/users/user-1/coaches/c.1",
        "/users/user-1/coaches/" + "c" * 129,
        "/users/user-1/coaches/c%2F1",
        "/users/us%20er/coaches",
        "/users/user-1/coaches/c1/",
        "/users/user-1/coaches/c1/extra",
        "/nowhere",
    ],
)
def test_impossible_ids_and_unknown_paths_are_404(raw_path):
    make_coach("user-1", "c1")
    message = assert_error(call(api_event("GET", COACH, raw_path=raw_path)), 404, "NOT_FOUND")
    assert message == "not found"


def test_percent_encoded_ids_are_decoded_before_validation():
    coach = make_coach("user-1", "c_1")
    event = api_event("GET", COACH, raw_path="/users/user-1/coaches/c%5F1")
    assert call(event)[::2] == (200, coach.api())


def test_wrong_method_on_a_known_path_is_405_with_allow():
    result = call(api_event("DELETE", COACH, {"userId": "user-1", "coachId": "c1"}))
    assert_error(result, 405, "METHOD_NOT_ALLOWED")
    assert result[1]["Allow"] == "GET"
    result = call(api_event("POST", "/config", public=True))
    assert_error(result, 405, "METHOD_NOT_ALLOWED")


def test_an_unexpected_failure_is_500_without_internals():
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    status, _, body = call(api_event("GET", COACHES, {"userId": "user-1"}))
    assert status == 500
    assert body == {"error": {"code": "INTERNAL_ERROR", "message": "internal error"}}


# --- conversations ------------------------------------------------------------------------------


def test_create_conversation_then_get_it_with_messages_oldest_first():
    make_coach("user-1", "c1")
    path = {"userId": "user-1", "coachId": "c1"}
    status, _, created = call(api_event("POST", CONVERSATIONS, path, body=json.dumps({"title": "  Squats  "})))
    assert status == 201
    assert created["title"] == "Squats"
    assert (created["userId"], created["coachId"], created["messageCount"]) == ("user-1", "c1", 0)
    conversation_id = created["conversationId"]

    repository = DynamoConversationRepository()
    conversation = repository.get_conversation("user-1", "c1", conversation_id)
    assert conversation is not None
    sent = []
    # ids sort against arrival order, so only the stored order can put them right
    for index, (user_text, reply_text) in enumerate([("first", "reply one"), ("second", "reply two")]):
        user_message = ChatMessage(id=f"z{9 - 2 * index}", role="user", content=user_text, timestamp="t")
        reply = ChatMessage(
            id=f"z{8 - 2 * index}",
            role="assistant",
            content=reply_text,
            timestamp="t",
            client_message_id=None,
            metadata=MessageMetadata(model="m", output_tokens=3),
        )
        turn = repository.begin_turn(conversation, user_message, digest=user_text, until_epoch=2**31)
        time.sleep(0.003)
        repository.finish_turn(conversation, turn, reply)
        time.sleep(0.003)
        sent += [user_message, reply]

    status, _, body = call(api_event("GET", CONVERSATION, {**path, "conversationId": conversation_id}))
    assert status == 200
    assert body["conversation"]["conversationId"] == conversation_id
    assert body["conversation"]["messageCount"] == 4
    assert [m["content"] for m in body["messages"]] == ["first", "reply one", "second", "reply two"]
    assert body["messages"] == [message.contract() for message in sent]
    assert body["messages"][1]["metadata"]["outputTokens"] == 3


@pytest.mark.parametrize(
    ("body", "is_base64"),
    [(None, False), ("", False), ("  \n", False), ("{}", False), ('{"title": null}', False)],
)
def test_create_conversation_without_a_title(body, is_base64):
    make_coach("user-1", "c1")
    event = api_event("POST", CONVERSATIONS, {"userId": "user-1", "coachId": "c1"}, body=body, is_base64=is_base64)
    status, _, created = call(event)
    assert status == 201
    assert created["title"] == ""


def test_create_conversation_accepts_a_base64_body():
    make_coach("user-1", "c1")
    body = base64.b64encode(json.dumps({"title": "Déjà vu"}).encode()).decode()
    event = api_event("POST", CONVERSATIONS, {"userId": "user-1", "coachId": "c1"}, body=body, is_base64=True)
    status, _, created = call(event)
    assert (status, created["title"]) == (201, "Déjà vu")


def test_create_conversation_for_a_missing_coach_is_404_and_stores_nothing():
    make_coach("user-2", "c1")
    event = api_event("POST", CONVERSATIONS, {"userId": "user-1", "coachId": "c1"}, body="{}")
    assert assert_error(call(event), 404, "NOT_FOUND") == "coach not found"
    assert stored_conversations() == []


@pytest.mark.parametrize(
    ("body", "is_base64", "expected"),
    [
        ("{not json", False, "request body is not valid JSON"),
        ('["title"]', False, "request body must be a JSON object"),
        ('"title"', False, "request body must be a JSON object"),
        ('{"title": "x", "coachId": "c9"}', False, "unknown field 'coachId'"),
        ('{"title": 7}', False, "title: must be a string"),
        (json.dumps({"title": "x" * 201}), False, "title: must be at most 200 characters"),
        ("%%%", True, "request body is not valid base64"),
    ],
)
def test_create_conversation_refuses_bad_bodies(body, is_base64, expected):
    make_coach("user-1", "c1")
    event = api_event("POST", CONVERSATIONS, {"userId": "user-1", "coachId": "c1"}, body=body, is_base64=is_base64)
    assert assert_error(call(event), 400, "VALIDATION_ERROR") == expected
    assert stored_conversations() == []


def test_create_conversation_refuses_a_huge_body():
    make_coach("user-1", "c1")
    body = json.dumps({"title": "x" * 70_000})
    event = api_event("POST", CONVERSATIONS, {"userId": "user-1", "coachId": "c1"}, body=body)
    assert_error(call(event), 413, "PAYLOAD_TOO_LARGE")


def test_title_of_exactly_200_characters_is_accepted():
    make_coach("user-1", "c1")
    body = json.dumps({"title": "x" * 200})
    event = api_event("POST", CONVERSATIONS, {"userId": "user-1", "coachId": "c1"}, body=body)
    assert call(event)[0] == 201


def test_missing_conversation_and_conversation_under_another_coach_are_404():
    make_coach("user-1", "c1")
    make_coach("user-1", "c2")
    created = DynamoConversationRepository().create_conversation("user-1", "c1", "t")
    found = {"userId": "user-1", "coachId": "c1", "conversationId": created.conversation_id}
    assert call(api_event("GET", CONVERSATION, found))[0] == 200
    for params in ({**found, "conversationId": "nope"}, {**found, "coachId": "c2"}):
        message = assert_error(call(api_event("GET", CONVERSATION, params)), 404, "NOT_FOUND")
        assert message == "conversation not found"


# --- /config ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    """A local issuer whose JWKS is served over real loopback HTTP, as the verifier fetches it."""
    server = JwksServer()
    local = LocalIssuer.load_or_create(tmp_path_factory.mktemp("issuer"), issuer=server.pool_url)
    server.document = local.jwks()
    with serving(server):
        yield local


@pytest.fixture
def verifier_env(issuer, monkeypatch):
    monkeypatch.setenv("JWT_ISSUER", issuer.issuer)
    monkeypatch.setenv("JWT_AUDIENCE", LOCAL_CLIENT_ID)
    monkeypatch.delenv("JWT_JWKS_URL", raising=False)
    auth.default_verifier.cache_clear()
    yield
    auth.default_verifier.cache_clear()


def get_config(token: str | None = None, header: str = "authorization") -> dict:
    headers = {header: f"Bearer {token}"} if token is not None else {}
    status, _, body = call(api_event("GET", "/config", public=True, headers=headers))
    assert status == 200
    return body


def test_config_anonymous(monkeypatch):
    monkeypatch.setenv("STREAMING_PERCENTAGE", "25")
    monkeypatch.setenv("COACH_CONVERSATION_STREAM_URL", "https://conv.example")
    monkeypatch.setenv("COACH_CREATOR_STREAM_URL", "https://creator.example")
    monkeypatch.setenv("API_URL", "https://api.example")
    assert get_config() == {
        "features": {"streamingEnabled": True, "streamingPercentage": 25},
        "endpoints": {
            "coachConversationStream": "https://conv.example",
            "coachCreatorStream": "https://creator.example",
            "api": "https://api.example",
        },
    }


def test_config_with_a_valid_token_tells_whether_to_stream(issuer, verifier_env, set_setting):
    token = issuer.mint("user-1")
    set_setting("STREAMING_PERCENTAGE", "100")
    assert get_config(token)["useStreaming"] is True
    assert get_config(token, header="Authorization")["useStreaming"] is True
    set_setting("STREAMING_PERCENTAGE", "0")
    assert get_config(token)["useStreaming"] is False
    set_setting("STREAMING_PERCENTAGE", "100")
    set_setting("STREAMING_ENABLED", "false")
    body = get_config(token)
    assert (body["features"]["streamingEnabled"], body["useStreaming"]) == (False, False)


def test_config_rollout_follows_the_users_stable_bucket(issuer, verifier_env, set_setting):
    user_id = next(f"user-{n}" for n in range(1000) if 10 <= user_bucket(f"user-{n}") <= 90)
    bucket = user_bucket(user_id)
    token = issuer.mint(user_id)
    set_setting("STREAMING_PERCENTAGE", str(bucket))
    assert get_config(token)["useStreaming"] is False
    set_setting("STREAMING_PERCENTAGE", str(bucket + 1))
    assert get_config(token)["useStreaming"] is True


@pytest.mark.parametrize("kind", ["garbage", "expired", "wrong audience", "other key"])
def test_config_with_an_invalid_token_is_anonymous(issuer, verifier_env, tmp_path, kind):
    token = {
        "garbage": lambda: "not-a-jwt",
        "expired": lambda: issuer.mint("user-1", extra_claims={"iat": 1, "exp": 100}),
        "wrong audience": lambda: issuer.mint("user-1", extra_claims={"aud": "another-client"}),
        "other key": lambda: LocalIssuer.load_or_create(tmp_path, issuer=issuer.issuer).mint("user-1"),
    }[kind]()
    body = get_config(token)
    assert "useStreaming" not in body
    assert body["features"]["streamingPercentage"] == 100


def test_config_without_verifier_configuration_is_still_answered(monkeypatch):
    monkeypatch.delenv("JWT_ISSUER", raising=False)
    auth.default_verifier.cache_clear()
    try:
        assert "useStreaming" not in get_config("whatever")
    finally:
        auth.default_verifier.cache_clear()


def test_every_method_the_catalog_declares_on_a_path_is_in_the_apis_allow() -> None:
    """The HTTP API sends a path's unserved methods to the function that reads it (`ANY` routes): the
    405 it answers must name every method of the path, whichever function serves it."""
    from functions.catalog import COACH_API, FUNCTIONS
    from infra.catalog_rules import declared_routes, method_catch_alls
    from shared.api.paths import ROUTER
    from shared.http.errors import MethodNotAllowed, Problem

    declared = declared_routes(FUNCTIONS)
    for catch_all in method_catch_alls(declared):
        if catch_all.function != COACH_API.name:
            continue
        path = catch_all.path.replace("{", "").replace("}", "")
        methods = {route.method for route in declared if route.path == catch_all.path}
        with pytest.raises(MethodNotAllowed) as refused:
            ROUTER.match("DELETE", path)
        assert Problem.of(refused.value).headers["Allow"] == ", ".join(sorted(methods)), catch_all.path
