"""The per-user budgets through the local stack's front doors, and the refusals' shapes on the wire.

The streams, their fallbacks (API Gateway) and the REST writes spend one budget per user: whichever door a
request comes through, the limit is the same `RATE_LIMIT_PER_MINUTE` in any minute, and the refusal is the
contract's. REST reads spend a budget of their own. A limit the table cannot check admits the request.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from functions.catalog import COACH_API
from local.api_gateway import CHALLENGE
from local.db_faults import FaultControl, FaultRule
from local.demo import DEMO_COACH_ID
from local.deployed import StageThrottle
from local.stack import LocalStack
from shared.store.dynamodb.keys import rate_limit_pk
from tests.fixtures.cdk_synth import synthesize
from tests.integration.conftest import RATE_LIMIT_PER_MINUTE

BODY = {"userResponse": "hi"}


def turn_urls(stack: LocalStack, user: str) -> tuple[str, str]:
    """The stream's Function URL and its fallback's API route, for a conversation the user does not have
    (each turn is counted, then answered 404: no model call, nothing stored)."""
    path = f"/users/{user}/coaches/{DEMO_COACH_ID}/conversations/none"
    stream = stack.function_urls["stream-coach-conversation"].url + path + "/stream"
    fallback = stack.url(stack.ports.api) + path + "/send-message"
    return stream, fallback


def post(url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url, headers=headers, json=BODY, timeout=30)


def assert_rate_limited(response: httpx.Response, started: float) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": {"code": "RATE_LIMITED", "message": "too many requests; try again shortly"}}
    # the first turn leaves the window a minute after it was admitted: no sooner, and not much later
    waited = time.monotonic() - started
    assert 60 - waited - 1 <= int(response.headers["retry-after"]) <= 61


def test_the_stream_and_its_fallback_spend_one_budget(stack):
    user = f"both-{uuid.uuid4().hex[:8]}"
    token = stack.issuer.mint(user)
    stream, fallback = turn_urls(stack, user)
    started = time.monotonic()
    statuses = [post(stream if i % 2 else fallback, token).status_code for i in range(RATE_LIMIT_PER_MINUTE)]
    assert statuses == [404] * RATE_LIMIT_PER_MINUTE
    assert_rate_limited(post(stream, token), started)
    assert_rate_limited(post(fallback, token), started)
    other = f"other-{uuid.uuid4().hex[:8]}"  # another user's budget is untouched
    assert post(turn_urls(stack, other)[0], stack.issuer.mint(other)).status_code == 404


def test_a_refused_token_spends_nothing_and_each_door_answers_401_its_own_way(stack):
    user = f"anon-{uuid.uuid4().hex[:8]}"
    stream, fallback = turn_urls(stack, user)
    for _ in range(RATE_LIMIT_PER_MINUTE + 1):
        gateway = post(fallback, "not-a-token")
        function = post(stream, None)
    assert gateway.status_code == 401 and gateway.json() == {"message": "Unauthorized"}  # API Gateway's own
    assert function.status_code == 401 and function.json()["error"]["code"] == "UNAUTHORIZED"  # ours
    assert post(stream, stack.issuer.mint(user)).status_code == 404  # counted from zero: not limited


def test_the_gateways_401_names_the_problem_in_www_authenticate(stack):
    """As API Gateway's JWT authorizer answers: the bare body, and the reason in a Bearer challenge."""
    user = f"challenge-{uuid.uuid4().hex[:8]}"
    _, fallback = turn_urls(stack, user)
    expired = stack.issuer.mint(user, ttl_seconds=-3600)
    foreign = stack.issuer.mint(user, extra_claims={"aud": "another-app-client"})
    challenges = {}
    for name, token in {"expired": expired, "foreign": foreign, "garbage": "not-a-token", "none": None}.items():
        refused = post(fallback, token)
        assert refused.status_code == 401 and refused.json() == {"message": "Unauthorized"}, name
        challenges[name] = refused.headers["www-authenticate"]
    assert challenges == {
        "expired": 'Bearer scope="" error="invalid_token" error_description="the token has expired"',
        "foreign": 'Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience"',
        "garbage": CHALLENGE,
        "none": CHALLENGE,
    }


# --- the REST API (coach-api) -------------------------------------------------------------------------


def rest(stack: LocalStack, method: str, path: str, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"title": "t"} if method == "POST" else None
    return httpx.request(method, stack.url(stack.ports.api) + path, headers=headers, json=body, timeout=30)


def reads_per_minute(stack: LocalStack) -> int:
    """coach-api's reads budget as the local function really runs with it (its template's, or an override)."""
    return int(stack.functions[COACH_API.name].spec.environment["RATE_LIMIT_READS_PER_MINUTE"])


