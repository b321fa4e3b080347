"""Every function's time, computed from its catalog entry and its settings: it must end before Lambda ends it.

A function's worst case is each of its AWS requests (`FunctionDefinition.sdk_calls`) at the worst its
client allows (`shared.aws_clients`: every attempt timing out, every backoff at its cap), plus a margin
for its own work. A turn is different: it sets itself a deadline (`STREAM_TIME_BUDGET_SECONDS`, but never
later than `STREAM_DEADLINE_MARGIN_SECONDS` before Lambda's) and everything model-bound stops there; what
it still sends after that (`sdk_calls_after_deadline`) must fit the margin. The stack derives both
settings from here and refuses to synthesize a function that cannot fit.

A function the table's stream invokes (`FunctionDefinition.stream_source`) has a second figure: how long one
record can be in play. Its worst case is every invocation it takes part in (the first, one per split of its
batch, every retry) running to the timeout, and that must fit the mapping's maximum record age, so the age
limit never cuts the declared retries short; the age itself stays under the stream's 24 h retention, so a
record that keeps failing reaches the dead-letter queue before the stream forgets it.

Plain Python, no CDK: the stack and the tests use the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from functions.catalog import FunctionDefinition
from shared import aws_clients
from shared.aws_clients import ClientLimits
from shared.models.settings import ModelSettings
from shared.settings import StreamSettings

SAFETY_SECONDS = 2.0  # the function's own work between calls, at least
SAFETY_SHARE = 0.05  # ... or this share of its timeout
MIN_STREAM_SECONDS = 10.0  # a turn whose calls all stalled before its deadline still gets this much
STREAM_RETENTION_SECONDS = 24 * 3600  # DynamoDB Streams keeps a record this long
CLIENTS = {"dynamodb": aws_clients.DYNAMODB, "s3": aws_clients.S3, "lambda": aws_clients.LAMBDA_ASYNC}
CLIENTS |= {"jwks": aws_clients.JWKS, "rate_limit": aws_clients.RATE_LIMIT}
_PLACEHOLDER_MODEL_IDS = {"MODEL_ID_REPLY": "reply", "MODEL_ID_SIDE": "side"}


class TimeBudgetError(ValueError):
    """A function whose worst case does not fit its timeout."""


@dataclass(frozen=True)
class TimeBudget:
    timeout_seconds: float
    worst_case_seconds: float  # everything not bounded by a turn's own deadline
    deadline_margin_seconds: float | None = None  # turns: kept before Lambda's deadline
    stream_budget_seconds: float | None = None  # turns: the longest a turn streams
    record_worst_case_seconds: float | None = None  # stream consumers: one record's every invocation


def model_limits(environment: Mapping[str, str]) -> ClientLimits:
    """The model adapter's limits under this environment (the function's settings)."""
    return ModelSettings.from_env({**_PLACEHOLDER_MODEL_IDS, **environment}).limits


def worst_case(calls: Iterable[tuple[str, int]], model: ClientLimits) -> float:
    clients = {**CLIENTS, "model": model}
    total = 0.0
    for client, count in calls:
        if client not in clients:
            raise TimeBudgetError(f"unknown client {client!r}: one of {sorted(clients)}")
        total += count * clients[client].worst_case_seconds
    return total


def safety(timeout_seconds: float) -> float:
    return max(SAFETY_SECONDS, SAFETY_SHARE * timeout_seconds)


def is_turn(definition: FunctionDefinition) -> bool:
    return issubclass(definition.settings, StreamSettings)


def time_budget(
    definition: FunctionDefinition, environment: Mapping[str, str], configured_stream_budget: float
) -> TimeBudget:
    """The function's worst case and, for a turn, the margin and budget its settings get."""
    timeout = float(definition.timeout_seconds)
    model = model_limits(environment)
    calls = dict(definition.sdk_calls)
    if not is_turn(definition):
        worst = worst_case(calls.items(), model) + safety(timeout)
        if worst > timeout:
            raise TimeBudgetError(f"{definition.name}: worst case {worst:.1f} s exceeds its {timeout:.0f} s timeout")
        return TimeBudget(timeout, worst, record_worst_case_seconds=record_worst_case(definition))
    after = dict(definition.sdk_calls_after_deadline)
    if any(count > calls.get(client, 0) for client, count in after.items()):
        raise TimeBudgetError(f"{definition.name}: sdk_calls_after_deadline must be part of sdk_calls")
    before = {client: count - after.get(client, 0) for client, count in calls.items() if client != "model"}
    margin = worst_case(after.items(), model) + safety(timeout)
    worst = worst_case(before.items(), model) + margin
    if worst + MIN_STREAM_SECONDS > timeout:
        raise TimeBudgetError(
            f"{definition.name}: {worst:.1f} s of calls leave less than {MIN_STREAM_SECONDS:.0f} s to stream "
            f"in its {timeout:.0f} s timeout"
        )
    budget = min(configured_stream_budget, timeout - margin)
    return TimeBudget(timeout, worst, deadline_margin_seconds=margin, stream_budget_seconds=budget)


def record_worst_case(definition: FunctionDefinition) -> float | None:
    """How long one stream record can be in play (None for a function no stream invokes); it must fit the
    mapping's maximum record age, itself under the stream's retention."""
    source = definition.stream_source
    if source is None:
        return None
    if source.max_record_age_seconds > STREAM_RETENTION_SECONDS:
        raise TimeBudgetError(
            f"{definition.name}: a maximum record age of {source.max_record_age_seconds} s outlives the stream's "
            f"{STREAM_RETENTION_SECONDS} s retention: a failing record would vanish instead of reaching its queue"
        )
    worst = float(source.attempts_per_record * definition.timeout_seconds)
    if worst > source.max_record_age_seconds:
        raise TimeBudgetError(
            f"{definition.name}: {source.attempts_per_record} invocations of up to {definition.timeout_seconds} s "
            f"({worst:.0f} s) exceed the maximum record age of {source.max_record_age_seconds} s: the age limit "
            "would cut the retries short"
        )
    return worst


def budget_table(definitions: Iterable[FunctionDefinition], configured_stream_budget: float = 240.0) -> str:
    """Markdown: each function's timeout, worst case, and a turn's margin and budget (`python -m infra.time_budget`)."""
    definitions = list(definitions)
    rows = ["| function | timeout | worst case outside a turn's deadline | deadline margin | stream budget |"]
    rows.append("|---|---|---|---|---|")
    for d in definitions:
        b = time_budget(d, d.extra_environment, configured_stream_budget)
        margin = "-" if b.deadline_margin_seconds is None else f"{b.deadline_margin_seconds:.1f} s"
        stream = "-" if b.stream_budget_seconds is None else f"{b.stream_budget_seconds:.1f} s"
        rows.append(f"| {d.name} | {b.timeout_seconds:.0f} s | {b.worst_case_seconds:.1f} s | {margin} | {stream} |")
    consumers = [d for d in definitions if d.stream_source is not None]
    if consumers:
        rows += [
            "",
            "| invoked by the table's stream | records per invocation | invocations per record "
            "(first, splits, retries) | a record's worst case | maximum record age |",
            "|---|---|---|---|---|",
        ]
    for d in consumers:
        source = d.stream_source
        assert source is not None
        rows.append(
            f"| {d.name} | {source.batch_size} | {source.attempts_per_record} | {record_worst_case(d):.0f} s "
            f"| {source.max_record_age_seconds} s |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    from functions.catalog import FUNCTIONS

    print(budget_table(FUNCTIONS))
