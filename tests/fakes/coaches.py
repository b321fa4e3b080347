"""Coach configurations in memory: listed in the adapter's key order, created at most once."""

from __future__ import annotations

import threading

from shared.store.ports import CoachRepository
from shared.store.records import Coach


class InMemoryCoachRepository(CoachRepository):
    def __init__(self, *coaches: Coach) -> None:
        self._lock = threading.Lock()
        self._coaches: dict[tuple[str, str], Coach] = {(c.user_id, c.coach_id): c for c in coaches}

    def get_coach(self, user_id: str, coach_id: str) -> Coach | None:
        with self._lock:
            return self._coaches.get((user_id, coach_id))

    def list_coaches(self, user_id: str) -> list[Coach]:
        with self._lock:
            return [coach for (user, _), coach in sorted(self._coaches.items()) if user == user_id]

    def create_coach(self, coach: Coach) -> bool:
        key = (coach.user_id, coach.coach_id)
        with self._lock:
            if key in self._coaches:
                return False
            self._coaches[key] = coach
            return True