def test_rest_writes_spend_the_turns_budget_and_reads_their_own(stack):
    user = f"rest-{uuid.uuid4().hex[:8]}"
    token = stack.issuer.mint(user)
    stream, _ = turn_urls(stack, user)
    # a coach the user does not have: each write is counted, then answered 404 (nothing stored)
    create = f"/users/{user}/coaches/{DEMO_COACH_ID}/conversations"
    started = time.monotonic()
    statuses = [
        (post(stream, token) if i % 2 else rest(stack, "POST", create, token)).status_code
        for i in range(RATE_LIMIT_PER_MINUTE)
    ]
    assert statuses == [404] * RATE_LIMIT_PER_MINUTE
    assert_rate_limited(rest(stack, "POST", create, token), started)  # REST writes: the same budget
    assert_rate_limited(post(stream, token), started)
    reads = reads_per_minute(stack)
    started = time.monotonic()
    listed = [rest(stack, "GET", f"/users/{user}/coaches", token) for _ in range(reads)]
    assert [(r.status_code, r.json()) for r in listed] == [(200, {"coaches": []})] * reads  # their own budget
    assert_rate_limited(rest(stack, "GET", f"/users/{user}/coaches", token), started)


@pytest.fixture
def faults(stack: LocalStack):
    with FaultControl(stack.dynamodb.endpoint).injected() as control:
        yield control


@pytest.mark.parametrize("fault", ["throttled", "stalled"])
def test_a_limit_the_table_cannot_check_admits_the_request(stack, faults, fault):
    """Fail open through the real functions: the limit's update throttled, or stalled past its client's
    half-second read, and the request goes on (404: the missing conversation, not a 500 or a long wait)."""
    user = f"open-{uuid.uuid4().hex[:8]}"
    token = stack.issuer.mint(user)
    item = (rate_limit_pk(user),)
    rule = (
        FaultRule.fail("UpdateItem", error="ProvisionedThroughputExceededException", contains=item, times=3)
        if fault == "throttled"
        else FaultRule.stall_before("UpdateItem", 3.0, contains=item, times=3)
    )
    faults.set(rule)
    stream, fallback = turn_urls(stack, user)
    started = time.monotonic()
    answers = [post(stream, token), post(fallback, token), rest(stack, "GET", f"/users/{user}/coaches", token)]
    took = time.monotonic() - started
    assert [r.status_code for r in answers] == [404, 404, 200], [r.text for r in answers]
    assert [r.fired for r in faults.rules()] == [3], "each request's limit check met the fault, once (no retry)"
    assert took < 3 * 2.0, took  # three half-second timeouts and the work, never the stalls themselves


# --- the stage's throttle (API Gateway's own 429) --------------------------------------------------------


def test_the_local_gateway_throttles_each_route_as_the_templates_stage(stack, tmp_path_factory):
    """The same `DefaultRouteSettings` as an independent synth of the app, every route with its own bucket."""
    synthesized = synthesize(tmp_path_factory.mktemp("throttle"), stack.definitions, environ=stack.deploy_environ)
    (stage,) = [r for r in synthesized.raw("api")["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert stack.api is not None
    expected = StageThrottle(settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"])
    assert stack.api.throttle == expected
    assert all(route.bucket is not None and route.bucket.throttle == expected for route in stack.api.routes)


def test_a_burst_past_the_stages_throttle_gets_api_gateways_429(stack):
    """More requests at once than the burst: the bucket's worth are served (here: the authorizer's 401, no
    function runs), the rest answered `429 {"message":"Too Many Requests"}` before the authorizer."""
    assert stack.api is not None and stack.api.throttle is not None
    throttle = stack.api.throttle
    refill = throttle.burst / throttle.rate_per_second + 0.2
    url = stack.url(stack.ports.api) + "/users/burst/coaches"
    time.sleep(refill)  # a full bucket, whatever the tests before did on this route
    started = time.monotonic()
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32)) as client, ThreadPoolExecutor(32) as pool:
        answers = list(
            pool.map(lambda _: client.get(url, headers={"Authorization": "Bearer x"}), range(throttle.burst * 2))
        )
    took = time.monotonic() - started
    time.sleep(refill)  # and full again for the tests after
    served = [a for a in answers if a.status_code == 401]
    throttled = [a for a in answers if a.status_code == 429]
    assert len(served) + len(throttled) == len(answers)
    assert throttle.burst <= len(served) <= throttle.burst + throttle.rate_per_second * took + 1, (len(served), took)
    assert throttled and all(a.json() == {"message": "Too Many Requests"} for a in throttled)
