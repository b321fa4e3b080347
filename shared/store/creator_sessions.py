"""Coach creator sessions: the port the interview uses, and its DynamoDB adapter."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.store import keys
from shared.store.dynamo import coach_table


class CreatorSession(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: str
    session_id: str
    version: int = 0
    is_complete: bool = False


class CreatorSessionRepository(ABC):
    @abstractmethod
    def get_session(self, user_id: str, session_id: str) -> CreatorSession | None: ...


class DynamoCreatorSessionRepository(CreatorSessionRepository):
    def __init__(self, table: Any | None = None) -> None:
        self._table = table

    @property
    def table(self) -> Any:
        return self._table or coach_table()

    def get_session(self, user_id: str, session_id: str) -> CreatorSession | None:
        key = {"pk": keys.user_pk(user_id), "sk": keys.creator_session_sk(session_id)}
        item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        return CreatorSession.model_validate(item) if item else None
