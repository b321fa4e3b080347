"""The per-user sliding window limit in DynamoDB: never more than the limit in any window, under races too.

The races run on moto's server (`python -m local.atomic_moto`'s app) over real HTTP, one boto3 client per
thread, so the requests interleave as a function's do; the rest on in-process moto.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local import atomic_moto
from shared.errors import RateLimited
from shared.settings import RATE_LIMIT_MAX, RateLimitSettings, ReadRateLimitSettings, SettingsError
from shared.store.dynamodb.rate_limit import (
    ADMIT_CONDITION,
    EXPIRY_SLACK_SECONDS,
    DynamoRateLimiter,
    shift_expression,
)
from shared.store.ports import READS_BUDGET, WRITES_BUDGET, RequestLimits
from shared.store.schema import COACH_TABLE
from tests.fakes import InMemoryRateLimiter, race
from tests.fakes.clock import SettableClock as Clock
from tests.fixtures.aws import atomic_moto_server, loopback_client

USER = "user-1"
START = 60 * 20_000_000 + 59.5  # half a second before a minute turns: where a fixed window let 2x through


def item(table: Any, name: str = WRITES_BUDGET, user: str = USER) -> dict[str, Any] | None:
    found = table.get_item(Key={"pk": f"RATE#{user}", "sk": f"LIMIT#{name}"}, ConsistentRead=True)
    return found.get("Item")


def admitted(limiter: Any, user: str = USER) -> bool:
    try:
        limiter.hit(user)
    except RateLimited:
        return False
    return True


# --- one user's requests over time -------------------------------------------------------------------


def test_no_burst_across_a_minute_boundary(table) -> None:
    clock = Clock(START)
    limiter = DynamoRateLimiter(5, table, clock=clock, name=WRITES_BUDGET)
    assert [admitted(limiter) for _ in range(5)] == [True] * 5
    clock.now = START + 1  # a new clock minute: a per-minute counter would start again from zero
    assert [admitted(limiter) for _ in range(5)] == [False] * 5
    clock.now = START + 60  # the first five have left the window
    assert [admitted(limiter) for _ in range(6)] == [True] * 5 + [False]


def test_retry_after_is_when_the_oldest_admission_leaves_the_window(table) -> None:
    clock = Clock(START)
    limiter = DynamoRateLimiter(3, table, clock=clock, name=WRITES_BUDGET)
    for offset in (0.0, 10.25, 20.5):
        clock.now = START + offset
        limiter.hit(USER)
    clock.now = START + 30
    with pytest.raises(RateLimited) as refused:
        limiter.hit(USER)
    assert refused.value.retry_after_seconds == 30  # START + 60 - (START + 30)
    clock.now = START + 59.9  # not yet: Retry-After was not early
    assert not admitted(limiter)
    clock.now = START + 60
    assert admitted(limiter)
    with pytest.raises(RateLimited) as refused:  # the next to leave was admitted at START + 10.25
        limiter.hit(USER)
    assert refused.value.retry_after_seconds == 11  # 10.25 s, rounded up: never an early retry


def test_a_refused_request_changes_nothing(table) -> None:
    clock = Clock(START)
    limiter = DynamoRateLimiter(2, table, clock=clock, name=WRITES_BUDGET)
    limiter.hit(USER)
    limiter.hit(USER)
    before = item(table)
    clock.now += 5
    for _ in range(3):
        assert not admitted(limiter)
    assert item(table) == before


def test_the_item_holds_the_last_admissions_and_expires_when_it_refuses_nothing(table) -> None:
    clock = Clock(START)
    limiter = DynamoRateLimiter(3, table, clock=clock, name=WRITES_BUDGET)
    for offset in (0, 1, 2, 3):
        clock.now = START + 60 * offset
        limiter.hit(USER)
    stored = item(table)
    assert stored is not None
    assert [float(stored[f"t{i}"]) for i in range(3)] == [START + 60, START + 120, START + 180]
    assert set(stored) == {"pk", "sk", "t0", "t1", "t2", COACH_TABLE.ttl_attribute}
    # TTL may delete the item once its newest admission has left the window (with slack for clocks).
    assert int(stored[COACH_TABLE.ttl_attribute]) == int(START + 180) + 1 + 60 + EXPIRY_SLACK_SECONDS


def test_an_expired_item_deleted_by_ttl_starts_a_fresh_window(table) -> None:
    table.meta.client.update_time_to_live(
        TableName=table.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": COACH_TABLE.ttl_attribute}
    )
    clock = Clock(START)
    limiter = DynamoRateLimiter(1, table, clock=clock, name=WRITES_BUDGET)
    limiter.hit(USER)
    expires = int(item(table)[COACH_TABLE.ttl_attribute])  # type: ignore[index]
    assert atomic_moto.delete_expired(now=expires - 1) == 0
    assert atomic_moto.delete_expired(now=expires + 1) == 1
    clock.now = expires + 1
    assert admitted(limiter)


def test_budgets_and_users_are_apart(table) -> None:
    clock = Clock(START)
    writes = DynamoRateLimiter(1, table, clock=clock, name=WRITES_BUDGET)
    reads = DynamoRateLimiter(2, table, clock=clock, name=READS_BUDGET)
    limits = RequestLimits(writes=writes, reads=reads)
    assert limits.for_method("POST") is writes and limits.for_method("put") is writes
    assert limits.for_method("GET") is reads
    writes.hit(USER)
    assert not admitted(writes)
    assert admitted(reads) and admitted(reads) and not admitted(reads)
    assert admitted(writes, "user-2")


def test_an_error_other_than_the_condition_is_not_a_refusal(table) -> None:
    missing = boto3.resource("dynamodb").Table("no-such-table")
    limiter = DynamoRateLimiter(1, missing, name=WRITES_BUDGET)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        limiter.hit(USER)


def test_it_admits_exactly_as_the_in_memory_fake_and_never_more_than_the_limit_in_a_window(table) -> None:
    clock = Clock(START)
    limit, window = 4, 60
    dynamo = DynamoRateLimiter(limit, table, clock=clock, name=WRITES_BUDGET)
    fake = InMemoryRateLimiter(limit, clock=clock)
    rng = random.Random(7)
    passed: list[float] = []
    for _ in range(120):
        clock.now += rng.choice((0.0, 0.5, 3.0, 7.5, 20.0))
        verdict = admitted(dynamo)
        assert admitted(fake) == verdict
        if verdict:
            passed.append(clock.now)
    for index, moment in enumerate(passed):  # every window that starts at an admission
        assert sum(1 for other in passed[index:] if other < moment + window) <= limit
    assert len(passed) > limit * 4  # and it did admit, window after window


# --- the update expression within DynamoDB's limits ----------------------------------------------------


def test_the_largest_limit_fits_dynamodbs_expression_limits() -> None:
    expression = shift_expression(RATE_LIMIT_MAX)
    assert len(expression.encode()) <= 4096  # an expression string is at most 4 KB
    functions = len(re.findall(r"\w+\(", expression + ADMIT_CONDITION))
    comparators = len(re.findall(r"<=|=", expression + ADMIT_CONDITION)) + ADMIT_CONDITION.count(" OR ")
    assert functions + comparators <= 300  # at most 300 operators and functions
    with pytest.raises(ValueError, match="at most 100"):
        DynamoRateLimiter(RATE_LIMIT_MAX + 1, name=WRITES_BUDGET)
    for section, variable in (
        (RateLimitSettings, "RATE_LIMIT_PER_MINUTE"),
        (ReadRateLimitSettings, "RATE_LIMIT_READS_PER_MINUTE"),
    ):
        with pytest.raises(SettingsError, match=variable):
            section.from_env({variable: str(RATE_LIMIT_MAX + 1)})


# --- many requests at once, on moto's server ------------------------------------------------------------


@pytest.fixture(scope="module")
def server_table() -> Iterator[tuple[str, str]]:
    with atomic_moto_server() as url:
        client = loopback_client("dynamodb", url, region="us-east-1", read_timeout=10)
        client.create_table(**COACH_TABLE.create_table_request("limits"))
        yield url, "limits"


def limiters_on_server(server: tuple[str, str], limit: int, name: str, count: int) -> list[DynamoRateLimiter]:
    """A limiter per thread, each with a `Table` of its own (a boto3 resource is not shared between threads),
    made from one session so that the service model is loaded once."""
    url, table_name = server
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    tables = [session.resource("dynamodb", endpoint_url=url).Table(table_name) for _ in range(count)]
    return [DynamoRateLimiter(limit, table, name=name) for table in tables]


@pytest.mark.parametrize("limit", [1, 20])
def test_one_hundred_concurrent_requests_of_one_user_admit_exactly_the_limit(server_table, limit) -> None:
    name = f"race-{limit}"
    limiters = limiters_on_server(server_table, limit, name, 100)
    started = time.monotonic()
    won, lost = race(100, lambda index: limiters[index].hit(USER))
    took = time.monotonic() - started
    assert len(won) == limit
    assert len(lost) == 100 - limit
    assert all(isinstance(error, RateLimited) for error in lost), [repr(e) for e in lost][:3]
    # A refusal waits for the first admission to leave the window, as seen from the refused request's own
    # clock reading, which may predate the admission by as long as the requests were in flight.
    waits = [error.retry_after_seconds for error in lost if isinstance(error, RateLimited)]
    assert all(1 <= wait <= 60 + math.ceil(took) for wait in waits), (waits, took)
    stored = item(limiters[0].table, name)
    assert stored is not None
    assert all(float(stored[f"t{i}"]) > 0 for i in range(limit))  # every slot an admission: none lost, none extra
