"""Every function of the project, described once for the CDK app (infra/) and the local stack (local/).

Plain data: adding a function here deploys it and runs it locally; nothing else lists functions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shared.settings import (
    CoachApiSettings,
    CoachBuildFailureSettings,
    ConversationStreamSettings,
    ConversationTurnSettings,
    CreatorStreamSettings,
    CreatorTurnSettings,
    EnvSettings,
    ModelSection,
    ModelWorkerSettings,
    ObservabilitySettings,
    TableSettings,
    UploadsSettings,
    function_name_variable,
    url_variable,
)
from shared.store.dynamodb.keys import POST_TURN_ITEM_TYPE

__all__ = [
    "FUNCTIONS",
    "AsyncInvokeConfig",
    "FunctionDefinition",
    "TableStreamSource",
    "construct_id",
    "function_name_variable",
    "url_variable",
]


@dataclass(frozen=True)
class TableStreamSource:
    """The table's stream as a function's event source: a Lambda event source mapping, declared.

    Only INSERTs of items whose `type` is `item_type` invoke the function (Lambda's filter criteria, applied
    before any invocation). At most `batch_size` records per invocation, each reported on its own
    (`ReportBatchItemFailures`). A batch whose invocation fails is split in two (splits consume no retry),
    a record that keeps failing is retried `retry_attempts` times, never past `max_record_age_seconds`, and
    then described in the function's dead-letter queue, kept `dead_letter_retention_days`. The table keeps
    the item itself until its TTL.
    """

    item_type: str
    batch_size: int = 2
    retry_attempts: int = 3
    max_record_age_seconds: int = 6 * 3600
    bisect_on_error: bool = True
    view_type: str = "NEW_IMAGE"  # what the table's stream records carry: the filter reads the new image
    starting_position: str = "TRIM_HORIZON"  # from the oldest record the stream keeps: none written is skipped
    dead_letter_retention_days: int = 14  # SQS keeps a message at most 14 days

    def filter_pattern(self) -> dict[str, Any]:
        """Lambda's filter rule syntax, over the stream record as the function receives it."""
        return {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": [self.item_type]}}}}

    def per_batch(self, calls: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
        """What one record's work sends, times the records of one invocation: the function's `sdk_calls`."""
        return tuple((client, count * self.batch_size) for client, count in calls)

    @property
    def attempts_per_record(self) -> int:
        """The most invocations one record takes part in: the first, one per split of its batch down to
        itself (splits consume no retry), and every retry."""
        return 1 + math.ceil(math.log2(self.batch_size)) + self.retry_attempts


@dataclass(frozen=True)
class AsyncInvokeConfig:
    """How Lambda runs the function's asynchronous invocations (its `EventInvokeConfig`), declared.

    A failing invocation is retried `retry_attempts` times (Lambda waits about one, then two minutes), never
    past `max_event_age_seconds` in Lambda's queue. Then Lambda sends its invocation record (the request
    payload, the last error) to the on-failure destination: the catalog function `on_failure_function`,
    invoked asynchronously with the record, or, when None, the dead-letter queue `<function name>-dlq`
    (kept `dead_letter_retention_days`, alarmed). Either way no failed invocation is dropped unseen.
    """

    retry_attempts: int = 2
    max_event_age_seconds: int = 6 * 3600
    on_failure_function: str | None = None
    dead_letter_retention_days: int = 14

    # Lambda's delays between the attempts of a failed asynchronous invocation: about 1, then 2 minutes.
    RETRY_DELAYS_SECONDS: ClassVar[tuple[int, ...]] = (60, 120)

    def worst_case_seconds(self, timeout_seconds: int) -> int:
        """Every attempt running to its timeout, with Lambda's delays between them: what the age must allow."""
        delays = sum(self.RETRY_DELAYS_SECONDS[: self.retry_attempts])
        return (1 + self.retry_attempts) * timeout_seconds + delays


@dataclass(frozen=True)
class FunctionDefinition:
    name: str  # the deployed function name's suffix and the local function's name
    folder: str  # functions/<folder>/handler.py
    streaming: bool  # streamed through the exec wrapper behind a RESPONSE_STREAM Function URL
    # The model its handler loads at cold start: the variables the stack sets, and so its permissions
    # (a table section gets the table, a model section the models, an uploads section the bucket).
    settings: type[EnvSettings] = ObservabilitySettings
    timeout_seconds: int = 30
    memory_mb: int = 1024
    # Least privilege, as the code uses it (the local stack checks every call against the result):
    # DynamoDB actions on the table, and per model ("reply", "side") the calls made with it.
    table_actions: tuple[str, ...] = ()
    model_calls: tuple[tuple[str, str], ...] = ()  # (model, "converse" | "stream")
    # Time: the most requests one invocation sends to each client (`shared.aws_clients`: "dynamodb", "s3",
    # "lambda", "jwks", "rate_limit" (the per-user limit's own DynamoDB client), and "model" for the model
    # adapter). Checked against every invocation the integration tests record; summed at their worst case
    # against the timeout (`infra/time_budget.py`).
    sdk_calls: tuple[tuple[str, int], ...] = ()
    # Of those, what a turn sends after its own deadline is set and that the deadline does not bound
    # (claiming the turn, loading its context, storing the reply, the hand-off): the margin it keeps.
    sdk_calls_after_deadline: tuple[tuple[str, int], ...] = ()
    invokes: tuple[str, ...] = ()  # names of functions it invokes asynchronously
    stream_source: TableStreamSource | None = None  # invoked by the table's stream, not by a caller
    async_invoke: AsyncInvokeConfig | None = None  # retries and on-failure destination of async invocations
    api_routes: tuple[str, ...] = ()  # "METHOD /path" on the HTTP API (JWT authorizer unless public)
    public_routes: tuple[str, ...] = ()  # "METHOD /path" without the authorizer
    url_output_key: str | None = None  # the stack output / outputs.json key of its Function URL
    local_port: int | None = None  # the local Function URL port (CONTRACT.md section 4)
    extra_environment: dict[str, str] = field(default_factory=dict)
    handler: str = ""  # the `_HANDLER` string; derived from the folder unless given

    def __post_init__(self) -> None:
        if not self.handler:
            object.__setattr__(self, "handler", f"functions.{self.folder}.handler.handler")

    @property
    def uses_table(self) -> bool:
        return issubclass(self.settings, TableSettings)

    @property
    def uses_models(self) -> bool:
        return issubclass(self.settings, ModelSection) and bool(self.model_calls)

    @property
    def reads_uploads(self) -> bool:
        return issubclass(self.settings, UploadsSettings)

    @property
    def logical_id(self) -> str:
        """The function's CloudFormation logical id (what `sam local invoke` and sam-env.json name)."""
        return f"{construct_id(self.name)}Function"


CONVERSATION_PATH = "/users/{userId}/coaches/{coachId}/conversations/{conversationId}"

# The reply streams, falls back to one converse call; the side model routes the turn.
TURN_MODEL_CALLS = (("reply", "stream"), ("reply", "converse"), ("side", "converse"))
# Before the deadline: the issuer's keys, the rate limit (its own client), conversation and coach, up to 5
# images. After it: the user message's transaction, history + memories + workouts, the reply's transaction
# (which also writes the post-turn job: nothing is handed off after it).
CONVERSATION_TURN_SDK_CALLS = (("jwks", 1), ("rate_limit", 1), ("dynamodb", 9), ("s3", 5), ("model", 3))
CONVERSATION_TURN_AFTER_DEADLINE = (("dynamodb", 7),)
# Before: keys, rate limit (its own client), the session. After: the claim, the answer, the coach build's marker.
CREATOR_TURN_SDK_CALLS = (("jwks", 1), ("rate_limit", 1), ("dynamodb", 4), ("model", 2), ("lambda", 1))
CREATOR_TURN_AFTER_DEADLINE = (("dynamodb", 3), ("lambda", 1))
# Side tasks answer small JSON documents: a shorter read and one retry keep three of them in budget.
WORKER_MODEL_LIMITS = {"MODEL_READ_TIMEOUT_SECONDS": "30", "MODEL_MAX_ATTEMPTS": "2"}

# The outbox item a turn writes in its reply's transaction (`type` of the item): the stream delivers it.
POST_TURN_STREAM = TableStreamSource(item_type=POST_TURN_ITEM_TYPE)
# One job: workout (stored date, put), up to three memories, summary (conversation, history, update).
POST_TURN_JOB_SDK_CALLS = (("dynamodb", 8), ("model", 3))

COACH_CONVERSATION_POST_TURN = FunctionDefinition(
    name="coach-conversation-post-turn",
    folder="coach_conversation_post_turn",
    table_actions=("GetItem", "Query", "PutItem", "UpdateItem"),  # the summary reads the conversation
    model_calls=(("side", "converse"),),
    streaming=False,
    settings=ModelWorkerSettings,
    timeout_seconds=660,  # the jobs of one batch run one after the other
    extra_environment=WORKER_MODEL_LIMITS,
    stream_source=POST_TURN_STREAM,
    sdk_calls=POST_TURN_STREAM.per_batch(POST_TURN_JOB_SDK_CALLS),
    memory_mb=512,
)

STREAM_COACH_CONVERSATION = FunctionDefinition(
    name="stream-coach-conversation",
    folder="stream_coach_conversation",
    table_actions=("GetItem", "Query", "PutItem", "UpdateItem"),
    model_calls=TURN_MODEL_CALLS,
    streaming=True,
    settings=ConversationStreamSettings,
    timeout_seconds=300,
    sdk_calls=CONVERSATION_TURN_SDK_CALLS,
    sdk_calls_after_deadline=CONVERSATION_TURN_AFTER_DEADLINE,
    url_output_key="coachConversationStreamUrl",
    local_port=3001,
)

SEND_COACH_CONVERSATION_MESSAGE = FunctionDefinition(
    name="send-coach-conversation-message",
    folder="send_coach_conversation_message",
    table_actions=("GetItem", "Query", "PutItem", "UpdateItem"),
    model_calls=TURN_MODEL_CALLS,
    streaming=False,
    settings=ConversationTurnSettings,
    timeout_seconds=300,
    sdk_calls=CONVERSATION_TURN_SDK_CALLS,
    sdk_calls_after_deadline=CONVERSATION_TURN_AFTER_DEADLINE,
    api_routes=(f"POST {CONVERSATION_PATH}/send-message",),
)

COACH_API = FunctionDefinition(
    name="coach-api",
    folder="coach_api",
    table_actions=("GetItem", "Query", "PutItem", "UpdateItem"),  # UpdateItem: the per-user rate limit only
    streaming=False,
    settings=CoachApiSettings,
    timeout_seconds=29,  # API Gateway's HTTP API waits 30 s for an integration
    sdk_calls=(("jwks", 1), ("rate_limit", 1), ("dynamodb", 2)),
    memory_mb=512,
    api_routes=(
        "GET /users/{userId}/coaches",
        "GET /users/{userId}/coaches/{coachId}",
        "POST /users/{userId}/coaches/{coachId}/conversations",
        f"GET {CONVERSATION_PATH}",
        "POST /users/{userId}/coach-creator-sessions",
        "GET /users/{userId}/coach-creator-sessions/{sessionId}",
    ),
    public_routes=("GET /config",),
)

# A coach build that fails every attempt: its invocation record marks the session's build failed.
MARK_COACH_BUILD_FAILED = FunctionDefinition(
    name="mark-coach-build-failed",
    folder="mark_coach_build_failed",
    table_actions=("GetItem", "UpdateItem"),
    streaming=False,
    settings=CoachBuildFailureSettings,
    timeout_seconds=30,
    sdk_calls=(("dynamodb", 2),),  # the mark, and a read when its condition fails
    memory_mb=256,
    # Its own failures (the table unreachable for three attempts over hours) land in its dead-letter queue.
    async_invoke=AsyncInvokeConfig(),
)

BUILD_COACH_FROM_SESSION = FunctionDefinition(
    name="build-coach-from-session",
    folder="build_coach_from_session",
    table_actions=("GetItem", "PutItem", "UpdateItem"),
    model_calls=(("reply", "converse"),),
    streaming=False,
    settings=ModelWorkerSettings,
    timeout_seconds=240,
    extra_environment={"MODEL_MAX_ATTEMPTS": "2"},  # a coach configuration may take a minute to write
    # the session, the coach, the session's link to it (or its failure marker)
    sdk_calls=(("dynamodb", 5), ("model", 1)),
    memory_mb=512,
    # Three attempts at most 15 minutes apart; an hour leaves room for throttling, and a user waiting for a
    # coach learns of a failure within the hour (Lambda's default keeps an event six hours).
    async_invoke=AsyncInvokeConfig(max_event_age_seconds=3600, on_failure_function=MARK_COACH_BUILD_FAILED.name),
)

STREAM_COACH_CREATOR_SESSION = FunctionDefinition(
    name="stream-coach-creator-session",
    folder="stream_coach_creator_session",
    table_actions=("GetItem", "UpdateItem"),
    model_calls=(("reply", "stream"), ("reply", "converse")),
    streaming=True,
    settings=CreatorStreamSettings,
    timeout_seconds=300,
    sdk_calls=CREATOR_TURN_SDK_CALLS,
    sdk_calls_after_deadline=CREATOR_TURN_AFTER_DEADLINE,
    invokes=(BUILD_COACH_FROM_SESSION.name,),
    url_output_key="coachCreatorStreamUrl",
    local_port=3002,
)

UPDATE_COACH_CREATOR_SESSION = FunctionDefinition(
    name="update-coach-creator-session",
    folder="update_coach_creator_session",
    table_actions=("GetItem", "UpdateItem"),
    model_calls=(("reply", "stream"), ("reply", "converse")),
    streaming=False,
    settings=CreatorTurnSettings,
    timeout_seconds=300,
    sdk_calls=CREATOR_TURN_SDK_CALLS,
    sdk_calls_after_deadline=CREATOR_TURN_AFTER_DEADLINE,
    invokes=(BUILD_COACH_FROM_SESSION.name,),
    api_routes=("PUT /users/{userId}/coach-creator-sessions/{sessionId}",),
)

FUNCTIONS: tuple[FunctionDefinition, ...] = (
    STREAM_COACH_CONVERSATION,
    SEND_COACH_CONVERSATION_MESSAGE,
    COACH_CONVERSATION_POST_TURN,
    COACH_API,
    STREAM_COACH_CREATOR_SESSION,
    UPDATE_COACH_CREATOR_SESSION,
    BUILD_COACH_FROM_SESSION,
    MARK_COACH_BUILD_FAILED,
)


def construct_id(name: str) -> str:
    """`stream-coach-conversation` -> `StreamCoachConversation`: stable ids from catalog names."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)
