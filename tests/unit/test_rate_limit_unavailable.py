"""The rate limit when the table cannot answer: one short try on a client of its own, then the request is
admitted (fail open), logged and counted; a table that refuses for a defect still fails loudly."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from shared import aws_clients
from shared.errors import RateLimited
from shared.store.dynamodb import rate_limit
from shared.store.dynamodb.rate_limit import (
    UNAVAILABLE_METRIC,
    DynamoRateLimiter,
    admit_unchecked,
)
from shared.store.dynamodb.table import coach_table, forget_tables
from shared.store.ports import WRITES_BUDGET
from tests.fakes import RecordedMetrics
from tests.fixtures.aws import fake_aws_environment

USER = "user-1"


class Reported:
    """Stands in for the fail-open hook: what the limiter said it admitted unchecked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Exception]] = []

    def __call__(self, budget: str, error: Exception) -> None:
        self.calls.append((budget, error))


class FailingTable:
    """A `Table` whose updates fail as DynamoDB answers them: `code` with HTTP `status`."""

    def __init__(self, code: str, status: int) -> None:
        self.code, self.status, self.updates = code, status, 0

    def update_item(self, **_: Any) -> None:
        self.updates += 1
        error = {"Error": {"Code": self.code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": self.status}}
        raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fake_aws_environment(monkeypatch)
    forget_tables()
    yield
    forget_tables()


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[int]]]:
    """A loopback endpoint that accepts connections and reads requests but never answers: a stalled table.
    Yields its URL and the number of connections it accepted (a list, updated as they come)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = [0]
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted[0] += 1
            held.append(connection)  # kept open, never answered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(2)
        for connection in held:
            connection.close()
        listener.close()


def test_the_limit_has_a_client_of_its_own_with_one_short_try(aws_env) -> None:
    """Not the repositories' client (three tries of up to 2.5 s): what coach-api's time budget counts."""
    limiter = DynamoRateLimiter(5, name=WRITES_BUDGET, table_name="limits")
    config = limiter.table.meta.client.meta.config
    assert config.retries["total_max_attempts"] == aws_clients.RATE_LIMIT.attempts == 1
    assert (config.connect_timeout, config.read_timeout) == (0.5, 0.5)
    assert aws_clients.RATE_LIMIT.worst_case_seconds == 1.0
    repositories = coach_table("limits").meta.client.meta.config
    assert repositories.retries["total_max_attempts"] == aws_clients.DYNAMODB.attempts > 1
    assert limiter.table is DynamoRateLimiter(9, name="reads", table_name="limits").table  # one per container


def test_a_table_that_does_not_answer_admits_the_request_after_one_short_try(aws_env, silent_server, monkeypatch):
    url, accepted = silent_server
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
    reported = Reported()
    limiter = DynamoRateLimiter(1, name=WRITES_BUDGET, table_name="limits", on_unavailable=reported)
    started = time.monotonic()
    limiter.hit(USER)  # admitted: no RateLimited, no error
    took = time.monotonic() - started
    assert 0.5 <= took < 1.0 + 0.5, took  # the read timeout, once; nothing near the repositories' 10.5 s
    assert accepted == [1], "one request, no retry"
    assert [(budget, type(error).__name__) for budget, error in reported.calls] == [(WRITES_BUDGET, "ReadTimeoutError")]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_throttling_or_a_server_error_admits_the_request_and_says_so(code: str, status: int) -> None:
    table, reported = FailingTable(code, status), Reported()
    limiter = DynamoRateLimiter(1, table, name=WRITES_BUDGET, on_unavailable=reported)
    limiter.hit(USER)
    limiter.hit(USER)  # not counted either: the table never recorded an admission
    assert table.updates == 2
    assert [(budget, error.response["Error"]["Code"]) for budget, error in reported.calls] == [  # type: ignore[attr-defined]
        (WRITES_BUDGET, code)
    ] * 2


@pytest.mark.parametrize(
    ("code", "status"),
    [("ResourceNotFoundException", 400), ("AccessDeniedException", 400), ("ValidationException", 400)],
)
def test_a_refusal_that_names_a_defect_is_not_waved_through(code: str, status: int) -> None:
    """A missing table, a missing grant, a bad expression: fail loudly (500), or it would never be noticed."""
    reported = Reported()
    limiter = DynamoRateLimiter(1, FailingTable(code, status), name=WRITES_BUDGET, on_unavailable=reported)
    with pytest.raises(ClientError, match=code):
        limiter.hit(USER)
    assert reported.calls == []


def test_the_limit_still_refuses_when_the_table_answers(aws_env) -> None:
    """The condition failing is an answer, not an outage: 429 as ever, never admitted unchecked."""

    class Refusing(FailingTable):
        def update_item(self, **_: Any) -> None:
            error = {
                "Error": {"Code": "ConditionalCheckFailedException", "Message": "x"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
                "Item": {"t0": {"N": "100.000"}},
            }
            raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]

    reported = Reported()
    limiter = DynamoRateLimiter(1, Refusing("", 400), lambda: 130.0, name=WRITES_BUDGET, on_unavailable=reported)
    with pytest.raises(RateLimited) as refused:
        limiter.hit(USER)
    assert refused.value.retry_after_seconds == 30
    assert reported.calls == []


def test_admitting_unchecked_logs_a_warning_and_counts_it(monkeypatch, caplog) -> None:
    recorded = RecordedMetrics()
    monkeypatch.setattr(rate_limit, "observe", recorded)
    admit_unchecked(WRITES_BUDGET, TimeoutError("read timeout"))
    assert recorded.values(UNAVAILABLE_METRIC) == [1]
    [record] = [r for r in caplog.records if "admitted unchecked" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert record.budget == WRITES_BUDGET and "read timeout" in record.cause  # type: ignore[attr-defined]
