"""Alarms and one dashboard over what the functions already emit: nothing here invents a metric.

Two sources. The functions' own metrics (Powertools EMF, `shared/observability.py`) carry one dimension,
Powertools' `service`, and every function is given the same service name (`POWERTOOLS_SERVICE_NAME`), so
they are the service's, not a function's: time to first token is one figure for every turn, whichever
function ran it. Lambda's own metrics (`AWS/Lambda`, dimension `FunctionName`, which aggregates every
version and alias) are per function: throttles, invocations, concurrency.

Every threshold is derived from the catalog and its budgets (`infra/time_budget.py`, the turn settings'
defaults) or stated with its reason in the alarm's description; counts treat missing data as not
breaching, since a quiet hour is not a failure. Every alarm in the stack, the dead-letter queues' too,
notifies one topic (`<prefix>-alarms`, KMS-encrypted, TLS only) that an operator subscribes to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_lambda_powertools.shared.constants import METRICS_NAMESPACE_ENV, SERVICE_NAME_ENV
from constructs import Construct

from functions.catalog import FunctionDefinition
from infra.catalog_rules import CatalogError, construct_id
from infra.time_budget import is_turn, time_budget
from shared.http.errors import ERROR_STATUSES, error_metric_name
from shared.settings import SseSettings
from shared.store.dynamodb.rate_limit import UNAVAILABLE_METRIC

if TYPE_CHECKING:
    from infra.api_stack import ApiStack

PERIOD = Duration.minutes(5)
SLOW_PERIOD = Duration.minutes(15)  # for figures that need a few minutes of traffic to mean anything
SERVICE_DIMENSION = "service"  # the one dimension Powertools puts on every metric it emits
NEAR_BUDGET_SHARE = 0.8  # a turn's p95 past this share of its stream budget is close to being cut off
FALLBACK_RATE_PERCENT = 10.0
FALLBACK_MIN_TURNS = 20  # fewer turn invocations in a period than this: no rate is computed
NOT_ALARMED_SERVER_CODES = frozenset({"STREAMING_DISABLED"})  # an operator's switch, not a failure
ERROR_REASONS = {
    "INTERNAL_ERROR": "the contract's answer to an unexpected exception: each one is a bug to read in the logs",
    "MODEL_STREAM_INTERRUPTED": "the model failed after some text: the user has a partial reply",
    "MODEL_UNAVAILABLE": "the model failed before its first token and its non-streaming fallback failed too: "
    "the user has no reply at all",
    "TIMEOUT": "a turn reached its stream budget (infra/time_budget.py): the user has a partial reply",
}
COACH_BUILD_FAILURES = {  # metric -> (alarm name suffix, why one is enough)
    "CoachBuildsFailed": (
        "coach-builds-failed",
        "a coach build failed every retry and its session was marked failed: a user finished the interview and "
        "has no coach",
    ),
    "CoachBuildHandoffFailures": (
        "coach-build-handoff-failures",
        "a finished interview could not hand its coach build off (async invoke refused): no build runs for that "
        "session",
    ),
}
RATE_LIMIT_UNAVAILABLE = UNAVAILABLE_METRIC
RATE_LIMIT_UNAVAILABLE_THRESHOLD = 10
ACTIVITY_METRICS = ("CoachesBuilt", "CoachBuildDefaults", "WorkoutsLogged", "MemoriesSaved", "SummariesSaved")
WORKER_FAILURE_METRICS = (
    "PostTurnTaskFailures",
    "PostTurnInvalidJobs",
    "CoachBuildInvalidJobs",
    "CoachBuildFailureInvalidRecords",
)


@dataclass(frozen=True)
class Thresholds:
    """The figures the alarms compare against, from the catalog: plain numbers the tests can check."""

    post_turn_failures: int  # the attempts one stream record gets: one failing record stays at or under it
    # The turns' figures; None without a turn function (a stack of other functions has no turn alarms).
    time_to_first_token_ms: float | None = None  # the turns' keep-alive interval: past it only keep-alives show
    stream_budget_seconds: float | None = None  # the shortest turn budget (a turn stops itself there)
    stream_duration_ms: float | None = None  # NEAR_BUDGET_SHARE of it

    @classmethod
    def of(cls, definitions: Iterable[FunctionDefinition], configured_stream_budget: float) -> Thresholds:
        definitions = list(definitions)
        turns = [d for d in definitions if is_turn(d)]
        attempts = [d.stream_source.attempts_per_record for d in definitions if d.stream_source is not None]
        if not turns:
            return cls(post_turn_failures=max(attempts, default=1))
        keep_alive = min(_keep_alive_seconds(d) for d in turns)
        budgets = [time_budget(d, d.extra_environment, configured_stream_budget).stream_budget_seconds for d in turns]
        budget = min(b for b in budgets if b is not None)
        return cls(
            time_to_first_token_ms=keep_alive * 1000,
            stream_budget_seconds=budget,
            stream_duration_ms=round(NEAR_BUDGET_SHARE * budget * 1000),
            post_turn_failures=max(attempts, default=1),
        )


def _keep_alive_seconds(definition: FunctionDefinition) -> float:
    default = SseSettings.model_fields["keep_alive_seconds"].default
    return float(definition.extra_environment.get("SSE_KEEP_ALIVE_SECONDS", default))


def alarmed_error_codes() -> tuple[str, ...]:
    """The contract's 5xx codes, but for the one an operator causes on purpose."""
    codes = {s.code for s in ERROR_STATUSES.values() if s.status >= 500} - NOT_ALARMED_SERVER_CODES
    return tuple(sorted(codes))


