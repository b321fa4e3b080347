"""Every function ends before Lambda ends it: its clients' worst cases, from its settings and the catalog.

The figures are computed from the synthesized template (the settings each function really gets) and
from botocore's own configuration of each client, not restated here.
"""

from __future__ import annotations

import boto3
import pytest

from functions.catalog import FUNCTIONS, FunctionDefinition
from infra.catalog_rules import CatalogError
from infra.time_budget import (
    CLIENTS,
    MIN_STREAM_SECONDS,
    TimeBudgetError,
    is_turn,
    model_limits,
    safety,
    time_budget,
    worst_case,
)
from shared import aws_clients
from shared.aws_clients import ClientLimits
from shared.settings import StreamSettings
from tests.infra.cfn import function_by_name


def _environment(synthesized, definition: FunctionDefinition) -> dict[str, str]:
    _, fn = function_by_name(synthesized.raw("api"), f"{synthesized.config.name_prefix}-{definition.name}")
    variables = fn["Properties"]["Environment"]["Variables"]
    return {k: v for k, v in variables.items() if isinstance(v, str)}


def _timeout(synthesized, definition: FunctionDefinition) -> float:
    _, fn = function_by_name(synthesized.raw("api"), f"{synthesized.config.name_prefix}-{definition.name}")
    return float(fn["Properties"]["Timeout"])


def test_every_function_fits_its_timeout_with_a_margin(synthesized):
    for definition in synthesized.definitions:
        env = _environment(synthesized, definition)
        timeout = _timeout(synthesized, definition)
        model = model_limits(env)
        calls = dict(definition.sdk_calls)
        if not is_turn(definition):
            worst = worst_case(calls.items(), model)
            assert worst + safety(timeout) <= timeout, (definition.name, worst, timeout)
            continue
        stream = StreamSettings.from_env(env)
        after = dict(definition.sdk_calls_after_deadline)
        after_worst = worst_case(after.items(), model)
        # What the turn still sends once its deadline passed fits the margin it keeps before Lambda's.
        assert after_worst + safety(timeout) <= stream.stream_deadline_margin_seconds, definition.name
        # Everything before the deadline, stalled, still leaves the turn time to stream and to finish.
        before = {c: n - after.get(c, 0) for c, n in calls.items() if c != "model"}
        worst_before = worst_case(before.items(), model)
        assert worst_before + MIN_STREAM_SECONDS + stream.stream_deadline_margin_seconds <= timeout
        assert stream.stream_time_budget_seconds + stream.stream_deadline_margin_seconds <= timeout


def test_the_conversation_turn_keeps_its_configured_budget_when_it_fits(real):
    definition = next(d for d in FUNCTIONS if d.name == "stream-coach-conversation")
    stream = StreamSettings.from_env(_environment(real, definition))
    assert stream.stream_time_budget_seconds == min(
        240, definition.timeout_seconds - stream.stream_deadline_margin_seconds
    )
    assert stream.stream_deadline_margin_seconds > 10, "the reply's write and the hand-off need more than 10 s"


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_a_client_sends_no_more_requests_than_its_figure_counts(name):
    """botocore's own view of the configuration: `total_max_attempts` requests, the timeouts given."""
    limits = CLIENTS[name]
    if name == "jwks":
        assert limits.attempts == 1  # one urllib GET with one timeout for connect and each read
        assert limits.connect_timeout == limits.read_timeout
        return
    client = boto3.client(
        {"dynamodb": "dynamodb", "rate_limit": "dynamodb", "s3": "s3", "lambda": "lambda"}[name],
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=limits.botocore_config(),
    )
    config = client.meta.config
    assert config.retries["total_max_attempts"] == limits.attempts
    assert (config.connect_timeout, config.read_timeout) == (limits.connect_timeout, limits.read_timeout)


def test_worst_case_counts_every_attempt_and_every_capped_backoff():
    assert ClientLimits(1.0, 2.0, 1).worst_case_seconds == 3.0
    assert ClientLimits(1.0, 2.0, 3).worst_case_seconds == 3 * 3.0 + 1 + 2
    assert ClientLimits(0.0, 0.0, 7).worst_case_seconds == 1 + 2 + 4 + 8 + 16 + 20  # capped at 20 s
    assert aws_clients.DYNAMODB.worst_case_seconds < 15


def test_a_function_that_cannot_fit_fails_the_synth_arithmetic():
    slow = FunctionDefinition(
        name="t-slow", folder="", streaming=False, timeout_seconds=15, sdk_calls=(("dynamodb", 3),)
    )
    with pytest.raises(TimeBudgetError, match="exceeds its 15 s timeout"):
        time_budget(slow, {}, 240)
    turn = next(d for d in FUNCTIONS if d.name == "stream-coach-conversation")
    from dataclasses import replace

    cramped = replace(turn, timeout_seconds=60)
    with pytest.raises(TimeBudgetError, match="leave less than"):
        time_budget(cramped, {}, 240)
    assert issubclass(TimeBudgetError, ValueError) and issubclass(CatalogError, ValueError)
