"""The REST API's per-user budgets: reads apart from writes, writes shared with the turns, 429 as the contract says."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from shared.api.app import app
from shared.api.services import CONTEXT_KEY, Services
from shared.composition.coach_api import coach_api_limits, coach_api_services
from shared.composition.turns import turn_entry
from shared.settings import CoachApiSettings, TurnSettings
from shared.store.dynamodb.rate_limit import DynamoRateLimiter, admit_unchecked
from shared.store.ports import READS_BUDGET, WRITES_BUDGET, RequestLimits
from shared.store.records import Coach, Conversation, CreatorSession
from tests.conftest import IN_PROCESS_SETTINGS
from tests.fakes import (
    InMemoryCoachRepository,
    InMemoryConversationRepository,
    InMemoryCreatorSessionRepository,
    InMemoryRateLimiter,
)
from tests.fakes.clock import SettableClock as Clock
from tests.fixtures.events import CoachApiContext

USER = "user-1"
COACH = Coach(user_id=USER, coach_id="coach-1", name="Coach", personality="calm", created_at="2026-01-01")
NOW = 1_800_000_000.0

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")


class CountingConversations(InMemoryConversationRepository):
    def __init__(self) -> None:
        super().__init__()
        self.created = 0

    def create_conversation(self, user_id: str, coach_id: str, title: str) -> Conversation:
        self.created += 1
        return super().create_conversation(user_id, coach_id, title)


class CountingSessions(InMemoryCreatorSessionRepository):
    def __init__(self) -> None:
        super().__init__()
        self.created = 0

    def create_session(self, user_id: str, first_question_id: str) -> CreatorSession:
        self.created += 1
        return super().create_session(user_id, first_question_id)


@dataclass
class Api:
    services: Services
    clock: Clock

    def call(self, method: str, path: str, *, user: str = USER, token_use: str = "id", body: Any = None) -> Any:
        """What API Gateway's HTTP API hands the function for a request its JWT authorizer let through."""
        claims = {"sub": "s-1", "token_use": token_use, "custom:user_id": user}
        event = {
            "version": "2.0",
            "routeKey": f"{method} {path}",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
                "requestId": "gw-1",
                "routeKey": f"{method} {path}",
                "stage": "$default",
                "authorizer": {"jwt": {"claims": claims, "scopes": None}},
            },
            "isBase64Encoded": False,
        }
        if body is not None:
            event["body"] = json.dumps(body)
        app.append_context(**{CONTEXT_KEY: self.services})
        return app.resolve(event, CoachApiContext())


@pytest.fixture
def api() -> Api:
    clock = Clock(NOW)
    services = Services(
        coaches=InMemoryCoachRepository(COACH),
        conversations=CountingConversations(),
        sessions=CountingSessions(),
        limits=RequestLimits(
            writes=InMemoryRateLimiter(2, clock, name=WRITES_BUDGET),
            reads=InMemoryRateLimiter(3, clock, name=READS_BUDGET),
        ),
    )
    return Api(services, clock)


COACHES = f"/users/{USER}/coaches"
CONVERSATIONS = f"{COACHES}/coach-1/conversations"


def assert_rate_limited(response: dict[str, Any], retry_after: int) -> None:
    assert response["statusCode"] == 429
    assert json.loads(response["body"]) == {
        "error": {"code": "RATE_LIMITED", "message": "too many requests; try again shortly"}
    }
    assert response["headers"]["Retry-After"] == str(retry_after)
    assert response["headers"]["Content-Type"] == "application/json"


def test_reads_beyond_their_budget_answer_429_with_retry_after(api: Api) -> None:
    assert [api.call("GET", COACHES)["statusCode"] for _ in range(3)] == [200] * 3
    api.clock.now = NOW + 15
    assert_rate_limited(api.call("GET", f"{COACHES}/coach-1"), retry_after=45)
    api.clock.now = NOW + 60
    assert api.call("GET", COACHES)["statusCode"] == 200


def test_a_refused_write_creates_nothing_and_reads_keep_their_own_budget(api: Api) -> None:
    conversations, sessions = api.services.conversations, api.services.sessions
    assert isinstance(conversations, CountingConversations) and isinstance(sessions, CountingSessions)
    assert api.call("POST", CONVERSATIONS, body={"title": "t"})["statusCode"] == 201
    assert api.call("POST", f"/users/{USER}/coach-creator-sessions", body={})["statusCode"] == 201
    assert (conversations.created, sessions.created) == (1, 1)
    api.clock.now = NOW + 0.5
    assert_rate_limited(api.call("POST", CONVERSATIONS, body={"title": "t"}), retry_after=60)
    assert_rate_limited(api.call("POST", f"/users/{USER}/coach-creator-sessions", body={}), retry_after=60)
    assert (conversations.created, sessions.created) == (1, 1)
    assert api.call("GET", COACHES)["statusCode"] == 200


