"""What the store keeps, as the API shows it (camelCase on the wire, snake_case in code)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

MessageStatus = Literal["complete", "interrupted", "timeout"]


def _empty_list() -> list[Any]:
    """The default factory of list fields, rather than `list`: pydantic reads a factory's signature, and a
    builtin's only from its text, through `tokenize`, whose large pattern compiles at the first such field
    (2 ms of a cold start)."""
    return []


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)

    def api(self) -> dict[str, Any]:
        """The JSON the contract shows: camelCase, no None fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Coach(Record):
    user_id: str
    coach_id: str
    name: str
    personality: str = ""
    methodology: str = ""
    program_focus: str = ""
    safety_notes: str = ""
    coaching_style: str = ""
    created_at: str = ""
    source_session_id: str | None = None


class Conversation(Record):
    user_id: str
    coach_id: str
    conversation_id: str
    title: str = ""
    created_at: str = ""
    updated_at: str = ""
    message_count: int = 0
    summary: str = ""
    summarized_through: int = 0


class MessageMetadata(Record):
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    fallback: bool = False
    status: MessageStatus = "complete"
    latency_ms: int | None = None
    superseded: bool | None = None  # a failed attempt's partial reply, replaced by a retry's: kept, not shown


class ChatMessage(Record):
    id: str
    role: Literal["user", "assistant"]
    content: str
    timestamp: str
    client_message_id: str | None = None
    image_s3_keys: tuple[str, ...] | None = None
    metadata: MessageMetadata | None = None

    def contract(self) -> dict[str, Any]:
        """The message as CONTRACT.md shows it in `complete` and GET responses.

        A user message keeps its `clientMessageId`: a client whose stream broke finds its turn by it.
        """
        shown = self.api()
        shown.pop("imageS3Keys", None)
        return shown


class Memory(Record):
    memory_id: str
    coach_id: str
    content: str
    created_at: str
    source_message_id: str = ""


class Workout(Record):
    workout_id: str
    coach_id: str
    conversation_id: str
    performed_on: str
    summary: str
    exercises: list[dict[str, Any]] = Field(default_factory=_empty_list)
    source_message_id: str = ""
    created_at: str = ""


SophisticationLevel = Literal["BEGINNER", "INTERMEDIATE", "ADVANCED"]
CoachConfigStatus = Literal["none", "generating", "ready", "failed"]


class QuestionAnswer(Record):
    """One interview step: the question asked, the user's answer and the coach creator's reply."""

    question_id: str
    question: str
    answer: str
    ai_response: str = ""
    answered_at: str = ""
    status: MessageStatus = "complete"
    client_message_id: str | None = None  # a repeat of it replays this step instead of answering again


class CreatorSession(Record):
    """A coach creator interview, one item (see `shared.store.dynamodb.creator_sessions` for its size budget).

    `version` moves on every change, so a conditional write on it detects any concurrent change;
    `answering`/`answering_until` are the claim of the one request allowed to answer right now.
    """

    user_id: str
    session_id: str
    version: int = 0
    created_at: str = ""
    updated_at: str = ""
    history: list[QuestionAnswer] = Field(default_factory=_empty_list)
    current_question_id: str | None = None
    sophistication_level: SophisticationLevel = "BEGINNER"
    is_complete: bool = False
    coach_id: str | None = None
    coach_config_status: CoachConfigStatus = "none"
    answering: str | None = None
    answering_until: int | None = None
