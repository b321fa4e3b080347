"""The shapes of the API's answers as pydantic models, so the OpenAPI document is generated, not written.

Records (`shared.store.records`) already are the stored shapes and serve as they are; the models here
wrap them the way the endpoints and the turn fallbacks compose them (CONTRACT.md sections 2 and 3).
The endpoints still build plain dicts (no response validation at run time): the schemathesis run
against the local stack is what holds the two together.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ChunkEvent, ContextualEvent, ErrorEvent, ProgressEvent, StartEvent
from shared.http.errors import ERROR_STATUSES
from shared.store.records import ChatMessage, Coach, Conversation, QuestionAnswer, SophisticationLevel

ErrorCode = Literal[tuple(sorted({status.code for status in ERROR_STATUSES.values()}))]  # type: ignore[valid-type]
"""Every code of the one error table, so a new code reaches the document without an edit here."""


class Shape(BaseModel):
    """An answer's shape: fields as the contract spells them, nothing undocumented."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorDetail(Shape):
    code: ErrorCode  # type: ignore[valid-type]
    message: str


class ErrorBody(Shape):
    """Every refusal a function answers: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


class GatewayMessage(Shape):
    """What API Gateway itself answers before any function runs (its JWT authorizer's 401, its throttle's
    429): clients tell these apart by status only."""

    message: str


class CoachList(Shape):
    coaches: list[Coach]


class ConversationWithMessages(Shape):
    conversation: Conversation
    messages: list[ChatMessage] = Field(description="oldest first")


class ShownQuestion(Shape):
    id: str
    text: str


class ProgressDetails(Shape):
    questionsCompleted: int = Field(ge=0)  # noqa: N815 - the contract's field names
    totalQuestions: int = Field(ge=0)  # noqa: N815
    percentage: int = Field(ge=0, le=100)
    sophisticationLevel: SophisticationLevel  # noqa: N815


class CreatorSessionStarted(Shape):
    sessionId: str  # noqa: N815
    question: ShownQuestion
    progressDetails: ProgressDetails  # noqa: N815
    isComplete: Literal[False]  # noqa: N815


class CreatorSessionView(Shape):
    sessionId: str  # noqa: N815
    history: list[QuestionAnswer]
    currentQuestion: ShownQuestion | None  # noqa: N815
    progressDetails: ProgressDetails  # noqa: N815
    isComplete: bool  # noqa: N815
    sophisticationLevel: SophisticationLevel  # noqa: N815
    coachConfigStatus: Literal["none", "generating", "ready", "failed"]  # noqa: N815
    coachId: str = Field(default="", description="present once the session's coach exists")  # noqa: N815


class Features(Shape):
    streamingEnabled: bool  # noqa: N815
    streamingPercentage: int = Field(ge=0, le=100)  # noqa: N815


class Endpoints(Shape):
    coachConversationStream: str | None  # noqa: N815
    coachCreatorStream: str | None  # noqa: N815
    api: str | None


class FrontendConfig(Shape):
    features: Features
    endpoints: Endpoints
    useStreaming: bool = Field(default=False, description="only with a valid token: stream for this user")  # noqa: N815


class ConversationReply(Shape):
    """The conversation fallback's JSON answer."""

    conversationId: str  # noqa: N815
    userMessage: ChatMessage  # noqa: N815
    aiMessage: ChatMessage  # noqa: N815
    fullMessage: str  # noqa: N815


class CreatorReply(Shape):
    """The creator fallback's JSON answer: the creator `complete` event without `type` and `status`."""

    sessionId: str  # noqa: N815
    aiResponse: str  # noqa: N815
    isComplete: bool  # noqa: N815
    nextQuestion: str | None = None  # noqa: N815
    progressDetails: ProgressDetails  # noqa: N815
    coachConfigGenerating: bool  # noqa: N815


# --- the stream's events: the models the flows emit, with the `complete` payloads spelled out ---------


class ConversationCompleteEvent(ConversationReply):
    type: Literal["complete"]
    status: Literal["finished"]
    messageId: str  # noqa: N815


class CreatorCompleteEvent(CreatorReply):
    type: Literal["complete"]
    status: Literal["finished"]


class CreatorProgressEvent(ProgressEvent):
    progressDetails: ProgressDetails  # type: ignore[assignment]  # noqa: N815


STREAM_EVENTS: dict[str, tuple[type[BaseModel], ...]] = {
    "conversation": (StartEvent, ContextualEvent, ChunkEvent, ConversationCompleteEvent, ErrorEvent),
    "creator": (StartEvent, ChunkEvent, CreatorProgressEvent, CreatorCompleteEvent, ErrorEvent),
}
"""Which events each flow's stream may carry (CONTRACT.md section 2), one JSON object per `data:` line."""