def alarm_name(prefix: str, what: str) -> str:
    return f"{prefix}-{what}"


def dashboard_name(prefix: str) -> str:
    return f"{prefix}-operations"


def topic_name(prefix: str) -> str:
    return f"{prefix}-alarms"


class Monitoring(Construct):
    """The stack's alarms, their topic and its dashboard. Build it last: it also takes up the alarms the
    stack made before it (the dead-letter queues')."""

    def __init__(self, scope: Construct, id_: str, *, api: ApiStack) -> None:
        super().__init__(scope, id_)
        self.api = api
        self.prefix = api.config.name_prefix
        self.namespace, self.service = _service_dimension(api)
        self.thresholds = Thresholds.of(api.definitions, api.config.stream_time_budget_seconds)
        self.turns = [d for d in api.definitions if is_turn(d)]
        existing = [c for c in api.node.find_all() if isinstance(c, cloudwatch.Alarm)]
        self.topic = self._topic()
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._turn_alarms()
        self._error_alarms()
        self._throttle_alarms()
        self._worker_alarms()
        for alarm in [*existing, *self.alarms.values()]:
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        self.dashboard = self._dashboard([*existing, *self.alarms.values()])

    # --- metrics ----------------------------------------------------------------------------------

    def custom(
        self, name: str, statistic: str = cloudwatch.Stats.SUM, period: Duration = PERIOD, label: str | None = None
    ) -> cloudwatch.Metric:
        """One of the functions' own metrics, with exactly the dimensions Powertools gives it. Alarms take
        them without a label, which keeps them plain single-metric alarms."""
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=name,
            dimensions_map={SERVICE_DIMENSION: self.service},
            statistic=statistic,
            period=period,
            label=label,
        )

    def lambda_metric(
        self,
        definition: FunctionDefinition,
        name: str,
        statistic: str = cloudwatch.Stats.SUM,
        period: Duration = PERIOD,
        label: str | None = None,
    ) -> cloudwatch.Metric:
        """Lambda's own metric for the function (`FunctionName`: every version and alias together)."""
        return self.api.functions[definition.name].function.metric(
            name, statistic=statistic, period=period, label=label
        )

    # --- alarms -----------------------------------------------------------------------------------

    def _alarm(
        self,
        what: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        reason: str,
        *,
        evaluation_periods: int = 1,
        operator: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        percentile: bool = False,
    ) -> cloudwatch.Alarm:
        name = alarm_name(self.prefix, what)
        alarm = cloudwatch.Alarm(
            self,
            construct_id(what),
            alarm_name=name,
            alarm_description=reason,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=operator,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            # A percentile over a handful of turns is one slow turn: wait for enough of them.
            evaluate_low_sample_count_percentile="ignore" if percentile else None,
        )
        self.alarms[name] = alarm
        return alarm

    def _turn_alarms(self) -> None:
        t = self.thresholds
        if t.time_to_first_token_ms is None or t.stream_duration_ms is None:
            return  # no turn function in this stack
        p95 = cloudwatch.Stats.percentile(95)
        self._alarm(
            "time-to-first-token-p95",
            self.custom("TimeToFirstToken", p95),
            t.time_to_first_token_ms,
            f"p95 of the time from a conversation turn's start to the model's first token, streamed turns and "
            "their fallback together (the metric has no per-function dimension; creator turns do not emit it), "
            f"at or above {t.time_to_first_token_ms:g} ms for 15 minutes: the SSE keep-alive interval, past which "
            "a user sees nothing but keep-alive comments. Bedrock is slow or throttling the reply model.",
            evaluation_periods=3,
            percentile=True,
        )
        self._alarm(
            "stream-duration-p95",
            self.custom("StreamDuration", p95),
            t.stream_duration_ms,
            f"p95 of a conversation turn's duration at or above {t.stream_duration_ms:g} ms for 15 minutes: "
            f"{NEAR_BUDGET_SHARE:.0%} of the shortest turn's stream budget ({t.stream_budget_seconds:g} s, its "
            "Lambda timeout less the margin it keeps, infra/time_budget.py); turns past the budget end in TIMEOUT.",
            evaluation_periods=3,
            percentile=True,
        )
        self._alarm(
            "fallback-rate",
            self.fallback_rate(),
            FALLBACK_RATE_PERCENT,
            f"Non-streaming fallbacks (the model failed before its first token) per 100 invocations of the turn "
            f"functions ({', '.join(d.name for d in self.turns)}), at or above {FALLBACK_RATE_PERCENT:g} for 15 "
            f"minutes, once a period has at least {FALLBACK_MIN_TURNS} invocations. Invocations refused before the "
            "turn count too, so this is a lower bound of the per-turn rate. Each fallback costs a second model call "
            "and shows the reply all at once: 1 in 10 means Bedrock streaming is failing, not blipping.",
            evaluation_periods=3,
        )

    def fallback_rate(self) -> cloudwatch.MathExpression:
        """Fallbacks per 100 turn-function invocations; 0 while there are too few to call it a rate."""
        invocations = {f"i{n}": self.lambda_metric(d, "Invocations") for n, d in enumerate(self.turns)}
        turns = " + ".join(f"FILL({key}, 0)" for key in invocations)
        return cloudwatch.MathExpression(
            expression=f"IF(({turns}) >= {FALLBACK_MIN_TURNS}, 100 * FILL(fallbacks, 0) / ({turns}), 0)",
            using_metrics={"fallbacks": self.custom("Fallbacks"), **invocations},
            label="fallbacks per 100 turn invocations",
            period=PERIOD,
        )

    def _error_alarms(self) -> None:
        for code in alarmed_error_codes():
            reason = ERROR_REASONS.get(code, "a 5xx code of the contract: a failure the user saw")
            self._alarm(
                f"errors-{code.lower().replace('_', '-')}",
                self.custom(error_metric_name(code)),
                1,
                f"{code} answered at least once in 5 minutes: {reason}. The contract allows none.",
            )

    def _throttle_alarms(self) -> None:
        for definition in self.api.definitions:
            self._alarm(
                f"{definition.name}-throttles",
                self.lambda_metric(definition, "Throttles"),
                1,
                f"{self.api.deployed_name(definition)} was throttled at least once in 5 minutes: a caller was refused "
                "(a stream or API request fails; an async or stream event is retried later). The account's "
                "concurrency is shared by every function: raise the quota or reserve concurrency.",
            )

    def _worker_alarms(self) -> None:
        t = self.thresholds
        self._alarm(
            "post-turn-task-failures",
            self.custom("PostTurnTaskFailures", period=SLOW_PERIOD),
            t.post_turn_failures,
            f"More than {t.post_turn_failures} post-turn task failures in 15 minutes: a stream record gets at most "
            f"{t.post_turn_failures} attempts before its dead-letter queue (alarmed on its own), so one failing "
            "record stays at or under this; more means several jobs fail (the side model or the table).",
            operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        for name, (what, reason) in COACH_BUILD_FAILURES.items():
            self._alarm(what, self.custom(name), 1, f"{name} at least once in 5 minutes: {reason}.")
        self._alarm(
            "rate-limit-unavailable",
            self.custom(RATE_LIMIT_UNAVAILABLE, period=SLOW_PERIOD),
            RATE_LIMIT_UNAVAILABLE_THRESHOLD,
            f"{RATE_LIMIT_UNAVAILABLE} at least {RATE_LIMIT_UNAVAILABLE_THRESHOLD} times in 15 minutes: the per-user "
            "limit's update timed out or was throttled and those requests were admitted unchecked (fail open); "
            "one is a blip, this many means the limit is off in effect while the table struggles.",
        )

    # --- the topic --------------------------------------------------------------------------------

    def _topic(self) -> sns.Topic:
        """Encrypted with a key of its own: CloudWatch cannot use the AWS-managed SNS key to publish."""
        key = kms.Key(
            self,
            "AlarmTopicKey",
            alias=f"alias/{topic_name(self.prefix)}",
            description=f"{topic_name(self.prefix)}: encrypts the alarm notifications at rest",
            enable_key_rotation=True,
        )
        cloudwatch_service = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        key.grant(cloudwatch_service, "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=topic_name(self.prefix),
            display_name=f"{self.prefix} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        alarms_arn = f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm"
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[cloudwatch_service],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": f"{alarms_arn}:{self.prefix}-*"},
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        return topic

    # --- the dashboard ----------------------------------------------------------------------------

    def _dashboard(self, alarms: Sequence[cloudwatch.Alarm]) -> cloudwatch.Dashboard:
        t = self.thresholds
        p50, p95 = cloudwatch.Stats.percentile(50), cloudwatch.Stats.percentile(95)
        functions = self.api.definitions
        queues = self.api.dead_letter_queues
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name(self.prefix))
        dashboard.add_widgets(cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(alarms), width=24, height=4))
        if t.time_to_first_token_ms is not None and t.stream_duration_ms is not None:
            dashboard.add_widgets(
                _graph(
                    "Time to first token (ms)",
                    [
                        self.custom("TimeToFirstToken", p50, label="p50"),
                        self.custom("TimeToFirstToken", p95, label="p95"),
                    ],
                    annotation=(t.time_to_first_token_ms, "alarm (p95)"),
                ),
                _graph(
                    "Turn duration (ms)",
                    [self.custom("StreamDuration", p50, label="p50"), self.custom("StreamDuration", p95, label="p95")],
                    annotation=(t.stream_duration_ms, "alarm (p95)"),
                ),
                _graph("Fallbacks", [self.custom("Fallbacks")], right=[self.fallback_rate()]),
            )
        codes = sorted({s.code for s in ERROR_STATUSES.values()})
        dashboard.add_widgets(
            _graph("Errors by contract code", [self.custom(error_metric_name(c), label=c) for c in codes], width=12),
            _graph("Throttles", [self.lambda_metric(d, "Throttles", label=d.name) for d in functions], width=12),
        )
        concurrency = [
            self.lambda_metric(d, "ConcurrentExecutions", cloudwatch.Stats.MAXIMUM, label=d.name) for d in functions
        ]
        account = cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name="ConcurrentExecutions",
            statistic=cloudwatch.Stats.MAXIMUM,
            period=PERIOD,
            label="account (every function)",
        )
        dashboard.add_widgets(
            _graph("Concurrent executions (max)", concurrency, right=[account], width=12),
            _graph("Output tokens", [self.custom("OutputTokens")], width=12),
        )
        failures = [self.custom(name, label=name) for name in (*WORKER_FAILURE_METRICS, *COACH_BUILD_FAILURES)]
        depth = [
            queue.metric_approximate_number_of_messages_visible(
                period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM, label=queue_name
            )
            for queue_name, queue in _by_name(queues)
        ]
        dashboard.add_widgets(
            _graph("Post-turn and coach-build failures", failures),
            _graph("Dead-letter queue depth (max)", depth),
            _graph("Work done", [self.custom(name, label=name) for name in ACTIVITY_METRICS]),
        )
        return dashboard


