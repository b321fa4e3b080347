"""Memories and logged workouts in the single table.

Ids are derived from the message that produced them, so a retried post-turn job writes the same
item again instead of a duplicate.
"""

from __future__ import annotations

from typing import Any

from shared.store.dynamodb import keys
from shared.store.dynamodb.table import TableAdapter, dynamo_safe
from shared.store.ports import MemoryRepository, WorkoutRepository
from shared.store.records import Memory, Workout


class _NewestFirst(TableAdapter):
    def _newest(self, user_id: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        page = self.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": keys.user_pk(user_id), ":prefix": prefix},
            ScanIndexForward=False,
            Limit=limit,
        )
        return page.get("Items", [])


class DynamoMemoryRepository(_NewestFirst, MemoryRepository):
    def recent_memories(self, user_id: str, coach_id: str, limit: int = 20) -> list[Memory]:
        return [Memory.model_validate(i) for i in self._newest(user_id, keys.memory_prefix(coach_id), limit)]

    def save_memory(self, user_id: str, memory: Memory) -> None:
        sk = keys.memory_sk(memory.coach_id, memory.created_at, memory.memory_id)
        key = {"pk": keys.user_pk(user_id), "sk": sk}
        self.table.put_item(Item={**key, "type": "memory", **memory.model_dump()})


class DynamoWorkoutRepository(_NewestFirst, WorkoutRepository):
    def recent_workouts(self, user_id: str, limit: int = 5) -> list[Workout]:
        return [Workout.model_validate(i) for i in self._newest(user_id, "WORKOUT#", limit)]

    def save_workout(self, user_id: str, workout: Workout) -> None:
        key = {"pk": keys.user_pk(user_id), "sk": keys.workout_sk(workout.performed_on, workout.workout_id)}
        self.table.put_item(Item=dynamo_safe({**key, "type": "workout", **workout.model_dump()}))
