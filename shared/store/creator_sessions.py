"""Coach creator sessions: the port the interview uses, and its DynamoDB adapter.

An answer is two conditional writes on the session's single item. `claim` takes the session for one
request before anything is streamed (version unchanged, not complete, no live claim), so of
concurrent answers exactly one proceeds and the others get a 409 while they can still get a status;
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
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from shared.errors import Conflict, NotFound
from shared.store import keys
from shared.store.conversations import now_iso
from shared.store.dynamo import coach_table, dynamo_safe
from shared.store.records import CreatorSession, QuestionAnswer, SophisticationLevel

CHANGED = "coach creator session changed; reload it"
COMPLETE = "coach creator session is already complete"
BUSY = "coach creator session is already being answered"


class CreatorSessionRepository(ABC):
    @abstractmethod
    def create_session(self, user_id: str, first_question_id: str) -> CreatorSession: ...

    @abstractmethod
    def get_session(self, user_id: str, session_id: str) -> CreatorSession | None:
        """A consistent read: what the next conditional write will be checked against."""

    @abstractmethod
    def claim(self, session: CreatorSession, request_id: str, until_epoch: int) -> CreatorSession:
        """Takes the session for `request_id` until `until_epoch`; `Conflict` if it changed or is complete."""

    @abstractmethod
    def commit(
        self,
        claimed: CreatorSession,
        qa: QuestionAnswer,
        next_question_id: str | None,
        level: SophisticationLevel,
        is_complete: bool,
    ) -> CreatorSession:
        """Records the answer and ends the claim; `Conflict` if the claim was lost meanwhile."""

    @abstractmethod
    def release(self, claimed: CreatorSession) -> None:
        """Ends the claim without recording anything; a claim already lost is left alone."""

    @abstractmethod
    def attach_coach(self, user_id: str, session_id: str, coach_id: str) -> None:
        """The coach built from the session exists: status `ready` (idempotent)."""

    @abstractmethod
    def mark_coach_failed(self, user_id: str, session_id: str) -> None:
        """Building the coach gave up: status `failed`, unless a coach is already attached."""


class DynamoCreatorSessionRepository(CreatorSessionRepository):
    def __init__(self, table: Any | None = None, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._clock = clock

    @property
    def table(self) -> Any:
        return self._table or coach_table()

    def create_session(self, user_id: str, first_question_id: str) -> CreatorSession:
        created = now_iso()
        session = CreatorSession(
            user_id=user_id,
            session_id=uuid.uuid4().hex,
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
            raise Conflict(COMPLETE)
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
        except _LostRace:
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
        except _LostRace:
            raise self._conflict(claimed) from None

    def release(self, claimed: CreatorSession) -> None:
        if claimed.answering is None:
            return
        # a lost condition means someone took over an expired claim: theirs now, nothing to give back
        with contextlib.suppress(_LostRace):
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
            self.table.update_item(
                Key=_key(user_id, session_id),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=_names(update),
                ExpressionAttributeValues={":coach": coach_id, ":ready": "ready", ":now": now_iso()},
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            raise NotFound("coach creator session not found") from None

    def mark_coach_failed(self, user_id: str, session_id: str) -> None:
        update = "SET #coach_config_status = :failed, #updated_at = :now"
        try:
            self.table.update_item(
                Key=_key(user_id, session_id),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND #coach_config_status <> :ready",
                ExpressionAttributeNames=_names(update),
                ExpressionAttributeValues={":failed": "failed", ":ready": "ready", ":now": now_iso()},
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise  # otherwise gone, or a coach is attached already: nothing to mark

    def _update(self, session: CreatorSession, update: str, condition: str, values: dict[str, Any]) -> CreatorSession:
        """One conditional update that returns the new item; `_LostRace` when the condition fails."""
        try:
            attributes = self.table.update_item(
                Key=_key(session.user_id, session.session_id),
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(pk) AND {condition}",
                ExpressionAttributeNames=_names(update, condition),
                ExpressionAttributeValues=dynamo_safe(values),
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise _LostRace from None
            raise
        return CreatorSession.model_validate(attributes)

    def _conflict(self, session: CreatorSession) -> Conflict | NotFound:
        """The error a loser gets, chosen by what the session looks like now."""
        current = self.get_session(session.user_id, session.session_id)
        if current is None:
            return NotFound("coach creator session not found")
        if current.is_complete:
            return Conflict(COMPLETE)
        live_claim = current.answering is not None and (current.answering_until or 0) >= int(self._clock())
        if current.version == session.version and live_claim:
            return Conflict(BUSY)
        return Conflict(CHANGED)


class _LostRace(Exception):
    """A conditional write's condition did not hold."""


def _key(user_id: str, session_id: str) -> dict[str, str]:
    return {"pk": keys.user_pk(user_id), "sk": keys.creator_session_sk(session_id)}


def _names(*expressions: str) -> dict[str, str]:
    """`#name` stands for the attribute `name` (some, like `version`, are reserved words)."""
    return {token: token[1:] for expression in expressions for token in re.findall(r"#\w+", expression)}


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
