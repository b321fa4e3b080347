"""The stores the flows talk to, as ports: abstract classes over the records, no SDK in sight.

Adapters live beside them (`shared.store.dynamodb`, `shared.store.s3_images`); the composition
roots pick one. Importing this module imports no botocore, so domain code and its tests stay light.
Failures a caller must handle are `shared.store.errors` (or `shared.errors`) classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.models import Image
from shared.store.records import (
    ChatMessage,
    Coach,
    Conversation,
    CreatorSession,
    Memory,
    QuestionAnswer,
    SophisticationLevel,
    Workout,
)


@dataclass(frozen=True)
class TurnStart:
    """A turn that may proceed: its stored user message, or the stored reply to replay.

    `attempt` counts the attempts at answering this message (a retry of a failed or abandoned turn
    is attempt 2, ...); `position` is where the turn's messages sort in the conversation, opaque to
    the flow and handed back to `finish_turn` / `fail_turn`.
    """

    user_message: ChatMessage
    replay: ChatMessage | None = None
    attempt: int = 1
    position: str = ""
    supersedes: str = ""  # where an earlier attempt's partial reply is, if it left one


class CoachRepository(ABC):
    @abstractmethod
    def get_coach(self, user_id: str, coach_id: str) -> Coach | None: ...

    @abstractmethod
    def list_coaches(self, user_id: str) -> list[Coach]: ...

    @abstractmethod
    def create_coach(self, coach: Coach) -> bool:
        """Stores the coach unless one with its id exists; True if this call created it."""


class ConversationRepository(ABC):
    """A turn is `begin_turn` (the user's message, before any model call) then `finish_turn` or `fail_turn`.

    With a `clientMessageId`, `begin_turn` answers a repeat of a finished turn with its stored reply
    (`TurnStart.replay`), refuses a repeat of a turn still in flight (`WriteConflict`) or one with
    different content (`IdempotencyMismatch`, judged by `digest`), and lets a retry take over a
    failed turn, or one whose process died (its in-progress mark expired at `until_epoch`).
    Every write is idempotent under the SDK's retries. A turn's messages sort together, in the
    order the turns began, however turns overlap.
    """

    @abstractmethod
    def create_conversation(self, user_id: str, coach_id: str, title: str) -> Conversation: ...

    @abstractmethod
    def get_conversation(self, user_id: str, coach_id: str, conversation_id: str) -> Conversation | None: ...

    @abstractmethod
    def list_messages(self, user_id: str, conversation_id: str, limit: int | None = None) -> list[ChatMessage]:
        """Oldest first; with `limit`, the most recent `limit` messages (still oldest first)."""

    @abstractmethod
    def begin_turn(
        self, conversation: Conversation, message: ChatMessage, *, digest: str, until_epoch: int
    ) -> TurnStart:
        """`RecordNotFound` if the conversation is gone, `WriteConflict` if the same message is in flight."""

    @abstractmethod
    def finish_turn(
        self,
        conversation: Conversation,
        turn: TurnStart,
        reply: ChatMessage,
        post_turn_job: Mapping[str, Any] | None = None,
    ) -> None:
        """Stores the reply (whole or partial), and the post-turn job in the same write (an outbox item).

        A complete reply completes the turn (a repeat replays it); a partial one fails it (a retry may
        answer again, and its reply supersedes this one). An earlier attempt's partial reply is
        marked superseded.
        """

    @abstractmethod
    def fail_turn(self, conversation: Conversation, turn: TurnStart) -> None:
        """No reply text at all: a retry with the same `clientMessageId` may answer again."""

    @abstractmethod
    def save_summary(self, conversation: Conversation, summary: str, through: int) -> None:
        """Only ever moves forward: a late retry of an older summary cannot overwrite a newer one."""


class CreatorSessionRepository(ABC):
    """An answer is `claim` (before anything is streamed) then `commit`, `record_failed_attempt` or `release`.

    Of concurrent claims on one session exactly one wins; the others get `WriteConflict`. A claim holds
    until its `until_epoch` (inclusive); after that the next claim takes it over. The history keeps
    answers (status `complete`: each closes its question and opens the next) and failed attempts (a
    reply that broke off after some text: kept, never counted, its question stays open), at most one
    failed attempt per question. Every write may be sent again with the same arguments after it was
    applied (the SDK retrying a write whose response was lost): it then returns what the first did,
    never a conflict.
    """

    @abstractmethod
    def create_session(self, user_id: str, first_question_id: str) -> CreatorSession: ...

    @abstractmethod
    def get_session(self, user_id: str, session_id: str) -> CreatorSession | None:
        """A consistent read: what the next conditional write will be checked against."""

    @abstractmethod
    def claim(self, session: CreatorSession, request_id: str, until_epoch: int) -> CreatorSession:
        """Takes the session for `request_id` until `until_epoch`; `WriteConflict` if it changed or is complete."""

    @abstractmethod
    def commit(
        self,
        claimed: CreatorSession,
        qa: QuestionAnswer,
        next_question_id: str | None,
        level: SophisticationLevel,
        is_complete: bool,
    ) -> CreatorSession:
        """Records the answer and ends the claim; `WriteConflict` if the claim was lost meanwhile."""

    @abstractmethod
    def record_failed_attempt(self, claimed: CreatorSession, attempt: QuestionAnswer) -> CreatorSession:
        """Keeps a failed attempt at the open question and ends the claim; the question, the level and
        completeness stay as they are. It replaces the failed attempt before it at the same question
        (`replaced_attempt`). `WriteConflict` if the claim was lost meanwhile."""

    @abstractmethod
    def release(self, claimed: CreatorSession) -> None:
        """Ends the claim without recording anything; a claim already lost is left alone."""

    @abstractmethod
    def attach_coach(self, user_id: str, session_id: str, coach_id: str) -> None:
        """The coach built from the session exists: status `ready` (idempotent); `RecordNotFound` if gone."""

    @abstractmethod
    def mark_coach_failed(self, user_id: str, session_id: str) -> bool:
        """Building the coach gave up: status `failed`, unless a coach is already attached. True only for
        the call that marked it: a session already failed, built or gone is left as it is (False), so a
        failure delivered twice is marked and counted once."""

    @staticmethod
    def check_step(claimed: CreatorSession, step: QuestionAnswer, *, counts: bool) -> None:
        """`ValueError` unless `claimed` holds a claim and `step` is an answer (`counts`) or a failed attempt."""
        if claimed.answering is None:
            raise ValueError("recording a step needs the session that claim() returned")
        if (step.status == "complete") != counts:
            kind = "an answer" if counts else "a failed attempt"
            raise ValueError(f"a step with status {step.status!r} is not {kind}")

    @staticmethod
    def replaced_attempt(claimed: CreatorSession, attempt: QuestionAnswer) -> int | None:
        """The history index a new failed attempt takes: the last step's, when that is a failed attempt at
        the same question (so a question keeps one, the latest), else None (it is appended)."""
        last = claimed.history[-1] if claimed.history else None
        if last is not None and last.status != "complete" and last.question_id == attempt.question_id:
            return len(claimed.history) - 1
        return None


class MemoryRepository(ABC):
    @abstractmethod
    def recent_memories(self, user_id: str, coach_id: str, limit: int = 20) -> list[Memory]: ...

    @abstractmethod
    def save_memory(self, user_id: str, memory: Memory) -> None:
        """Idempotent: the same memory (same id) saved twice is one item."""


class WorkoutRepository(ABC):
    @abstractmethod
    def recent_workouts(self, user_id: str, limit: int = 5) -> list[Workout]: ...

    @abstractmethod
    def save_workout(self, user_id: str, workout: Workout) -> None:
        """Idempotent: the same workout (same id) saved twice is one item."""


class RequestLimiter(ABC):
    """One per-user budget: at most `limit` requests in any window of its length, however they fall."""

    @abstractmethod
    def hit(self, user_id: str) -> None:
        """Counts one request; `shared.errors.RateLimited` (changing nothing) when over the limit, with the
        seconds until a request would be admitted."""


# The budgets: what changes state or spends the model (turns, streamed or not, and REST writes) shares one;
# REST reads, cheap and frequent, have their own, higher one.
WRITES_BUDGET = "writes"
READS_BUDGET = "reads"
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class RequestLimits:
    """The REST API's two budgets, picked by the request's method."""

    writes: RequestLimiter
    reads: RequestLimiter

    def for_method(self, method: str) -> RequestLimiter:
        return self.reads if method.upper() in READ_METHODS else self.writes


class ImageSource(ABC):
    @abstractmethod
    def load(self, user_id: str, keys: tuple[str, ...]) -> tuple[Image, ...]:
        """The images, in order; `Forbidden` outside the user's uploads, `InvalidRequest` if not an image."""
