"""Conversations and coaches: the port the domain uses, and its DynamoDB adapter."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.store import keys
from shared.store.dynamo import coach_table


class Conversation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: str
    coach_id: str
    conversation_id: str
    title: str = ""
    created_at: str = ""
    message_count: int = 0


class ConversationRepository(ABC):
    @abstractmethod
    def get_conversation(self, user_id: str, coach_id: str, conversation_id: str) -> Conversation | None: ...


class DynamoConversationRepository(ConversationRepository):
    def __init__(self, table: Any | None = None) -> None:
        self._table = table

    @property
    def table(self) -> Any:
        return self._table or coach_table()

    def get_conversation(self, user_id: str, coach_id: str, conversation_id: str) -> Conversation | None:
        item = self.table.get_item(
            Key={"pk": keys.user_pk(user_id), "sk": keys.conversation_sk(coach_id, conversation_id)},
            ConsistentRead=True,
        ).get("Item")
        return Conversation.model_validate(item) if item else None
