"""The local API Gateway's own refusals, as API Gateway's: the stage throttle's 429 (a token bucket per
route, read from the template's stage) and the JWT authorizer's 401 with its `www-authenticate` challenge."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from local.api_gateway import CHALLENGE, ApiGatewayServer, TokenBucket, bearer_challenge
from local.deployed import DeployedApp, StageThrottle, TemplateError
from shared.errors import NotAuthenticated
from tests.fakes.clock import SettableClock as Clock


def takes(bucket: TokenBucket, count: int) -> list[bool]:
    return [bucket.take() for _ in range(count)]


def test_a_bucket_admits_its_burst_then_its_rate_and_never_saves_more_than_the_burst() -> None:
    clock = Clock(1000.0)
    bucket = TokenBucket(StageThrottle(rate_per_second=2, burst=3), clock)
    assert takes(bucket, 4) == [True, True, True, False]
    clock.now += 0.25  # half a token: still nothing
    assert takes(bucket, 1) == [False]
    clock.now += 0.25
    assert takes(bucket, 2) == [True, False]
    clock.now += 60  # a long quiet spell refills to the burst, no further
    assert takes(bucket, 4) == [True, True, True, False]


def test_a_bucket_shared_by_threads_hands_out_each_token_once() -> None:
    bucket = TokenBucket(StageThrottle(rate_per_second=0.001, burst=50))
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        taken = takes(bucket, 20)
        with lock:
            results.extend(taken)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 50 and len(results) == 160


def refuse(reason: str):
    def authorize(_authorization: str | None) -> dict[str, Any]:
        raise NotAuthenticated(reason)

    return authorize


@pytest.fixture
def gateway() -> Iterator[ApiGatewayServer]:
    """A gateway whose authorizer refuses every token as expired, throttled at one request a second with a burst
    of two; its routes' function is never reached."""
    server = ApiGatewayServer(
        0, refuse("token expired"), lambda: {}, "/pool", throttle=StageThrottle(rate_per_second=1, burst=2)
    )
    never_invoked: Any = object()
    server.add_route("GET /users/{userId}/coaches", never_invoked, authorized=True)
    server.add_route("POST /users/{userId}/coach-creator-sessions", never_invoked, authorized=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def request(server: ApiGatewayServer, method: str, path: str) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    try:
        connection.request(method, path, body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())
    finally:
        connection.close()


def test_a_throttled_route_answers_the_stages_429_before_the_authorizer(gateway) -> None:
    answers = [request(gateway, "GET", "/users/u1/coaches") for _ in range(3)]
    assert [(status, body) for status, _, body in answers] == [
        (401, {"message": "Unauthorized"}),
        (401, {"message": "Unauthorized"}),
        (429, {"message": "Too Many Requests"}),
    ]
    assert answers[0][1]["www-authenticate"] == bearer_challenge("token expired")
    assert "www-authenticate" not in answers[2][1]
    # another route has its own bucket: the stage's default route settings apply to each route
    status, _, body = request(gateway, "POST", "/users/u1/coach-creator-sessions")
    assert (status, body) == (401, {"message": "Unauthorized"})


def test_the_authorizers_challenge_names_the_reasons_aws_describes_and_no_others() -> None:
    assert bearer_challenge("token expired") == (
        'Bearer scope="" error="invalid_token" error_description="the token has expired"'
    )
    assert bearer_challenge("wrong audience") == (
        'Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience"'
    )
    assert bearer_challenge("invalid signature") == bearer_challenge("missing token") == CHALLENGE


def stage_template(**properties: Any) -> DeployedApp:
    stage = {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {"StageName": "$default", **properties}}
    return DeployedApp(functions={}, templates={"api": {"Resources": {"Stage": stage}}})


def test_the_throttle_is_read_from_the_templates_stage() -> None:
    default = {"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100}
    assert stage_template(DefaultRouteSettings=default).http_api_throttle() == StageThrottle(50.0, 100)
    assert stage_template().http_api_throttle() is None
    assert DeployedApp(functions={}, templates={"api": {"Resources": {}}}).http_api_throttle() is None
    overridden = {"GET /x": {"ThrottlingRateLimit": 1, "ThrottlingBurstLimit": 1}}
    with pytest.raises(TemplateError, match="route-level throttles"):
        stage_template(DefaultRouteSettings=default, RouteSettings=overridden).http_api_throttle()
