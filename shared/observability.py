"""Powertools logging and metrics, named once for every function.

Metrics go out as CloudWatch embedded metric format on stdout, flushed by `log_metrics` when the
handler returns: with the streaming adapter, that is after the last event.

Tracing is Lambda's own (active tracing on every function, set by the CDK): each invocation gets its
service segment with no SDK in the function, so nothing here imports or patches anything for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from shared.http.errors import error_metric_name

logger = Logger()
metrics = Metrics()

_UNITS: dict[str, MetricUnit] = {
    "TimeToFirstToken": MetricUnit.Milliseconds,
    "StreamDuration": MetricUnit.Milliseconds,
    "OutputTokens": MetricUnit.Count,
    "Fallbacks": MetricUnit.Count,
}


def lambda_entry(handler: Callable[..., Any], correlation_id_path: str | None = None) -> Callable[..., Any]:
    """Every function's Powertools stack, in one order: logging context (request id, cold start), then
    metrics flushed at the end.

    Put it above `@streaming_handler`: the response is written inside the call, so both cover the
    whole stream, not just its first line. Each metrics line carries its invocation's request id (EMF
    metadata: searchable in the logs, no dimension, no cost), so a line can be traced to its turn.
    """
    return logger.inject_lambda_context(correlation_id_path=correlation_id_path, clear_state=True)(
        metrics.log_metrics(_with_request_id(handler))
    )


def _with_request_id(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def tagged(event: Any, context: Any) -> Any:
        metrics.add_metadata(key="requestId", value=getattr(context, "aws_request_id", ""))
        return handler(event, context)

    return tagged


def observe(name: str, value: float) -> None:
    """Record one metric value; names outside the table are counts."""
    metrics.add_metric(name=name, unit=_UNITS.get(name, MetricUnit.Count), value=value)


def count_error(code: str) -> None:
    observe(error_metric_name(code), 1)
