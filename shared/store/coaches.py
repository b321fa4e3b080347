"""Coach configurations: the port and its DynamoDB adapter."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from botocore.exceptions import ClientError

from shared.store import keys
from shared.store.dynamo import coach_table
from shared.store.records import Coach


class CoachRepository(ABC):
    @abstractmethod
    def get_coach(self, user_id: str, coach_id: str) -> Coach | None: ...

    @abstractmethod
    def list_coaches(self, user_id: str) -> list[Coach]: ...

    @abstractmethod
    def create_coach(self, coach: Coach) -> bool:
        """Stores the coach unless one with its id exists; True if this call created it."""


class DynamoCoachRepository(CoachRepository):
    def __init__(self, table: Any | None = None) -> None:
        self._table = table

    @property
    def table(self) -> Any:
        return self._table or coach_table()

    def get_coach(self, user_id: str, coach_id: str) -> Coach | None:
        key = {"pk": keys.user_pk(user_id), "sk": keys.coach_sk(coach_id)}
        item = self.table.get_item(Key=key).get("Item")
        return Coach.model_validate(item) if item else None

    def list_coaches(self, user_id: str) -> list[Coach]:
        page = self.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :coach)",
            ExpressionAttributeValues={":pk": keys.user_pk(user_id), ":coach": "COACH#"},
        )
        return [Coach.model_validate(item) for item in page.get("Items", [])]

    def create_coach(self, coach: Coach) -> bool:
        item = {"pk": keys.user_pk(coach.user_id), "sk": keys.coach_sk(coach.coach_id), "type": "coach"}
        try:
            self.table.put_item(
                Item={**item, **coach.model_dump(exclude_none=True)},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
