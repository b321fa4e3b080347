"""Every error a streaming function answers is counted under its contract code, the metric the alarms read.

The handlers run under the functions' own Powertools stack (`lambda_entry`), so what is checked is the
EMF line the invocation prints, as CloudWatch would read it from the function's log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.errors import ReplyUnavailable
from shared.events import ChunkEvent, StartEvent, TurnEvent, TurnFailed
from shared.http.errors import error_metric_name
from shared.http.event import HttpRequest
from shared.http.responses import StreamingResponse
from shared.http.streaming import streaming_handler
from shared.observability import lambda_entry
from shared.runtime.context import LambdaContext
from tests.fixtures import stream_handlers
from tests.fixtures.events import function_url_event


@lambda_entry
@streaming_handler
def _turn_fails_after_text(request: HttpRequest, context: Any) -> StreamingResponse:
    def body() -> Iterator[TurnEvent]:
        yield StartEvent(requestId=context.aws_request_id)
        yield ChunkEvent(content="partial")
        yield TurnFailed(ReplyUnavailable("the model is unavailable"))

    return StreamingResponse(body())


def _counted_errors(printed: str) -> dict[str, float]:
    """The `Errors*` metrics of every EMF line printed."""
    counted: dict[str, float] = {}
    for line in printed.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                if metric["Name"].startswith("Errors"):
                    counted[metric["Name"]] = counted.get(metric["Name"], 0) + sum(
                        blob[metric["Name"]] if isinstance(blob[metric["Name"]], list) else [blob[metric["Name"]]]
                    )
    return counted


def _context(request_id: str) -> LambdaContext:
    return LambdaContext.for_invocation(request_id, int(time.time() * 1000) + 60_000, "arn")


@pytest.mark.parametrize(
    ("handler", "code"),
    [
        (lambda_entry(stream_handlers.not_found_before_stream), "NOT_FOUND"),
        (lambda_entry(stream_handlers.crashes_before_stream), "INTERNAL_ERROR"),
        (lambda_entry(stream_handlers.fails_mid_stream), "INTERNAL_ERROR"),
        (_turn_fails_after_text, "MODEL_UNAVAILABLE"),
    ],
    ids=["refused-before-the-stream", "crash-before-the-stream", "crash-mid-stream", "turn-failed-event"],
)
def test_each_answered_error_is_counted_once_under_its_code(capsys, handler, code):
    handler(function_url_event(), _context("err-1"))
    assert _counted_errors(capsys.readouterr().out) == {error_metric_name(code): 1}


def test_a_turn_that_succeeds_counts_no_error(capsys):
    lambda_entry(stream_handlers.events)(function_url_event(query="count=2"), _context("ok-1"))
    assert _counted_errors(capsys.readouterr().out) == {}
