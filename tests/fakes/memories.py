"""Memories and logged workouts in memory, keyed and ordered as the adapter's sort keys are.

The key holds the date as well as the id (as the adapter's does), so saving the same item twice is
one item, and "most recent" means the greatest key, newest first.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from shared.store.ports import MemoryRepository, WorkoutRepository
from shared.store.records import Memory, Workout

Item = TypeVar("Item", Memory, Workout)


class _NewestFirst(Generic[Item]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], Item] = {}

    def _put(self, user_id: str, sort_key: str, item: Item) -> None:
        with self._lock:
            self._items[(user_id, sort_key)] = item

    def _newest(self, user_id: str, prefix: str, limit: int) -> list[Item]:
        with self._lock:
            found = sorted((k, v) for k, v in self._items.items() if k[0] == user_id and k[1].startswith(prefix))
        return [item for _, item in reversed(found)][:limit]


class InMemoryMemoryRepository(_NewestFirst[Memory], MemoryRepository):
    def recent_memories(self, user_id: str, coach_id: str, limit: int = 20) -> list[Memory]:
        return self._newest(user_id, f"MEMORY#{coach_id}#", limit)

    def save_memory(self, user_id: str, memory: Memory) -> None:
        self._put(user_id, f"MEMORY#{memory.coach_id}#{memory.created_at}#{memory.memory_id}", memory)


class InMemoryWorkoutRepository(_NewestFirst[Workout], WorkoutRepository):
    def recent_workouts(self, user_id: str, limit: int = 5) -> list[Workout]:
        return self._newest(user_id, "WORKOUT#", limit)

    def save_workout(self, user_id: str, workout: Workout) -> None:
        self._put(user_id, f"WORKOUT#{workout.performed_on}#{workout.workout_id}", workout)
