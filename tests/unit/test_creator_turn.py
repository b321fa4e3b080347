"""One coach creator answer on the in-memory adapters: claim, filtered reply, record or release, build.

The session store is the fake the contract tests pin to the DynamoDB adapter, so claims race,
conflict and expire here exactly as they would on the table. One clock drives both the claims the
pipeline takes and the expiry the store judges, so lapsed claims are tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from shared.coach_creator.pipeline import (
    CreatorAnswer,
    CreatorDependencies,
    CreatorTurn,
    ReplayedAnswer,
    open_creator_turn,
)
from shared.coach_creator.questions import QUESTIONS, applicable_questions, question_by_id
from shared.deadline import claim_until
from shared.errors import Conflict, IdempotencyMismatch, NotFound, ReplyInterrupted, ReplyTimedOut, ReplyUnavailable
from shared.events import ChunkEvent, CompleteEvent, ProgressEvent, StartEvent, TurnEvent
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
    stalls_after,
    unavailable,
)
from tests.fakes.clock import SettableClock as Clock
from tests.unit.turn_events import chunks, failure, kinds, leave_after_first_chunk

USER = "user-1"
REPLY = "reply-model"
ANSWER = "I want to run a marathon next spring"
SAID = "Great goal! A marathon is a big one."
MARKED = SAID + "\n\n[[SOPHISTICATION:INTERMEDIATE]]"
FIRST, SECOND = QUESTIONS[0], question_by_id("experience")
NOW = 1_700_000_000.0  # a whole epoch second, so claim expiry figures come out exact
MARGIN = 10.0  # the claim's margin after the turn's deadline, in these tests


@dataclass
class Interview:
    """The fakes one answer talks to, and the session it answers in."""

    clock: Clock = field(default_factory=lambda: Clock(NOW))
    builds: RecordingJobQueue = field(default_factory=RecordingJobQueue)
    model: StreamingModel = field(default_factory=StreamingModel)
    observed: RecordedMetrics = field(default_factory=RecordedMetrics)

    def __post_init__(self) -> None:
        self.sessions = InMemoryCreatorSessionRepository(clock=self.clock)
        self.session_id = self.sessions.create_session(USER, FIRST.id).session_id

    def script(self, *streams: StreamScript, fallback: str | None = None) -> None:
        self.model = StreamingModel(*streams, answers={REPLY: [fallback] if fallback else []})

    def open(
        self, text: str = ANSWER, seconds: float = 5.0, request_id: str = "req-1", message_id: str | None = None
    ) -> CreatorTurn | ReplayedAnswer:
        """Opens an answer whose deadline is `seconds` from now (negative: already past)."""
        deps = CreatorDependencies(
            model=self.model,
            model_settings=ModelSettings(reply_model_id=REPLY),
            sessions=self.sessions,
            coach_builder=self.builds,
            observe=self.observed,
            claim_margin_seconds=MARGIN,
            clock=self.clock,
        )
        answer = CreatorAnswer(user_id=USER, session_id=self.session_id, text=text, client_message_id=message_id)
        return open_creator_turn(deps, answer, time.monotonic() + seconds, request_id)

    def run(
        self, text: str = ANSWER, seconds: float = 5.0, request_id: str = "req-1", message_id: str | None = None
    ) -> list[TurnEvent]:
        return list(self.open(text, seconds, request_id, message_id).events())

    def attempt(
        self, stream: StreamScript, text: str = ANSWER, request_id: str = "req-1", message_id: str | None = None
    ) -> list[TurnEvent]:
        """One answer whose reply is `stream`."""
        self.script(stream)
        return self.run(text, request_id=request_id, message_id=message_id)

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
    claimed = interview.sessions.claim(interview.current(), "req-0", int(interview.clock.now) + 60)
    done = QuestionAnswer(question_id=FIRST.id, question=FIRST.text, answer="done")
    interview.sessions.commit(claimed, done, None, "BEGINNER", is_complete=True)


def session_being_answered(interview: Interview) -> None:
    interview.sessions.claim(interview.current(), "req-0", int(interview.clock.now) + 60)


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
    assert isinstance(won[0], CreatorTurn)
    assert isinstance(list(won[0].events())[-1], CompleteEvent)
    assert [qa.answer for qa in interview.current().history] == [won[0].answer.text]


# --- failures after `start`: the question stays open ----------------------------------------------


def test_a_reply_that_broke_after_text_is_kept_as_a_failed_attempt_and_the_question_stays_open(
    interview: Interview,
) -> None:
    interview.script(interrupted_after("Love ", "that."))
    events = interview.run()

    assert kinds(events) == ["StartEvent", "ChunkEvent", "ChunkEvent", "ProgressEvent", "TurnFailed"]
    assert failure(events) is ReplyInterrupted
    assert (progress_of(events)["questionsCompleted"], progress_of(events)["sophisticationLevel"]) == (0, "BEGINNER")
    session = interview.current()
    assert [(qa.question_id, qa.answer, qa.ai_response, qa.status) for qa in session.history] == [
        (FIRST.id, ANSWER, "Love that.", "interrupted")
    ]
    assert (session.current_question_id, session.answering, session.is_complete) == (FIRST.id, None, False)


def test_the_retry_answers_the_same_question_and_supersedes_the_failed_attempt(interview: Interview) -> None:
    interview.attempt(interrupted_after("Love ", "that."))
    events = interview.attempt(reply(SAID), request_id="req-2")

    assert isinstance(events[-1], CompleteEvent)
    assert events[-1].to_dict()["nextQuestion"] == SECOND.text
    assert progress_of(events)["questionsCompleted"] == 1
    session = interview.current()
    assert [(qa.question_id, qa.ai_response, qa.status) for qa in session.history] == [
        (FIRST.id, "Love that.", "interrupted"),
        (FIRST.id, SAID, "complete"),
    ]
    assert session.current_question_id == SECOND.id
    # the failed attempt is not part of the interview the model is shown
    assert [m.text for m in interview.model.stream_requests[0].messages[1:]] == [FIRST.text, ANSWER]


def test_a_second_failure_at_the_same_question_replaces_the_first(interview: Interview) -> None:
    interview.attempt(interrupted_after("First try."), "first words")
    events = interview.attempt(interrupted_after("Second try."), "second words", request_id="req-2")

    assert progress_of(events)["questionsCompleted"] == 0
    session = interview.current()
    assert [(qa.answer, qa.ai_response, qa.status) for qa in session.history] == [
        ("second words", "Second try.", "interrupted")
    ]
    assert session.current_question_id == FIRST.id


def test_failed_attempts_never_count_in_progress(interview: Interview) -> None:
    interview.attempt(reply("One."), "first")
    events = interview.attempt(interrupted_after("Cut "), "second", request_id="req-2")
    assert progress_of(events)["questionsCompleted"] == 1

    events = interview.attempt(reply("Two."), "second", request_id="req-3")
    assert progress_of(events)["questionsCompleted"] == 2
    assert [qa.status for qa in interview.current().history] == ["complete", "interrupted", "complete"]
    # the model saw the first answer only, never the failed attempt
    history = [m.text for m in interview.model.stream_requests[0].messages[1:-2]]
    assert history == [FIRST.text, "first"]


def test_a_reply_cut_by_the_deadline_is_kept_marked_timeout(interview: Interview) -> None:
    interview.script(stalls_after("Before ", "the ", then=("too late",)))
    events = interview.run(seconds=0.3)

    assert failure(events) is ReplyTimedOut
    assert progress_of(events)["questionsCompleted"] == 0
    session = interview.current()
    assert [(qa.ai_response, qa.status) for qa in session.history] == [("Before the", "timeout")]
    assert (session.current_question_id, session.answering) == (FIRST.id, None)


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


def test_what_was_streamed_is_kept_when_the_client_goes_away_but_the_question_stays_open(
    interview: Interview,
) -> None:
    """The contract: whatever reply text was produced is stored, even when the client has gone away."""
    interview.script(reply("First words", " then more", delay=0.02))
    leave_after_first_chunk(interview.open().events())
    session = interview.current()
    assert session.answering is None
    # what the user was shown; the marker filter may still hold back a trailing fragment
    assert [(qa.answer, qa.ai_response, qa.status) for qa in session.history] == [
        (ANSWER, "First words", "interrupted")
    ]
    assert session.current_question_id == FIRST.id, "a reply the user never saw to its end does not count"


def test_a_client_gone_before_any_text_frees_the_session(interview: Interview) -> None:
    interview.script(reply("never read"))
    events = interview.open().events()
    assert isinstance(next(events), StartEvent)
    events.close()  # type: ignore[attr-defined] - a generator
    session = interview.current()
    assert (session.history, session.answering, session.current_question_id) == ([], None, FIRST.id)


# --- clientMessageId: a repeat replays, a different text is refused --------------------------------


def test_a_repeat_replays_the_recorded_step_without_a_model_call_or_a_write(interview: Interview) -> None:
    first = interview.attempt(reply("Great goal! ", "A marathon is a big one."), message_id="m-1")
    before = interview.current()

    interview.script()  # any model call now fails the test
    replay = interview.open(request_id="req-2", message_id="m-1")
    assert isinstance(replay, ReplayedAnswer)
    events = list(replay.events())

    assert kinds(events) == ["StartEvent", "ChunkEvent", "ProgressEvent", "CompleteEvent"]
    assert events[0] == StartEvent(requestId="req-2")
    assert events[1] == ChunkEvent(content=SAID)
    assert events[-2:] == first[-2:]  # the same progress and the same complete as the first time
    assert interview.model.stream_requests == [] and interview.model.converse_requests == []
    assert interview.current() == before
    assert before.history[0].client_message_id == "m-1"


def test_a_repeat_with_another_text_is_refused_before_anything_is_written(interview: Interview) -> None:
    interview.attempt(reply(SAID), message_id="m-1")
    before = interview.current()

    interview.script()
    with pytest.raises(IdempotencyMismatch):
        interview.open("something else entirely", request_id="req-2", message_id="m-1")
    assert interview.current() == before
    assert interview.model.stream_requests == []


def test_a_repeat_while_the_first_is_in_flight_is_a_conflict(interview: Interview) -> None:
    interview.script(reply(SAID))
    first = interview.open(message_id="m-1")
    in_flight = interview.current()

    with pytest.raises(Conflict, match="already being answered"):
        interview.open(request_id="req-2", message_id="m-1")
    assert interview.current() == in_flight

    assert isinstance(list(first.events())[-1], CompleteEvent)
    assert isinstance(interview.open(request_id="req-3", message_id="m-1"), ReplayedAnswer)


def test_a_repeat_of_a_failed_attempt_answers_the_same_question_again(interview: Interview) -> None:
    interview.attempt(interrupted_after("Love "), message_id="m-1")
    events = interview.attempt(reply(SAID), request_id="req-2", message_id="m-1")
    assert isinstance(events[-1], CompleteEvent) and events[-1].to_dict()["aiResponse"] == SAID
    session = interview.current()
    assert [(qa.question_id, qa.status, qa.client_message_id) for qa in session.history] == [
        (FIRST.id, "interrupted", "m-1"),
        (FIRST.id, "complete", "m-1"),
    ]
    assert session.current_question_id == SECOND.id

    interview.script()
    assert isinstance(interview.open(request_id="req-3", message_id="m-1"), ReplayedAnswer)
    with pytest.raises(IdempotencyMismatch):
        interview.open("other words", request_id="req-4", message_id="m-1")


def test_a_failed_attempt_repeated_with_another_text_is_refused(interview: Interview) -> None:
    interview.attempt(interrupted_after("Love "), message_id="m-1")
    before = interview.current()
    with pytest.raises(IdempotencyMismatch):
        interview.open("other words", request_id="req-2", message_id="m-1")
    assert interview.current() == before


def test_a_failed_attempt_repeated_after_its_question_was_answered_is_refused(interview: Interview) -> None:
    interview.attempt(interrupted_after("Love "), message_id="m-1")
    interview.attempt(reply(SAID), request_id="req-2", message_id="m-2")  # answered by another message
    before = interview.current()

    interview.script()
    with pytest.raises(Conflict):
        interview.open(request_id="req-3", message_id="m-1")
    assert interview.current() == before
    assert before.current_question_id == SECOND.id


def test_an_older_answer_replays_what_it_said_then(interview: Interview) -> None:
    first = interview.attempt(reply("One."), "fine", message_id="m-1")
    interview.attempt(reply("Two."), "fine too", request_id="req-2", message_id="m-2")

    interview.script()
    replay = list(interview.open("fine", request_id="req-3", message_id="m-1").events())
    assert replay[-1] == first[-1]
    assert replay[-1].to_dict()["nextQuestion"] == SECOND.text
    assert progress_of(replay)["questionsCompleted"] == 1


def test_the_last_answer_replays_as_complete_without_a_second_build(interview: Interview) -> None:
    interview.answer_all_but_the_last()
    first = interview.attempt(reply("Thanks! Your coach is being built."), "fine", message_id="m-last")
    assert len(interview.builds.jobs) == 1
    before = interview.current()

    interview.script()
    replay = list(interview.open("fine", request_id="req-2", message_id="m-last").events())
    assert replay[-1] == first[-1]
    assert (replay[-1].to_dict()["isComplete"], replay[-1].to_dict()["coachConfigGenerating"]) == (True, True)
    assert len(interview.builds.jobs) == 1
    assert interview.current() == before
    with pytest.raises(Conflict):  # a new message to a complete session is still refused
        interview.open("fine", request_id="req-3", message_id="m-new")


# --- a crashed turn's claim -------------------------------------------------------------------------


def test_a_claim_lasts_the_turns_deadline_plus_its_margin() -> None:
    assert claim_until(1_000.0, 120.0, 66.5) == 1_187
    assert claim_until(1_000.0, -3.0, 66.5) == 1_067  # a deadline already past counts as now
    assert claim_until(1_000.5, 0.0, 5.0) == 1_006  # rounded up: never shorter than the turn's time


def test_a_crashed_turns_claim_refuses_answers_until_it_lapses_then_is_taken_over(interview: Interview) -> None:
    interview.script(reply(SAID))
    interview.open(seconds=5.0)  # claimed, then the process died: nothing else ever happens
    crashed = interview.current()
    assert crashed.answering_until == int(NOW + 5 + MARGIN)

    interview.clock.now = NOW + 5 + MARGIN  # `until` is inclusive
    with pytest.raises(Conflict):
        interview.open(request_id="req-2")
    assert interview.current() == crashed

    interview.clock.now = NOW + 5 + MARGIN + 1
    events = interview.run(request_id="req-2")
    assert isinstance(events[-1], CompleteEvent)
    session = interview.current()
    assert [qa.answer for qa in session.history] == [ANSWER]
    assert (session.answering, session.current_question_id) == (None, SECOND.id)


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
