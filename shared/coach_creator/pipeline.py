"""One interview answer: `open_creator_turn` (the whole pre-stream phase), then its events.

The opener loads the session (404). A `clientMessageId` the history already holds is settled there:
with the same text a recorded answer is replayed (`ReplayedAnswer`: its step told again, no model
call, no write), with another text the request is refused (409 IDEMPOTENCY_MISMATCH); an id that
only a failed attempt holds is a retry, and answers again while its question is still open.
Otherwise the opener claims the session with a conditional write: of concurrent answers to one
session exactly one proceeds, the others (a repeat still in flight among them) get a conflict (409)
while they can still get a status.

Once it returns, nothing refuses any more: `start`, the streamed reply (the sophistication marker
filtered out, however the deltas split it), the step recorded, `progress`, then `complete` or the
failure. Only a reply that completed makes an answer: it is committed and the next question opens
(on the last answer the coach build is handed off after `complete`). A reply that broke off after
some text (interrupted, timed out, or the client left) is kept as a failed attempt, which counts for
nothing: the same question stays open for the retry, whose answer supersedes it. A reply without
any text records nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.clock import now_iso
from shared.coach_creator.build_job import BuildCoachJob
from shared.coach_creator.history import answered_ids, answers, is_answer, result_of, step_with_id
from shared.coach_creator.prompts import interview_request
from shared.coach_creator.questions import Question, next_question, progress, question_by_id
from shared.coach_creator.sophistication import MarkerFilter, combine, signals_level
from shared.deadline import claim_until
from shared.errors import Conflict, IdempotencyMismatch, NotFound
from shared.events import ChunkEvent, CompleteEvent, ProgressEvent, StartEvent, TurnEvent, TurnFailed
from shared.jobs import JobQueue
from shared.models import ModelDependencies
from shared.reply_stream import ReplyOutcome, stream_reply
from shared.store.ports import CreatorSessionRepository
from shared.store.records import CreatorSession, MessageStatus, QuestionAnswer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CreatorDependencies(ModelDependencies):
    sessions: CreatorSessionRepository
    coach_builder: JobQueue
    # How long after the turn's deadline its claim lasts: the writes a turn still makes after its
    # deadline (sized by the function's deadline margin), plus slack for clocks (`claim_until`).
    claim_margin_seconds: float = 30.0
    clock: Callable[[], float] = field(default=time.time)  # epoch seconds, as claims' `until` counts


@dataclass(frozen=True)
class CreatorAnswer:
    """The user's answer to the session's open question, authenticated and validated by the caller."""

    user_id: str
    session_id: str
    text: str
    client_message_id: str | None = None


def open_creator_turn(
    deps: CreatorDependencies,
    answer: CreatorAnswer,
    deadline: float,
    request_id: str,
    admit: Callable[[], None] = lambda: None,
) -> CreatorTurn | ReplayedAnswer:
    """The answer's whole pre-stream phase; each refusal raises, and a refused answer has changed nothing.

    `admit` gives the verdict of checks the caller runs meanwhile (the rate limit), asked after the read.
    """
    session = deps.sessions.get_session(answer.user_id, answer.session_id)
    admit()
    if session is None:
        raise NotFound("coach creator session not found")
    if answer.client_message_id is not None:
        index = step_with_id(session, answer.client_message_id)
        if index is not None:
            recorded = session.history[index]
            if recorded.answer != answer.text:
                raise IdempotencyMismatch()
            if is_answer(recorded):
                return ReplayedAnswer(session, index, request_id)
            if recorded.question_id != session.current_question_id:
                raise Conflict("the question this answer was sent for has been answered since")
    if session.is_complete or session.current_question_id is None:
        raise Conflict("coach creator session is already complete")
    until = claim_until(deps.clock(), deadline - time.monotonic(), deps.claim_margin_seconds)
    claimed = deps.sessions.claim(session, request_id, until)
    return CreatorTurn(claimed, answer, deps, deadline, request_id)


@dataclass
class CreatorTurn:
    """An answer that may no longer be refused: its events end in `complete` or `TurnFailed`, and the
    claim is ended by the answer, a failed attempt, or a release."""

    claimed: CreatorSession
    answer: CreatorAnswer
    deps: CreatorDependencies
    deadline: float
    request_id: str

    def events(self) -> Iterator[TurnEvent]:
        claimed, text = self.claimed, self.answer.text
        question = question_by_id(claimed.current_question_id or "")
        answered = answered_ids(claimed)
        level = combine(claimed.sophistication_level, None, signals_level(text))
        following = next_question(answered | {question.id}, level)

        outcome = ReplyOutcome()
        marker = MarkerFilter()
        try:
            yield StartEvent(requestId=self.request_id)
            request = interview_request(
                self.deps.model_settings.reply_model_id,
                question,
                following,
                [(qa.question, qa.answer) for qa in answers(claimed)],
                level,
                text,
            )
            yield from stream_reply(
                self.deps.model, request, self.deadline, outcome, text_filter=marker, observe=self.deps.observe
            )
        except BaseException:  # the client left mid-reply (GeneratorExit), or a failure of this code
            try:
                self._record_failure(question, outcome)
            except Exception:
                logger.exception("the failed answer could not be stored")
            raise
        if outcome.error is not None:
            self._record_failure(question, outcome)
            yield ProgressEvent(progressDetails=progress(answered, claimed.sophistication_level).contract())
            yield TurnFailed(outcome.error)
            return

        level = combine(level, marker.level, None)
        step = self._step(question, outcome, "complete")
        with self._given_back_if_it_fails():
            stored = self.deps.sessions.commit(
                claimed, step, following.id if following else None, level, is_complete=following is None
            )
        details = progress(answered | {question.id}, level).contract()
        yield ProgressEvent(progressDetails=details)
        yield _complete(stored.session_id, outcome.text, following, details, stored.is_complete)
        if stored.is_complete:
            self._hand_off(stored)

    def _record_failure(self, question: Question, outcome: ReplyOutcome) -> None:
        """Ends the claim of an answer whose reply failed: the failed attempt kept when the reply broke
        off after some text (its status says how; an unexpected failure counts as interrupted), else
        nothing recorded. Either way the question stays open."""
        if not outcome.text:
            self.deps.sessions.release(self.claimed)
            return
        status = outcome.status if outcome.status != "complete" else "interrupted"
        with self._given_back_if_it_fails():
            self.deps.sessions.record_failed_attempt(self.claimed, self._step(question, outcome, status))

    def _step(self, question: Question, outcome: ReplyOutcome, status: MessageStatus) -> QuestionAnswer:
        return QuestionAnswer(
            question_id=question.id,
            question=question.text,
            answer=self.answer.text,
            ai_response=outcome.text,
            answered_at=now_iso(),
            status=status,
            client_message_id=self.answer.client_message_id,
        )

    @contextlib.contextmanager
    def _given_back_if_it_fails(self) -> Iterator[None]:
        """A write that fails gives the claim back, so the retry is not refused until the claim lapses."""
        try:
            yield
        except Exception:
            with contextlib.suppress(Exception):
                self.deps.sessions.release(self.claimed)
            raise

    def _hand_off(self, session: CreatorSession) -> None:
        job = BuildCoachJob(user_id=session.user_id, session_id=session.session_id)
        try:
            self.deps.coach_builder.submit(job.model_dump(by_alias=True))
        except Exception:
            logger.exception("coach build could not be handed off")
            self.deps.observe("CoachBuildHandoffFailures", 1)


@dataclass
class ReplayedAnswer:
    """A repeat of an answer already recorded (same `clientMessageId`, same text): its step told again
    from the history, with the `complete` it had the first time; no model call, no claim, no write."""

    session: CreatorSession
    index: int
    request_id: str

    def events(self) -> Iterator[TurnEvent]:
        step = self.session.history[self.index]
        result = result_of(self.session, self.index)
        details = progress(result.answered, result.level).contract()
        yield StartEvent(requestId=self.request_id)
        if step.ai_response:
            yield ChunkEvent(content=step.ai_response)
        yield ProgressEvent(progressDetails=details)
        yield _complete(self.session.session_id, step.ai_response, result.following, details, result.is_complete)


def _complete(
    session_id: str, reply: str, following: Question | None, details: dict[str, Any], is_complete: bool
) -> CompleteEvent:
    return CompleteEvent(
        sessionId=session_id,
        aiResponse=reply,
        isComplete=is_complete,
        nextQuestion=following.text if following else None,
        progressDetails=details,
        coachConfigGenerating=is_complete,
    )
