"""Coach creator sessions in the single table.

An answer is two conditional writes on the session's single item. `claim` takes the session for one
request before anything is streamed (version unchanged, not complete, no live claim), so of
concurrent answers exactly one proceeds and the others get a `WriteConflict` while they can still
get a status; `commit` (an answer) or `record_failed_attempt` (a reply that broke off) then writes
the step only if that same claim still holds, and ends it. Every write moves `version`, so a
request working from a stale read always loses cleanly instead of overwriting someone's update.

Every write survives the SDK's retries: a conditional update that was applied but whose response
was lost is sent again by botocore and would find its own condition broken by itself. So `claim`
also accepts a session already claimed by the same request, `commit` and `record_failed_attempt`
read the session back when their condition fails and return it if it holds their step, `release`
treats a claim already gone as released, and `create_session` accepts its own item.

Size: the history lives inside the item (DynamoDB's limit is 400 KB). An interview has at most 15
questions and keeps one answer and at most one failed attempt (the latest) per question; an answer
is at most 10,000 characters (CONTRACT.md) and a reply at most 500 tokens (about 2,000 characters),
so a session whose every answer is maximal holds 15 x (10,000 + 2,000 + 300) characters, about
185 KB of Latin text, and about 370 KB if every one of those answers had also failed once before.
Only maximal answers on every question, in a script of more than one byte per character or each
failing once, come near the limit; DynamoDB would then refuse the write (a 500) rather than store a
truncated history.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Any

from shared.clock import new_id, now_iso
from shared.store.dynamodb import keys
from shared.store.dynamodb.table import ConditionFailed, TableAdapter, conditional_write, dynamo_safe
from shared.store.errors import RecordNotFound, WriteConflict
from shared.store.ports import CreatorSessionRepository
from shared.store.records import CreatorSession, QuestionAnswer, SophisticationLevel

CHANGED = "coach creator session changed; reload it"
COMPLETE = "coach creator session is already complete"
BUSY = "coach creator session is already being answered"
NOT_FOUND = "coach creator session not found"
TAKEN = "coach creator session id already taken"


class DynamoCreatorSessionRepository(TableAdapter, CreatorSessionRepository):
    def __init__(
        self, table: Any | None = None, clock: Callable[[], float] = time.time, *, table_name: str | None = None
    ) -> None:
        super().__init__(table, table_name=table_name)
        self._clock = clock

    def create_session(self, user_id: str, first_question_id: str) -> CreatorSession:
        created = now_iso()
        session = CreatorSession(
            user_id=user_id,
            session_id=new_id(),
            version=0,
            created_at=created,
            updated_at=created,
            current_question_id=first_question_id,
        )
        item = {**_key(user_id, session.session_id), **session.model_dump(exclude_none=True), "type": "creator-session"}
        try:
            with conditional_write():
                self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ConditionFailed:
            # the id is new: only this very put, retried by the SDK, can have stored an item under it
            if self.get_session(user_id, session.session_id) != session:
                raise WriteConflict(TAKEN) from None
        return session

    def get_session(self, user_id: str, session_id: str) -> CreatorSession | None:
        item = self.table.get_item(Key=_key(user_id, session_id), ConsistentRead=True).get("Item")
        return CreatorSession.model_validate(item) if item else None

    def claim(self, session: CreatorSession, request_id: str, until_epoch: int) -> CreatorSession:
        if session.is_complete:
            raise WriteConflict(COMPLETE)
        try:
            return self._update(
                session,
                "SET #version = :next, #answering = :request, #answering_until = :until, #updated_at = :now",
                "((#version = :version AND #is_complete = :false "
                "AND (attribute_not_exists(#answering) OR #answering_until < :epoch)) "
                "OR #answering = :request)",  # the same claim again: the SDK retrying one that was applied
                {
                    ":next": session.version + 1,
                    ":request": request_id,
                    ":until": int(until_epoch),
                    ":now": now_iso(),
                    ":version": session.version,
                    ":false": False,
                    ":epoch": int(self._clock()),
                },
            )
        except ConditionFailed:
            raise self._conflict(session, self.get_session(session.user_id, session.session_id)) from None

    def commit(
        self,
        claimed: CreatorSession,
        qa: QuestionAnswer,
        next_question_id: str | None,
        level: SophisticationLevel,
        is_complete: bool,
    ) -> CreatorSession:
        self.check_step(claimed, qa, counts=True)
        sets = [
            "#history = list_append(if_not_exists(#history, :empty), :qa)",
            "#sophistication_level = :level",
            "#is_complete = :complete",
        ]
        values: dict[str, Any] = {":empty": [], ":qa": [qa.model_dump()], ":level": level, ":complete": is_complete}
        removes = []
        if next_question_id is None:
            removes.append("#current_question_id")
        else:
            sets.append("#current_question_id = :question")
            values[":question"] = next_question_id
        if is_complete:
            sets.append("#coach_config_status = :generating")
            values[":generating"] = "generating"
        return self._end_claim(claimed, qa, sets, removes, values)

    def record_failed_attempt(self, claimed: CreatorSession, attempt: QuestionAnswer) -> CreatorSession:
        self.check_step(claimed, attempt, counts=False)
        replaced = self.replaced_attempt(claimed, attempt)
        if replaced is None:
            sets = ["#history = list_append(if_not_exists(#history, :empty), :qa)"]
            values: dict[str, Any] = {":empty": [], ":qa": [attempt.model_dump()]}
        else:  # the index holds still: the write is conditional on the version it was read at
            sets = [f"#history[{replaced}] = :qa"]
            values = {":qa": attempt.model_dump()}
        return self._end_claim(claimed, attempt, sets, [], values)

    def release(self, claimed: CreatorSession) -> None:
        if claimed.answering is None:
            return
        # a lost condition means released already (a retried release), or someone took over an expired
        # claim: theirs now, nothing to give back
        with contextlib.suppress(ConditionFailed):
            self._update(
                claimed,
                "SET #version = :next, #updated_at = :now REMOVE #answering, #answering_until",
                "#version = :version AND #answering = :request",
                {
                    ":next": claimed.version + 1,
                    ":now": now_iso(),
                    ":version": claimed.version,
                    ":request": claimed.answering,
                },
            )

    def attach_coach(self, user_id: str, session_id: str, coach_id: str) -> None:
        update = "SET #coach_id = :coach, #coach_config_status = :ready, #updated_at = :now"
        try:
            with conditional_write():
                self.table.update_item(
                    Key=_key(user_id, session_id),
                    UpdateExpression=update,
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames=_names(update),
                    ExpressionAttributeValues={":coach": coach_id, ":ready": "ready", ":now": now_iso()},
                )
        except ConditionFailed:
            raise RecordNotFound(NOT_FOUND) from None

    def mark_coach_failed(self, user_id: str, session_id: str) -> bool:
        update = "SET #coach_config_status = :failed, #coach_failure_mark = :mark, #updated_at = :now"
        mark = new_id()  # this call's own: the SDK sends the same write again, a redelivery makes a new one
        try:
            with conditional_write():
                self.table.update_item(
                    Key=_key(user_id, session_id),
                    UpdateExpression=update,
                    ConditionExpression="attribute_exists(pk) AND NOT #coach_config_status IN (:ready, :failed)",
                    ExpressionAttributeNames=_names(update),
                    ExpressionAttributeValues={
                        ":failed": "failed",
                        ":ready": "ready",
                        ":mark": mark,
                        ":now": now_iso(),
                    },
                )
        except ConditionFailed:
            # Gone, built, or marked already: nothing to mark. Unless the SDK sent this very write again after its
            # answer was lost: then the session carries this call's mark, and this call marked it.
            item = self.table.get_item(Key=_key(user_id, session_id), ConsistentRead=True).get("Item") or {}
            return item.get("coach_failure_mark") == mark
        return True

    def _end_claim(
        self,
        claimed: CreatorSession,
        step: QuestionAnswer,
        sets: list[str],
        removes: list[str],
        values: dict[str, Any],
    ) -> CreatorSession:
        """The write that stores `step` and ends `claimed`'s claim, if that claim still holds.

        Its condition fails for a retry of itself too (the first attempt moved the version and ended
        the claim), so a failed condition is judged by the session as it is now: holding `step`, the
        write was applied and the session is returned; otherwise the claim was lost.
        """
        update = ", ".join(["#version = :next", "#updated_at = :now", *sets])
        values = {
            **values,
            ":next": claimed.version + 1,
            ":now": now_iso(),
            ":version": claimed.version,
            ":request": claimed.answering,
        }
        remove = ", ".join(["#answering", "#answering_until", *removes])
        try:
            return self._update(
                claimed, f"SET {update} REMOVE {remove}", "#version = :version AND #answering = :request", values
            )
        except ConditionFailed:
            current = self.get_session(claimed.user_id, claimed.session_id)
            if current is not None and step in current.history:
                return current
            raise self._conflict(claimed, current) from None

    def _update(self, session: CreatorSession, update: str, condition: str, values: dict[str, Any]) -> CreatorSession:
        """One conditional update that returns the new item; `ConditionFailed` when the condition fails."""
        with conditional_write():
            attributes = self.table.update_item(
                Key=_key(session.user_id, session.session_id),
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(pk) AND {condition}",
                ExpressionAttributeNames=_names(update, condition),
                ExpressionAttributeValues=dynamo_safe(values),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        return CreatorSession.model_validate(attributes)

    def _conflict(self, session: CreatorSession, current: CreatorSession | None) -> WriteConflict | RecordNotFound:
        """The error a loser gets, chosen by what the session looks like now (`current`)."""
        if current is None:
            return RecordNotFound(NOT_FOUND)
        if current.is_complete:
            return WriteConflict(COMPLETE)
        live_claim = current.answering is not None and (current.answering_until or 0) >= int(self._clock())
        if current.version == session.version and live_claim:
            return WriteConflict(BUSY)
        return WriteConflict(CHANGED)


def _key(user_id: str, session_id: str) -> dict[str, str]:
    return {"pk": keys.user_pk(user_id), "sk": keys.creator_session_sk(session_id)}


def _names(*expressions: str) -> dict[str, str]:
    """`#name` stands for the attribute `name` (some, like `version`, are reserved words)."""
    return {token: token[1:] for expression in expressions for token in re.findall(r"#\w+", expression)}