def test_refusals_before_the_limit_spend_nothing(api: Api) -> None:
    for _ in range(3):
        assert api.call("GET", COACHES, user="someone-else")["statusCode"] == 403
        assert api.call("GET", COACHES, token_use="access")["statusCode"] == 401
        assert api.call("GET", "/config")["statusCode"] == 200  # public: no user, no budget
    assert [api.call("GET", COACHES)["statusCode"] for _ in range(3)] == [200] * 3


def test_rest_writes_spend_the_turns_budget_and_reads_their_own() -> None:
    """The same item (user, budget name) and the same limit, wherever the composition roots build it."""
    environ = {
        **IN_PROCESS_SETTINGS,
        "STREAM_DEADLINE_MARGIN_SECONDS": "10",
        "RATE_LIMIT_PER_MINUTE": "7",
        "RATE_LIMIT_READS_PER_MINUTE": "33",
    }
    limits = coach_api_limits(CoachApiSettings.from_env(environ))
    turns = turn_entry(TurnSettings.from_env(environ), lambda ask: ask, lambda *_: None).limiter  # type: ignore[arg-type,return-value]
    assert isinstance(turns, DynamoRateLimiter) and isinstance(limits.writes, DynamoRateLimiter)
    assert isinstance(limits.reads, DynamoRateLimiter)
    assert (limits.writes.name, limits.writes.limit) == (turns.name, turns.limit) == (WRITES_BUDGET, 7)
    assert (limits.reads.name, limits.reads.limit) == (READS_BUDGET, 33)
    assert limits.writes._table_name == limits.reads._table_name == turns._table_name == "unit-test"


def test_the_coach_api_counts_every_authorized_request() -> None:
    """Switched on in the function's composition root: the budgets above, on the limit's own client."""
    settings = CoachApiSettings.from_env({**IN_PROCESS_SETTINGS, "RATE_LIMIT_READS_PER_MINUTE": "33"})
    limits = coach_api_services(settings).limits
    assert limits is not None
    assert (limits.for_method("GET").name, limits.for_method("HEAD").name) == (READS_BUDGET, READS_BUDGET)
    assert (limits.for_method("POST").name, limits.for_method("PUT").name) == (WRITES_BUDGET, WRITES_BUDGET)
    assert limits.for_method("GET").limit == 33  # type: ignore[attr-defined]
    for limiter in (limits.reads, limits.writes):
        assert isinstance(limiter, DynamoRateLimiter) and limiter._on_unavailable is admit_unchecked


class ThrottledTable:
    """The limit's item throttled: every update answered `ProvisionedThroughputExceededException`."""

    def update_item(self, **_: Any) -> None:
        from botocore.exceptions import ClientError

        error = {
            "Error": {"Code": "ProvisionedThroughputExceededException"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]


def test_a_limit_the_table_cannot_check_admits_rest_requests(api: Api) -> None:
    """Fail open: the limit protects the budget, it does not decide whether a request is valid, so a throttled
    or stalled check lets reads and writes through (and says so) instead of answering 500."""
    unchecked: list[str] = []
    limits = RequestLimits(
        writes=DynamoRateLimiter(
            1, ThrottledTable(), name=WRITES_BUDGET, on_unavailable=lambda b, _: unchecked.append(b)
        ),
        reads=DynamoRateLimiter(
            1, ThrottledTable(), name=READS_BUDGET, on_unavailable=lambda b, _: unchecked.append(b)
        ),
    )
    api.services = Services(api.services.coaches, api.services.conversations, api.services.sessions, limits)
    assert [api.call("POST", CONVERSATIONS, body={"title": "t"})["statusCode"] for _ in range(2)] == [201, 201]
    assert [api.call("GET", COACHES)["statusCode"] for _ in range(2)] == [200, 200]
    assert unchecked == [WRITES_BUDGET] * 2 + [READS_BUDGET] * 2
    conversations = api.services.conversations
    assert isinstance(conversations, CountingConversations) and conversations.created == 2
