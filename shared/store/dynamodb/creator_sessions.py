"""Coach creator sessions in the single table.

An answer is two conditional writes on the session's single item. `claim` takes the session for one
request before anything is streamed (version unchanged, not complete, no live claim), so of
concurrent answers exactly one proceeds and the others get a `WriteConflict` while they can still
get a status;
`commit` records the answer only if that same claim still holds. Every write moves `version`, so a
request working from a stale read always loses cleanly instead of overwriting someone's update.

Size: the history lives inside the item (DynamoDB's limit is 400 KB). An interview has at most 15
questions; an answer is at most 10,000 characters (CONTRACT.md) and a reply a few thousand, so the
item stays near 15 x (10,000 + 4,000 + 300) characters, about 215 KB of Latin text. Only answers
of maximal length in a three-byte script on every question could approach the limit; DynamoDB
would then refuse the commit (a 500) rather than store a truncated history.
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
        self.table.put_item(
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
        )
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
                "#version = :version AND #is_complete = :false "
                "AND (attribute_not_exists(#answering) OR #answering_until < :epoch)",
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
            raise self._conflict(session) from None

    def commit(
        self,
        claimed: CreatorSession,
        qa: QuestionAnswer,
        next_question_id: str | None,
        level: SophisticationLevel,
        is_complete: bool,
    ) -> CreatorSession:
        if claimed.answering is None:
            raise ValueError("commit needs the session that claim() returned")
        sets = [
            "#version = :next",
            "#history = list_append(if_not_exists(#history, :empty), :qa)",
            "#sophistication_level = :level",
            "#is_complete = :complete",
            "#updated_at = :now",
        ]
        values: dict[str, Any] = {
            ":next": claimed.version + 1,
            ":empty": [],
            ":qa": [qa.model_dump()],
            ":level": level,
            ":complete": is_complete,
            ":now": now_iso(),
            ":version": claimed.version,
            ":request": claimed.answering,
        }
        removes = ["#answering", "#answering_until"]
        if next_question_id is None:
            removes.append("#current_question_id")
        else:
            sets.append("#current_question_id = :question")
            values[":question"] = next_question_id
        if is_complete:
            sets.append("#coach_config_status = :generating")
            values[":generating"] = "generating"
        try:
            return self._update(
                claimed,
                f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                "#version = :version AND #answering = :request",
                values,
            )
        except ConditionFailed:
            raise self._conflict(claimed) from None

    def release(self, claimed: CreatorSession) -> None:
        if claimed.answering is None:
            return
        # a lost condition means someone took over an expired claim: theirs now, nothing to give back
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

    def mark_coach_failed(self, user_id: str, session_id: str) -> None:
        update = "SET #coach_config_status = :failed, #updated_at = :now"
        # a failed condition means gone, or a coach is attached already: nothing to mark
        with contextlib.suppress(ConditionFailed), conditional_write():
            self.table.update_item(
                Key=_key(user_id, session_id),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND #coach_config_status <> :ready",
                ExpressionAttributeNames=_names(update),
                ExpressionAttributeValues={":failed": "failed", ":ready": "ready", ":now": now_iso()},
            )

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

    def _conflict(self, session: CreatorSession) -> WriteConflict | RecordNotFound:
        """The error a loser gets, chosen by what the session looks like now."""
        current = self.get_session(session.user_id, session.session_id)
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
