"""One coach creator answer on the in-memory adapters: claim, filtered reply, record or release, build.

The session store is the fake the contract test pins to the DynamoDB adapter, so claims race and
conflict here exactly as they would on the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from shared.coach_creator.pipeline import CreatorAnswer, CreatorDependencies, CreatorTurn, open_creator_turn
from shared.coach_creator.questions import QUESTIONS, applicable_questions, question_by_id
from shared.errors import Conflict, NotFound, ReplyInterrupted, ReplyTimedOut, ReplyUnavailable
from shared.events import CompleteEvent, ProgressEvent, StartEvent, TurnEvent
from shared.fallback import collect_complete
from shared.models import ModelSettings
from shared.store.records import CreatorSession, QuestionAnswer
from tests.fakes import (
    InMemoryCreatorSessionRepository,
    RecordedMetrics,
    RecordingJobQueue,
    StreamingModel,
    StreamScript,
    interrupted_after,
    race,
    reply,
    unavailable,
)
from tests.unit.turn_events import chunks, failure, kinds, leave_after_first_chunk

USER = "user-1"
REPLY = "reply-model"
ANSWER = "I want to run a marathon next spring"
SAID = "Great goal! A marathon is a big one."
MARKED = SAID + "\n\n[[SOPHISTICATION:INTERMEDIATE]]"
FIRST, SECOND = QUESTIONS[0], question_by_id("experience")


@dataclass
class Interview:
    """The fakes one answer talks to, and the session it answers in."""

    sessions: InMemoryCreatorSessionRepository = field(default_factory=InMemoryCreatorSessionRepository)
    builds: RecordingJobQueue = field(default_factory=RecordingJobQueue)
    model: StreamingModel = field(default_factory=StreamingModel)
    observed: RecordedMetrics = field(default_factory=RecordedMetrics)

    def __post_init__(self) -> None:
        self.session_id = self.sessions.create_session(USER, FIRST.id).session_id

    def script(self, *streams: StreamScript, fallback: str | None = None) -> None:
        self.model = StreamingModel(*streams, answers={REPLY: [fallback] if fallback else []})

    def open(self, text: str = ANSWER, seconds: float = 5.0, request_id: str = "req-1") -> CreatorTurn:
        """Opens an answer whose deadline is `seconds` from now (negative: already past)."""
        deps = CreatorDependencies(
            model=self.model,
            model_settings=ModelSettings(reply_model_id=REPLY),
            sessions=self.sessions,
            coach_builder=self.builds,
            observe=self.observed,
        )
        answer = CreatorAnswer(user_id=USER, session_id=self.session_id, text=text)
        return open_creator_turn(deps, answer, time.monotonic() + seconds, request_id)

    def run(self, text: str = ANSWER, seconds: float = 5.0) -> list[TurnEvent]:
        return list(self.open(text, seconds).events())

    def current(self) -> CreatorSession:
        session = self.sessions.get_session(USER, self.session_id)
        assert session is not None
        return session

    def answer_all_but_the_last(self) -> int:
        """Answers every BEGINNER question but the last, through the pipeline; how many were answered."""
        answered = 0
        while self.current().current_question_id != applicable_questions("BEGINNER")[-1].id:
            self.script(reply("Thanks."))
            assert isinstance(self.run("fine")[-1], CompleteEvent)
            answered += 1
        return answered


@pytest.fixture
def interview() -> Iterator[Interview]:
    made = Interview()
    yield made
    made.model.release()


def progress_of(events: list[TurnEvent]) -> dict:
    found = [event for event in events if isinstance(event, ProgressEvent)]
    assert len(found) == 1
    return found[0].progressDetails


# --- an answer ---------------------------------------------------------------------------------------


def test_an_answer_is_recorded_and_the_next_question_opened(interview: Interview) -> None:
    interview.script(reply("Great goal! ", "A marathon is a big one."))
    events = interview.run()

    assert kinds(events) == ["StartEvent", "ChunkEvent", "ChunkEvent", "ProgressEvent", "CompleteEvent"]
    assert events[0] == StartEvent(requestId="req-1")
    details = progress_of(events)
    assert (details["questionsCompleted"], details["sophisticationLevel"]) == (1, "BEGINNER")
    assert events[-1].to_dict() == {
        "type": "complete",
        "status": "finished",
        "sessionId": interview.session_id,
        "aiResponse": SAID,
        "isComplete": False,
        "nextQuestion": SECOND.text,
        "progressDetails": details,
        "coachConfigGenerating": False,
    }
    session = interview.current()
    [recorded] = session.history
    assert (recorded.question_id, recorded.question, recorded.answer) == (FIRST.id, FIRST.text, ANSWER)
    assert (recorded.ai_response, recorded.status) == (SAID, "complete")
    assert (session.current_question_id, session.answering, session.is_complete) == (SECOND.id, None, False)
    assert interview.model.stream_requests[0].messages[-1].text == ANSWER
    assert interview.builds.attempts == 0


def marker_splits() -> list[tuple[str, ...]]:
    """The reply as one delta, one character at a time, and cut in two at every point near the marker."""
    near = len(SAID) - 2
    return [(MARKED,), tuple(MARKED)] + [(MARKED[:cut], MARKED[cut:]) for cut in range(near, len(MARKED))]


@pytest.mark.parametrize("deltas", marker_splits(), ids=lambda deltas: f"{len(deltas)}-pieces-{len(deltas[0])}")
def test_the_marker_never_shows_however_the_deltas_split_it(interview: Interview, deltas: tuple[str, ...]) -> None:
    interview.script(StreamScript(deltas=deltas))
    events = interview.run()

    assert "".join(chunks(events)) == SAID
    assert not any("[" in chunk for chunk in chunks(events))
    assert events[-1].to_dict()["aiResponse"] == SAID
    assert progress_of(events)["sophisticationLevel"] == "INTERMEDIATE"
    session = interview.current()
    assert (session.sophistication_level, session.history[0].ai_response) == ("INTERMEDIATE", SAID)


def test_the_fallback_reply_is_filtered_and_its_level_recorded_too(interview: Interview) -> None:
    interview.script(unavailable(), fallback=MARKED)
    events = interview.run()
    assert isinstance(events[-1], CompleteEvent)
    assert "".join(chunks(events)) == SAID
    assert (interview.current().sophistication_level, interview.current().history[0].ai_response) == (
        "INTERMEDIATE",
        SAID,
    )
    assert interview.observed.values("Fallbacks") == [1]


# --- refusals before the stream ----------------------------------------------------------------------


def session_gone(interview: Interview) -> None:
    interview.session_id = "gone"


def session_complete(interview: Interview) -> None:
    claimed = interview.sessions.claim(interview.current(), "req-0", int(time.time()) + 60)
    done = QuestionAnswer(question_id=FIRST.id, question=FIRST.text, answer="done")
    interview.sessions.commit(claimed, done, None, "BEGINNER", is_complete=True)


def session_being_answered(interview: Interview) -> None:
    interview.sessions.claim(interview.current(), "req-0", int(time.time()) + 60)


@pytest.mark.parametrize(
    ("refused", "error"),
    [(session_gone, NotFound), (session_complete, Conflict), (session_being_answered, Conflict)],
)
def test_a_refused_answer_raises_before_any_event_and_changes_nothing(
    interview: Interview, refused: Callable[[Interview], None], error: type[Exception]
) -> None:
    interview.script(reply("never sent"))
    refused(interview)
    before = interview.sessions.get_session(USER, interview.session_id)
    with pytest.raises(error):
        interview.open()
    assert interview.sessions.get_session(USER, interview.session_id) == before
    assert interview.model.stream_requests == []


def test_of_concurrent_answers_exactly_one_proceeds(interview: Interview) -> None:
    interview.script(reply("Got it."))
    won, lost = race(8, lambda index: interview.open(f"answer {index}", request_id=f"req-{index}"))
    assert (len(won), len(lost)) == (1, 7)
    assert all(isinstance(exc, Conflict) for exc in lost)
    assert isinstance(list(won[0].events())[-1], CompleteEvent)
    assert [qa.answer for qa in interview.current().history] == [won[0].answer]


# --- failures after `start` --------------------------------------------------------------------------


def test_an_answer_counts_even_when_the_reply_broke_after_text(interview: Interview) -> None:
    interview.script(interrupted_after("Love ", "that."))
    events = interview.run()

    assert kinds(events) == ["StartEvent", "ChunkEvent", "ChunkEvent", "ProgressEvent", "TurnFailed"]
    assert failure(events) is ReplyInterrupted
    assert progress_of(events)["questionsCompleted"] == 1
    session = interview.current()
    assert [(qa.answer, qa.ai_response, qa.status) for qa in session.history] == [(ANSWER, "Love that.", "interrupted")]
    assert (session.current_question_id, session.answering) == (SECOND.id, None)


@pytest.mark.parametrize(
    ("stream", "seconds", "error"),
    [(unavailable(), 5.0, ReplyUnavailable), (reply("late", delay=0.2), -1.0, ReplyTimedOut)],
    ids=["model-unavailable", "deadline-past"],
)
def test_with_nothing_said_back_the_claim_is_released_and_the_question_stays_open(
    interview: Interview, stream: StreamScript, seconds: float, error: type[Exception]
) -> None:
    interview.script(stream)  # no fallback answer either
    events = interview.run(seconds=seconds)

    assert kinds(events) == ["StartEvent", "ProgressEvent", "TurnFailed"]
    assert failure(events) is error
    assert progress_of(events)["questionsCompleted"] == 0
    session = interview.current()
    assert (session.history, session.current_question_id, session.answering) == ([], FIRST.id, None)

    interview.script(reply("Second time lucky."))
    assert isinstance(interview.run()[-1], CompleteEvent), "the same question can be answered again"
    assert interview.current().history[0].question_id == FIRST.id


def test_what_was_streamed_is_recorded_when_the_client_goes_away(interview: Interview) -> None:
    """The contract: whatever reply text was produced is stored, even when the client has gone away."""
    interview.script(reply("First words", " then more", delay=0.02))
    leave_after_first_chunk(interview.open().events())
    session = interview.current()
    assert session.answering is None
    # what the user was shown; the marker filter may still hold back a trailing fragment
    assert [(qa.answer, qa.ai_response, qa.status) for qa in session.history] == [
        (ANSWER, "First words", "interrupted")
    ]
    assert session.current_question_id != FIRST.id, "the answer counts: the interview moved on"


# --- the last answer ---------------------------------------------------------------------------------


def test_the_last_answer_completes_the_interview_and_hands_off_one_build(interview: Interview) -> None:
    assert interview.answer_all_but_the_last() == len(applicable_questions("BEGINNER")) - 1
    assert interview.builds.attempts == 0

    interview.script(reply("Thanks! Your coach is being built."))
    events = interview.run("fine")

    complete = events[-1].to_dict()
    assert (complete["isComplete"], complete.get("nextQuestion"), complete["coachConfigGenerating"]) == (
        True,
        None,
        True,
    )
    assert complete["progressDetails"]["percentage"] == 100
    assert interview.builds.jobs == [
        {"kind": "build-coach-from-session", "userId": USER, "sessionId": interview.session_id}
    ]
    session = interview.current()
    assert (session.is_complete, session.coach_config_status, session.current_question_id) == (True, "generating", None)
    with pytest.raises(Conflict):
        interview.open()


def test_a_failing_build_hand_off_still_completes_and_is_counted(interview: Interview) -> None:
    interview.builds.failure = RuntimeError("queue unreachable")
    interview.answer_all_but_the_last()
    interview.script(reply("Thanks!"))
    events = interview.run("fine")
    assert isinstance(events[-1], CompleteEvent) and events[-1].to_dict()["isComplete"] is True
    assert interview.builds.attempts == 1
    assert interview.observed.values("CoachBuildHandoffFailures") == [1]
    assert interview.current().is_complete


def test_the_non_streaming_last_answer_hands_the_build_off_too(interview: Interview) -> None:
    interview.answer_all_but_the_last()
    interview.script(reply("Thanks!"))
    assert collect_complete(interview.open("fine").events(), ("isComplete",)) == {"isComplete": True}
    assert interview.current().coach_config_status == "generating"
    assert len(interview.builds.jobs) == 1
