"""One interview answer as one generator of events, for the streaming and the fallback handler.

Before the first event the session is claimed with a conditional write: of concurrent answers to
one session exactly one proceeds, the others get 409 while they can still get a status. Then
`start`, the streamed reply (the sophistication marker filtered out, however the deltas split it),
the answer recorded in the session, `progress`, `complete`; on the last answer the coach build is
handed off after `complete`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from shared.coach_creator.coach_builder import BuildCoachJob
from shared.coach_creator.prompts import interview_request
from shared.coach_creator.questions import Level, Question, next_question, progress, question_by_id
from shared.coach_creator.sophistication import MarkerFilter, combine, signals_level
from shared.errors import Conflict, InternalError
from shared.events import CompleteEvent, ProgressEvent, StartEvent, TurnEvent, TurnFailed
from shared.http.routes import CreatorSessionStreamPath
from shared.http.stream_request import StreamRequest
from shared.jobs import JobQueue
from shared.models import ModelPort, ModelSettings
from shared.reply_stream import ReplyOutcome, stream_reply
from shared.store.conversations import now_iso
from shared.store.creator_sessions import CreatorSessionRepository
from shared.store.records import CreatorSession, QuestionAnswer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatorDependencies:
    model: ModelPort
    model_settings: ModelSettings
    sessions: CreatorSessionRepository
    coach_builder: JobQueue
    observe: Callable[[str, float], None] = field(default=lambda name, value: None)


class CreatorTurn:
    def __init__(
        self,
        request: StreamRequest[CreatorSessionStreamPath],
        session: CreatorSession,
        deps: CreatorDependencies,
        deadline: float,
        request_id: str,
    ) -> None:
        self.request = request
        self.session = session
        self.deps = deps
        self.deadline = deadline
        self.request_id = request_id

    def events(self) -> Iterator[TurnEvent]:
        if self.session.is_complete or self.session.current_question_id is None:
            raise Conflict("coach creator session is already complete")
        until = int(time.time() + max(1.0, self.deadline - time.monotonic())) + 5
        claimed = self.deps.sessions.claim(self.session, self.request_id, until)
        answer = self.request.body.user_response
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
