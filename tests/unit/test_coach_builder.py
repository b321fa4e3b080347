"""The coach builder against moto's DynamoDB and a scripted model: idempotent, retryable, never stuck."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from functions.build_coach_from_session.handler import process
from shared.coach_creator.coach_builder import (
    NO_INJURIES,
    BuildCoachJob,
    CoachBuilderDependencies,
    build_coach,
    coach_builder_request,
    coach_id_for,
    parse_coach_draft,
)
from shared.models import ModelPort, ModelSettings, ModelUnavailable
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.creator_sessions import DynamoCreatorSessionRepository
from shared.store.records import QuestionAnswer
from tests.fixtures.fake_model import ScriptedModel

USER = "user-1"
INJURY = "My left knee hurts on deep squats since a meniscus tear last year."
ANSWERS = {
    "goals": "Squat 140 kg by summer and get leaner.",
    "injuries": INJURY,
    "coaching_style": "Direct and data-driven, weekly check-ins.",
}


@pytest.fixture
def sessions(table: Any) -> DynamoCreatorSessionRepository:
    return DynamoCreatorSessionRepository(table)


@pytest.fixture
def coaches(table: Any) -> DynamoCoachRepository:
    return DynamoCoachRepository(table)


def deps_with(sessions: Any, coaches: Any, model: ModelPort, observed: list[str] | None = None) -> Any:
    return CoachBuilderDependencies(
        model=model,
        model_settings=ModelSettings(reply_model_id="reply-model"),
        sessions=sessions,
        coaches=coaches,
        observe=lambda name, value: (observed if observed is not None else []).append(name),
    )


def interview(sessions: DynamoCreatorSessionRepository, answers: dict[str, str], *, complete: bool = True) -> str:
    """A session with `answers` recorded through claim and commit, as the interview records them."""
    ids = list(answers)
    session = sessions.create_session(USER, ids[0])
    for index, question_id in enumerate(ids):
        claimed = sessions.claim(session, f"req-{index}", int(time.time()) + 60)
        qa = QuestionAnswer(
            question_id=question_id,
            question=f"Tell me about your {question_id.replace('_', ' ')}?",
            answer=answers[question_id],
            ai_response="Noted.",
            answered_at="2026-01-01T00:00:00.000Z",
        )
        last = index == len(ids) - 1
        following = None if last else ids[index + 1]
        session = sessions.commit(claimed, qa, following, "INTERMEDIATE", is_complete=complete and last)
    return session.session_id


def coach_answer(**changes: Any) -> str:
    body = {
        "name": "Coach Atlas",
        "personality": "Calm, precise, encouraging.",
        "methodology": ["Linear progression", "on the squat with RPE caps."],
        "programFocus": "Squat strength and fat loss, 4 days a week.",
        "safetyNotes": "Left knee: meniscus tear last year; limit squat depth, prefer box squats.",
        "coachingStyle": "Direct, numbers first, weekly check-ins.",
        **changes,
    }
    return "Here you go:\n```json\n" + json.dumps(body) + "\n```"


def job_for(session_id: str) -> BuildCoachJob:
    return BuildCoachJob(user_id=USER, session_id=session_id)


def test_builds_once_even_when_run_twice(sessions, coaches) -> None:
    session_id = interview(sessions, ANSWERS)
    model = ScriptedModel(coach_answer())  # a second model call would find the script empty
    observed: list[str] = []
    deps = deps_with(sessions, coaches, model, observed)

    first = build_coach(job_for(session_id), deps)
    second = build_coach(job_for(session_id), deps)

    assert first is not None and first == second
    assert first.coach_id == coach_id_for(session_id) == f"coach-{session_id}"
    assert len(model.requests) == 1
    assert observed == ["CoachesBuilt"]
    assert coaches.list_coaches(USER) == [first]

    stored = coaches.get_coach(USER, first.coach_id)
    assert stored is not None
    assert stored.name == "Coach Atlas"
    assert stored.methodology == "Linear progression on the squat with RPE caps."
    assert "meniscus" in stored.safety_notes and "knee" in stored.safety_notes.lower()
    assert stored.source_session_id == session_id

    session = sessions.get_session(USER, session_id)
    assert session is not None
    assert (session.coach_id, session.coach_config_status) == (first.coach_id, "ready")


def test_the_request_carries_the_whole_interview(sessions) -> None:
    session = sessions.get_session(USER, interview(sessions, ANSWERS))
    assert session is not None
    request = coach_builder_request("reply-model", session)
    assert request.model_id == "reply-model"
    assert request.system is not None and "safetyNotes" in request.system.static
    assert NO_INJURIES in request.system.static
    text = request.messages[0].text
    assert all(answer in text for answer in ANSWERS.values())
    assert "INTERMEDIATE" in text


def test_a_retry_after_create_but_before_attach_just_attaches(sessions, coaches) -> None:
    session_id = interview(sessions, ANSWERS)
    deps = deps_with(sessions, coaches, ScriptedModel(coach_answer()))
    built = build_coach(job_for(session_id), deps)
    assert built is not None
    sessions.table.update_item(  # as if the first run died between create and attach
        Key={"pk": f"USER#{USER}", "sk": f"CREATOR#{session_id}"},
        UpdateExpression="SET coach_config_status = :g REMOVE coach_id",
        ExpressionAttributeValues={":g": "generating"},
    )
    assert build_coach(job_for(session_id), deps_with(sessions, coaches, ScriptedModel())) == built
    session = sessions.get_session(USER, session_id)
    assert session is not None and (session.coach_id, session.coach_config_status) == (built.coach_id, "ready")


def test_model_failure_raises_and_leaves_nothing_half_done(sessions, coaches) -> None:
    session_id = interview(sessions, ANSWERS)
    failing = deps_with(sessions, coaches, ScriptedModel(ModelUnavailable("throttled", cause="ThrottlingException")))
    with pytest.raises(ModelUnavailable):
        build_coach(job_for(session_id), failing)
    assert coaches.list_coaches(USER) == []
    session = sessions.get_session(USER, session_id)
    assert session is not None and (session.coach_id, session.coach_config_status) == (None, "generating")

    # the retry succeeds
    assert build_coach(job_for(session_id), deps_with(sessions, coaches, ScriptedModel(coach_answer()))) is not None


def test_model_failure_through_the_handler_raises_for_lambda_to_retry(sessions, coaches) -> None:
    session_id = interview(sessions, ANSWERS)
    deps = deps_with(sessions, coaches, ScriptedModel(ModelUnavailable("down")))
    with pytest.raises(ModelUnavailable):
        process({"kind": "build-coach-from-session", "userId": USER, "sessionId": session_id}, deps)


@pytest.mark.parametrize("garbage", ["I'd rather not.", "{not json", '["a", "list"]', '{"unrelated": true}'])
def test_garbage_json_gets_a_default_coach_from_the_answers(sessions, coaches, garbage) -> None:
    session_id = interview(sessions, ANSWERS)
    observed: list[str] = []
    coach = build_coach(job_for(session_id), deps_with(sessions, coaches, ScriptedModel(garbage), observed))
    assert coach is not None
    assert coach.name == "Your Coach"
    assert INJURY in coach.safety_notes
    assert coach.program_focus == ANSWERS["goals"]
    assert coach.coaching_style == ANSWERS["coaching_style"]
    assert all((coach.personality, coach.methodology))
    assert observed == ["CoachBuildDefaults", "CoachesBuilt"]
    assert coaches.get_coach(USER, coach.coach_id) == coach
    session = sessions.get_session(USER, session_id)
    assert session is not None and session.coach_config_status == "ready"


def test_default_coach_without_an_injury_answer_says_none_reported(sessions, coaches) -> None:
    session_id = interview(sessions, {"goals": "Run a 5k."})
    coach = build_coach(job_for(session_id), deps_with(sessions, coaches, ScriptedModel("nope")))
    assert coach is not None and coach.safety_notes == NO_INJURIES


def test_missing_safety_notes_fall_back_to_the_athletes_words(sessions, coaches) -> None:
    session_id = interview(sessions, ANSWERS)
    answer = coach_answer(safetyNotes=None, name="N" * 200, personality=123)
    coach = build_coach(job_for(session_id), deps_with(sessions, coaches, ScriptedModel(answer)))
    assert coach is not None
    assert coach.safety_notes == f"Reported by the athlete: {INJURY}"
    assert coach.name == "N" * 60
    assert coach.personality == "123"


def test_draft_parsing_bounds_every_field() -> None:
    draft = parse_coach_draft(json.dumps({"name": "A", "personality": "x " * 5_000, "methodology": {"k": "v"}}))
    assert draft is not None
    assert len(draft.personality) == 2_000
    assert draft.methodology == "k: v"
    assert parse_coach_draft('{"name": "Only a name"}') is None


@pytest.mark.parametrize("complete", [False, None])
def test_incomplete_or_missing_sessions_are_skipped_without_a_model_call(sessions, coaches, complete) -> None:
    session_id = "missing" if complete is None else interview(sessions, ANSWERS, complete=False)
    model = ScriptedModel()
    assert build_coach(job_for(session_id), deps_with(sessions, coaches, model)) is None
    assert model.requests == []
    assert coaches.list_coaches(USER) == []


def test_handler_runs_a_job_and_drops_an_invalid_one(sessions, coaches) -> None:
    session_id = interview(sessions, ANSWERS)
    deps = deps_with(sessions, coaches, ScriptedModel(coach_answer()))
    payload = job_for(session_id).model_dump(by_alias=True)
    assert payload == {"kind": "build-coach-from-session", "userId": USER, "sessionId": session_id}
    assert process(payload, deps) == {"statusCode": 200, "coachId": f"coach-{session_id}"}

    observed: list[str] = []
    rejected = process({"kind": "other", "userId": USER}, deps_with(sessions, coaches, ScriptedModel(), observed))
    assert rejected == {"statusCode": 400, "error": "invalid build-coach job", "fields": ["kind", "sessionId"]}
    assert observed == ["CoachBuildInvalidJobs"]
