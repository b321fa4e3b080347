"""Coach creator sessions in memory, with the DynamoDB adapter's claims, versions and conflicts.

Every write is the adapter's conditional update done under one lock, and a loser gets the error the
adapter would choose from what the session looks like now (not found, complete, busy or changed).
A write repeated with the same arguments after it was applied (what an SDK retry does to the
adapter) returns what the first did, as the adapter's does. The clock is injectable, as the
adapter's is, so claim expiry can be tested without waiting.
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
TAKEN = "coach creator session id already taken"

Level = SophisticationLevel


class InMemoryCreatorSessionRepository(CreatorSessionRepository):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._sessions: dict[tuple[str, str], CreatorSession] = {}
        self._failure_marks: dict[tuple[str, str], str] = {}  # the DynamoDB item's `coach_failure_mark`

    def create_session(self, user_id: str, first_question_id: str) -> CreatorSession:
        stamp = now_iso()
        fields = {"created_at": stamp, "updated_at": stamp, "current_question_id": first_question_id}
        session = CreatorSession(user_id=user_id, session_id=new_id(), **fields)
        with self._lock:
            stored = self._sessions.setdefault((user_id, session.session_id), session)
        if stored != session:
            raise WriteConflict(TAKEN)
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
            claimable = current is not None and current.version == session.version and not current.is_complete
            again = current is not None and current.answering == request_id  # a retry of an applied claim
            if current is None or not (again or (claimable and free)):
                raise self._conflict(session)
            return self._write(
                current, version=session.version + 1, answering=request_id, answering_until=int(until_epoch)
            )

    def commit(
        self, claimed: CreatorSession, qa: QuestionAnswer, next_question_id: str | None, level: Level, is_complete: bool
    ) -> CreatorSession:
        self.check_step(claimed, qa, counts=True)
        changes: dict[str, Any] = {
            "sophistication_level": level,
            "is_complete": is_complete,
            "current_question_id": next_question_id,
        }
        if is_complete:
            changes["coach_config_status"] = "generating"
        return self._end_claim(claimed, qa, lambda history: [*history, qa], changes)

    def record_failed_attempt(self, claimed: CreatorSession, attempt: QuestionAnswer) -> CreatorSession:
        self.check_step(claimed, attempt, counts=False)
        replaced = self.replaced_attempt(claimed, attempt)

        def placed(history: list[QuestionAnswer]) -> list[QuestionAnswer]:
            return [*history, attempt] if replaced is None else [*history[:replaced], attempt, *history[replaced + 1 :]]

        return self._end_claim(claimed, attempt, placed, {})

    def release(self, claimed: CreatorSession) -> None:
        if claimed.answering is None:
            return
        with self._lock:
            current = self._holding(claimed)
            if current is not None:  # else released already, or someone took over an expired claim
                self._write(current, version=current.version + 1, answering=None, answering_until=None)

    def attach_coach(self, user_id: str, session_id: str, coach_id: str) -> None:
        with self._lock:
            current = self.get_session(user_id, session_id)
            if current is None:
                raise RecordNotFound(NOT_FOUND)
            self._write(current, coach_id=coach_id, coach_config_status="ready")

    def mark_coach_failed(self, user_id: str, session_id: str) -> bool:
        mark = new_id()  # as the DynamoDB adapter: a write sent again carries the same mark
        with self._lock:
            current = self.get_session(user_id, session_id)
            if current is None or current.coach_config_status == "ready":
                return False
            if current.coach_config_status == "failed":
                return self._failure_marks.get((user_id, session_id)) == mark
            self._write(current, coach_config_status="failed")
            self._failure_marks[(user_id, session_id)] = mark
            return True

    def _now(self) -> int:
        return int(self._clock())

    def _holding(self, claimed: CreatorSession) -> CreatorSession | None:
        """The stored session if `claimed`'s claim still holds on it (same version, same request)."""
        current = self.get_session(claimed.user_id, claimed.session_id)
        if current is None or current.version != claimed.version or current.answering != claimed.answering:
            return None
        return current

    def _end_claim(
        self,
        claimed: CreatorSession,
        step: QuestionAnswer,
        placed: Callable[[list[QuestionAnswer]], list[QuestionAnswer]],
        changes: dict[str, Any],
    ) -> CreatorSession:
        """Stores `step` (where `placed` puts it) with `changes` and ends the claim, if it still holds;
        a session already holding `step` is returned as it is (the write was applied before)."""
        with self._lock:
            current = self._holding(claimed)
            if current is not None:
                history = placed(current.history)
                ended = {"version": current.version + 1, "answering": None, "answering_until": None}
                return self._write(current, history=history, **ended, **changes)
            stored = self.get_session(claimed.user_id, claimed.session_id)
            if stored is not None and step in stored.history:
                return stored
            raise self._conflict(claimed)

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
