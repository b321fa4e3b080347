"""Powertools logging, metrics and tracing, named once for every function.

Metrics go out as CloudWatch embedded metric format on stdout, flushed by `log_metrics` when the
handler returns: with the streaming adapter, that is after the last event.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
# botocore patched: every model call (bedrock-runtime) and table call (dynamodb) is a subsegment.
tracer = Tracer(patch_modules=["botocore"])

_UNITS: dict[str, MetricUnit] = {
    "TimeToFirstToken": MetricUnit.Milliseconds,
    "StreamDuration": MetricUnit.Milliseconds,
    "OutputTokens": MetricUnit.Count,
    "Fallbacks": MetricUnit.Count,
    "PostTurnHandoffFailures": MetricUnit.Count,
}


def observe(name: str, value: float) -> None:
    """Record one metric value; names outside the table are counts."""
    metrics.add_metric(name=name, unit=_UNITS.get(name, MetricUnit.Count), value=value)


def count_error(code: str) -> None:
    metrics.add_metric(name=f"Errors{code.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