def _graph(
    title: str,
    left: Sequence[cloudwatch.IMetric],
    *,
    right: Sequence[cloudwatch.IMetric] = (),
    annotation: tuple[float, str] | None = None,
    width: int = 8,
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(
        title=title,
        left=list(left),
        right=list(right),
        left_annotations=[cloudwatch.HorizontalAnnotation(value=annotation[0], label=annotation[1])]
        if annotation
        else None,
        width=width,
        height=6,
    )


def _by_name(queues: Mapping[str, sqs.Queue]) -> list[tuple[str, sqs.Queue]]:
    return sorted(queues.items(), key=lambda item: item[0])


def _service_dimension(api: ApiStack) -> tuple[str, str]:
    """The namespace and service every function is given; one pair, or the service metrics would split."""
    pairs: set[tuple[str, str]] = set()
    for definition in api.definitions:
        env = api.environment(definition)
        pairs.add((env.get(METRICS_NAMESPACE_ENV, ""), env.get(SERVICE_NAME_ENV, "")))
    if len(pairs) != 1 or "" in next(iter(pairs)):
        raise CatalogError(
            f"monitoring expects every function to share one metrics namespace and service name, not {sorted(pairs)}: "
            "alarms on the service's metrics would see only part of them"
        )
    return next(iter(pairs))
