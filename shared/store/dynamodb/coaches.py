"""Coach configurations in the single table."""

from __future__ import annotations

from shared.store.dynamodb import keys
from shared.store.dynamodb.table import ConditionFailed, TableAdapter, conditional_write
from shared.store.ports import CoachRepository
from shared.store.records import Coach


class DynamoCoachRepository(TableAdapter, CoachRepository):
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
            with conditional_write():
                self.table.put_item(
                    Item={**item, **coach.model_dump(exclude_none=True)},
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ConditionFailed:
            return False
        return True
