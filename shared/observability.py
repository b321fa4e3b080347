"""Powertools logging, metrics and tracing, named once for every function.

Metrics go out as CloudWatch embedded metric format on stdout, flushed by `log_metrics` when the
handler returns: with the streaming adapter, that is after the last event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from shared.http.errors import error_metric_name

logger = Logger()
metrics = Metrics()
# botocore patched: every model call (bedrock-runtime) and table call (dynamodb) is a subsegment.
tracer = Tracer(patch_modules=["botocore"])

_UNITS: dict[str, MetricUnit] = {
    "TimeToFirstToken": MetricUnit.Milliseconds,
    "StreamDuration": MetricUnit.Milliseconds,
    "OutputTokens": MetricUnit.Count,
    "Fallbacks": MetricUnit.Count,
}


def lambda_entry(handler: Callable[..., Any], correlation_id_path: str | None = None) -> Callable[..., Any]:
    """Every function's Powertools stack, in one order: logging context (request id, cold start),
    metrics flushed at the end, a trace segment around the call.

    Put it above `@streaming_handler`: the response is written inside the call, so all three cover
    the whole stream, not just its first line.
    """
    traced = tracer.capture_lambda_handler(capture_response=False)(handler)
    return logger.inject_lambda_context(correlation_id_path=correlation_id_path, clear_state=True)(
        metrics.log_metrics(traced)
    )


def observe(name: str, value: float) -> None:
    """Record one metric value; names outside the table are counts."""
    metrics.add_metric(name=name, unit=_UNITS.get(name, MetricUnit.Count), value=value)


def count_error(code: str) -> None:
    observe(error_metric_name(code), 1)
