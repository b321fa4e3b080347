"""Every function of the project, described once for the CDK app (infra/) and the local stack (local/).

Plain data: adding a function here deploys it and runs it locally; nothing else lists functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shared.settings import (
    CoachApiSettings,
    ConversationTurnSettings,
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

__all__ = ["FUNCTIONS", "FunctionDefinition", "construct_id", "function_name_variable", "url_variable"]


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
    invokes: tuple[str, ...] = ()  # names of functions it invokes asynchronously
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

COACH_CONVERSATION_POST_TURN = FunctionDefinition(
    name="coach-conversation-post-turn",
    folder="coach_conversation_post_turn",
    table_actions=("GetItem", "Query", "PutItem", "UpdateItem"),  # the summary reads the conversation
    model_calls=(("side", "converse"),),
    streaming=False,
    settings=ModelWorkerSettings,
    timeout_seconds=120,
    memory_mb=512,
)

STREAM_COACH_CONVERSATION = FunctionDefinition(
    name="stream-coach-conversation",
    folder="stream_coach_conversation",
    table_actions=("GetItem", "Query", "PutItem", "UpdateItem"),
    model_calls=TURN_MODEL_CALLS,
    streaming=True,
    settings=ConversationTurnSettings,
    timeout_seconds=300,
    invokes=(COACH_CONVERSATION_POST_TURN.name,),
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
    timeout_seconds=120,
    invokes=(COACH_CONVERSATION_POST_TURN.name,),
    api_routes=(f"POST {CONVERSATION_PATH}/send-message",),
)

COACH_API = FunctionDefinition(
    name="coach-api",
    folder="coach_api",
    table_actions=("GetItem", "Query", "PutItem"),
    streaming=False,
    settings=CoachApiSettings,
    timeout_seconds=15,
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

BUILD_COACH_FROM_SESSION = FunctionDefinition(
    name="build-coach-from-session",
    folder="build_coach_from_session",
    table_actions=("GetItem", "PutItem", "UpdateItem"),
    model_calls=(("reply", "converse"),),
    streaming=False,
    settings=ModelWorkerSettings,
    timeout_seconds=120,
    memory_mb=512,
)

STREAM_COACH_CREATOR_SESSION = FunctionDefinition(
    name="stream-coach-creator-session",
    folder="stream_coach_creator_session",
    table_actions=("GetItem", "UpdateItem"),
    model_calls=(("reply", "stream"), ("reply", "converse")),
    streaming=True,
    settings=CreatorTurnSettings,
    timeout_seconds=300,
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
    timeout_seconds=120,
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
)


def construct_id(name: str) -> str:
    """`stream-coach-conversation` -> `StreamCoachConversation`: stable ids from catalog names."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)
