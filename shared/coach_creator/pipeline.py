"""One interview answer: `open_creator_turn` (the whole pre-stream phase), then its events.

The opener loads the session (404) and claims it with a conditional write: of concurrent answers to
one session exactly one proceeds, the others get a conflict (409) while they can still get a
status. Once it returns, nothing refuses any more: `start`, the streamed reply (the sophistication
marker filtered out, however the deltas split it), the answer recorded in the session, `progress`,
`complete`; on the last answer the coach build is handed off after `complete`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from shared.clock import now_iso
from shared.coach_creator.coach_builder import BuildCoachJob
from shared.coach_creator.prompts import interview_request
from shared.coach_creator.questions import Level, Question, next_question, progress, question_by_id
from shared.coach_creator.sophistication import MarkerFilter, combine, signals_level
from shared.errors import Conflict, InternalError, NotFound
from shared.events import CompleteEvent, ProgressEvent, StartEvent, TurnEvent, TurnFailed
from shared.jobs import JobQueue
from shared.models import ModelDependencies
from shared.reply_stream import ReplyOutcome, stream_reply
from shared.store.ports import CreatorSessionRepository
from shared.store.records import CreatorSession, QuestionAnswer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CreatorDependencies(ModelDependencies):
    sessions: CreatorSessionRepository
    coach_builder: JobQueue


@dataclass(frozen=True)
class CreatorAnswer:
    """The user's answer to the session's open question, authenticated and validated by the caller."""

    user_id: str
    session_id: str
    text: str


def open_creator_turn(
    deps: CreatorDependencies, answer: CreatorAnswer, deadline: float, request_id: str
) -> CreatorTurn:
    """The answer's whole pre-stream phase; each refusal raises, and a refused answer has changed nothing."""
    session = deps.sessions.get_session(answer.user_id, answer.session_id)
    if session is None:
        raise NotFound("coach creator session not found")
    if session.is_complete or session.current_question_id is None:
        raise Conflict("coach creator session is already complete")
    # The claim outlives the turn's own deadline a little, never the function: a crash frees it.
    until = int(time.time() + max(1.0, deadline - time.monotonic())) + 5
    claimed = deps.sessions.claim(session, request_id, until)
    return CreatorTurn(claimed, answer.text, deps, deadline, request_id)


class CreatorTurn:
    """An answer that may no longer be refused: its events end in `complete` or `TurnFailed`, and the
    claim is either committed or released."""

    def __init__(
        self, claimed: CreatorSession, answer: str, deps: CreatorDependencies, deadline: float, request_id: str
    ) -> None:
        self.claimed = claimed
        self.answer = answer
        self.deps = deps
        self.deadline = deadline
        self.request_id = request_id

    def events(self) -> Iterator[TurnEvent]:
        claimed, answer = self.claimed, self.answer
        question = question_by_id(claimed.current_question_id or "")
        answered = {qa.question_id for qa in claimed.history} | {question.id}
        level = combine(claimed.sophistication_level, None, signals_level(answer))
        following = next_question(answered, level)
        yield StartEvent(requestId=self.request_id)

        outcome = ReplyOutcome()
        marker = MarkerFilter()
        committed: CreatorSession | None = None
        try:
            request = interview_request(
                self.deps.model_settings.reply_model_id,
                question,
                following,
                [(qa.question, qa.answer) for qa in claimed.history],
                level,
                answer,
            )
            yield from stream_reply(
                self.deps.model, request, self.deadline, outcome, text_filter=marker, observe=self.deps.observe
            )
            level = combine(level, marker.level, None)
            if outcome.text or outcome.error is None:
                committed = self._record(claimed, question, answer, outcome, following, level)
        except GeneratorExit:
            if outcome.text:  # the client left mid-reply: its answer and what it was shown are kept
                level = combine(level, marker.level, None)
                committed = self._record(claimed, question, answer, outcome, following, level)
            raise
        finally:
            if committed is None:  # nothing was said back: the same question stays open for a retry
                self.deps.sessions.release(claimed)
        if committed is None:
            answered.discard(question.id)
            following = question
        details = progress(answered, level).contract()
        yield ProgressEvent(progressDetails=details)
        if outcome.error is not None or committed is None:
            yield TurnFailed(outcome.error or InternalError())
            return
        yield CompleteEvent(
            sessionId=committed.session_id,
            aiResponse=outcome.text,
            isComplete=committed.is_complete,
            nextQuestion=following.text if following else None,
            progressDetails=details,
            coachConfigGenerating=committed.is_complete,
        )
        if committed.is_complete:
            self._hand_off(committed)

    def _record(
        self,
        claimed: CreatorSession,
        question: Question,
        answer: str,
        outcome: ReplyOutcome,
        following: Question | None,
        level: Level,
    ) -> CreatorSession:
        """The answer counts even when the reply failed: the user's words are what the coach is built from."""
        qa = QuestionAnswer(
            question_id=question.id,
            question=question.text,
            answer=answer,
            ai_response=outcome.text,
            answered_at=now_iso(),
            status=outcome.status,
        )
        return self.deps.sessions.commit(
            claimed, qa, following.id if following else None, level, is_complete=following is None
        )

    def _hand_off(self, session: CreatorSession) -> None:
        job = BuildCoachJob(user_id=session.user_id, session_id=session.session_id)
        try:
            self.deps.coach_builder.submit(job.model_dump(by_alias=True))
        except Exception:
            logger.exception("coach build could not be handed off")
            self.deps.observe("CoachBuildHandoffFailures", 1)
