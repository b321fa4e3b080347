"""Coach creator sessions in memory, with the DynamoDB adapter's claims, versions and conflicts.

Every write is the adapter's conditional update done under one lock, and a loser gets the error the
adapter would choose from what the session looks like now (not found, complete, busy or changed).
The clock is injectable, as the adapter's is, so claim expiry can be tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shared.clock import new_id, now_iso
from shared.store.errors import RecordNotFound, WriteConflict
from shared.store.ports import CreatorSessionRepository
from shared.store.records import CreatorSession, QuestionAnswer, SophisticationLevel

CHANGED = "coach creator session changed; reload it"
COMPLETE = "coach creator session is already complete"
BUSY = "coach creator session is already being answered"
NOT_FOUND = "coach creator session not found"

Level = SophisticationLevel


class InMemoryCreatorSessionRepository(CreatorSessionRepository):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._sessions: dict[tuple[str, str], CreatorSession] = {}

    def create_session(self, user_id: str, first_question_id: str) -> CreatorSession:
        stamp = now_iso()
        fields = {"created_at": stamp, "updated_at": stamp, "current_question_id": first_question_id}
        session = CreatorSession(user_id=user_id, session_id=new_id(), **fields)
        with self._lock:
            self._sessions[(user_id, session.session_id)] = session
        return session

    def get_session(self, user_id: str, session_id: str) -> CreatorSession | None:
        with self._lock:
            return self._sessions.get((user_id, session_id))

    def claim(self, session: CreatorSession, request_id: str, until_epoch: int) -> CreatorSession:
        if session.is_complete:
            raise WriteConflict(COMPLETE)
        with self._lock:
            current = self.get_session(session.user_id, session.session_id)
            free = current is not None and (current.answering is None or (current.answering_until or 0) < self._now())
            if current is None or current.version != session.version or current.is_complete or not free:
                raise self._conflict(session)
            return self._write(
                current, version=current.version + 1, answering=request_id, answering_until=int(until_epoch)
            )

    def commit(
        self, claimed: CreatorSession, qa: QuestionAnswer, next_question_id: str | None, level: Level, is_complete: bool
    ) -> CreatorSession:
        if claimed.answering is None:
            raise ValueError("commit needs the session that claim() returned")
        with self._lock:
            current = self._holding(claimed)
            if current is None:
                raise self._conflict(claimed)
            changes: dict[str, Any] = {
                "history": [*current.history, qa],
                "sophistication_level": level,
                "is_complete": is_complete,
                "current_question_id": next_question_id,
            }
            if is_complete:
                changes["coach_config_status"] = "generating"
            return self._write(current, version=current.version + 1, answering=None, answering_until=None, **changes)

    def release(self, claimed: CreatorSession) -> None:
        if claimed.answering is None:
            return
        with self._lock:
            current = self._holding(claimed)
            if current is not None:  # else someone took over an expired claim: theirs now
                self._write(current, version=current.version + 1, answering=None, answering_until=None)

    def attach_coach(self, user_id: str, session_id: str, coach_id: str) -> None:
        with self._lock:
            current = self.get_session(user_id, session_id)
            if current is None:
                raise RecordNotFound(NOT_FOUND)
            self._write(current, coach_id=coach_id, coach_config_status="ready")

    def mark_coach_failed(self, user_id: str, session_id: str) -> None:
        with self._lock:
            current = self.get_session(user_id, session_id)
            if current is not None and current.coach_config_status != "ready":
                self._write(current, coach_config_status="failed")

    def _now(self) -> int:
        return int(self._clock())

    def _holding(self, claimed: CreatorSession) -> CreatorSession | None:
        """The stored session if `claimed`'s claim still holds on it (same version, same request)."""
        current = self.get_session(claimed.user_id, claimed.session_id)
        if current is None or current.version != claimed.version or current.answering != claimed.answering:
            return None
        return current

    def _write(self, current: CreatorSession, **changes: Any) -> CreatorSession:
        updated = current.model_copy(update={**changes, "updated_at": now_iso()})
        self._sessions[(current.user_id, current.session_id)] = updated
        return updated

    def _conflict(self, session: CreatorSession) -> WriteConflict | RecordNotFound:
        """The error a loser gets, chosen by what the session looks like now."""
        current = self.get_session(session.user_id, session.session_id)
        if current is None:
            return RecordNotFound(NOT_FOUND)
        live_claim = current.answering is not None and (current.answering_until or 0) >= self._now()
        busy = live_claim and current.version == session.version
        return WriteConflict(COMPLETE if current.is_complete else BUSY if busy else CHANGED)
