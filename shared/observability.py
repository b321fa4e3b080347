"""Powertools logging and metrics, named once for every function.

Metrics go out as CloudWatch embedded metric format on stdout, flushed by `log_metrics` when the
handler returns: with the streaming adapter, that is after the last event.

Tracing is Lambda's own (active tracing on every function, set by the CDK): each invocation gets its
service segment with no SDK in the function, so nothing here imports or patches anything for it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities import jmespath_utils

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
    """Every function's Powertools stack: the invocation's log keys (request id, cold start, correlation
    id), its metrics, flushed when the handler returns.

    Put it above `@streaming_handler`: the response is written inside the call, so both cover the
    whole stream, not just its first line. Both are the invocation's own even when an environment
    serves several at once on threads (Managed Instances): the keys are Powertools' per-context
    ones, the metrics a set of their own, and the turn's thread pool carries both into its tasks.
    Each metrics line carries its invocation's request id (EMF metadata: searchable in the logs, no
    dimension, no cost), so a line can be traced to its turn.
    """

    @functools.wraps(handler)
    def entry(event: Any, context: Any) -> Any:
        keys: dict[str, Any] = {"cold_start": _cold_start(), **build_lambda_context_model(context).__dict__}
        if correlation_id_path:
            keys["correlation_id"] = jmespath_utils.query(envelope=correlation_id_path, data=event)
        own = EphemeralMetrics(namespace=metrics.provider.namespace, service=metrics.provider.service)
        own.add_metadata(key="requestId", value=getattr(context, "aws_request_id", ""))
        token = _invocation_metrics.set(own)
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(**keys)
        try:
            return handler(event, context)
        finally:
            own.flush_metrics()
            logger.thread_safe_clear_keys()
            _invocation_metrics.reset(token)

    return entry


def log_keys(**keys: Any) -> None:
    """Add keys to the invocation's log records (this invocation's only, whatever runs beside it)."""
    logger.thread_safe_append_keys(**keys)


_invocation_metrics: ContextVar[Any] = ContextVar("invocation_metrics", default=None)
_first_invocation = threading.Lock()
_warm = False


def _cold_start() -> bool:
    """True for the process's first invocation only, even when several begin at once."""
    global _warm
    with _first_invocation:
        cold, _warm = not _warm, True
    return cold


def observe(name: str, value: float) -> None:
    """Record one metric value for the invocation in progress; names outside the table are counts."""
    target = _invocation_metrics.get() or metrics
    target.add_metric(name=name, unit=_UNITS.get(name, MetricUnit.Count), value=value)


def count_error(code: str) -> None:
    observe(error_metric_name(code), 1)
