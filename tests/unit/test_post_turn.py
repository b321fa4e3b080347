"""The post-turn job against moto's DynamoDB and a scripted model: idempotent, forward-only, retryable; and the
post-turn function's handler on DynamoDB stream events (the outbox items the table's stream delivers)."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from functions.coach_conversation_post_turn.handler import process
from shared import observability
from shared.coach_conversation.post_turn import PostTurnJob
from shared.coach_conversation.post_turn_work import (
    PostTurnDependencies,
    memory_id_for,
    run_post_turn,
    workout_id_for,
)
from shared.models import ModelPort, ModelSettings, ModelUnavailable
from shared.store.dynamodb.conversations import DynamoConversationRepository
from shared.store.dynamodb.memories import DynamoMemoryRepository, DynamoWorkoutRepository
from shared.store.records import ChatMessage, Conversation
from tests.fixtures.fake_model import ScriptedModel

USER = "user-1"
COACH = "coach-1"


@pytest.fixture
def repos(table: Any) -> dict[str, Any]:
    return {
        "conversations": DynamoConversationRepository(table),
        "memories": DynamoMemoryRepository(table),
        "workouts": DynamoWorkoutRepository(table),
    }


def deps_with(repos: dict[str, Any], model: ModelPort, observed: list[str] | None = None) -> PostTurnDependencies:
    return PostTurnDependencies(
        model=model,
        model_settings=ModelSettings(side_model_id="side-model"),
        observe=lambda name, value: (observed if observed is not None else []).append(name),
        **repos,
    )


def job(**changes: Any) -> PostTurnJob:
    fields: dict[str, Any] = {
        "user_id": USER,
        "coach_id": COACH,
        "conversation_id": "conv-1",
        "user_message_id": "m1",
        "ai_message_id": "m2",
        "user_text": "Yesterday: squats 5x5 at 100 kg, then 3 sets of pull-ups. My left knee is sore.",
        "ai_text": "Great session.",
        "message_timestamp": "2025-03-10T08:00:00-05:00",
        "is_workout_log": False,
        "has_memory_to_save": False,
        "message_count": 4,
    }
    return PostTurnJob(**{**fields, **changes})


def workout_answer(performed_on: str | None = "2025-03-09") -> str:
    exercises = [
        {"name": "Back squat", "sets": 5, "reps": 5, "weight": 100.5, "unit": "kg"},
        {"name": "Pull-up", "sets": 3, "reps": "AMRAP", "weight": None},
        {"sets": 2},  # no name: dropped, the others kept
        "not an exercise",
    ]
    body: dict[str, Any] = {"summary": "Squats and pull-ups", "exercises": exercises}
    if performed_on is not None:
        body["performedOn"] = performed_on
    return "Here is the log:\n```json\n" + json.dumps(body) + "\n```"


def test_workout_is_saved_once_even_if_the_job_runs_twice(repos: dict[str, Any]) -> None:
    # the retry's model answers another date: the stored date wins, so the retry overwrites
    model = ScriptedModel(workout_answer("2025-03-09"), workout_answer("2025-03-08"))
    deps = deps_with(repos, model)

    first = run_post_turn(job(is_workout_log=True), deps)
    second = run_post_turn(job(is_workout_log=True), deps)

    workouts = repos["workouts"].recent_workouts(USER, limit=10)
    assert first.workout_id == second.workout_id == workout_id_for("m1")
    assert len(workouts) == 1
    saved = workouts[0]
    assert saved.performed_on == "2025-03-09"
    assert saved.source_message_id == "m1"
    assert [e["name"] for e in saved.exercises] == ["Back squat", "Pull-up"]
    assert float(saved.exercises[0]["weight"]) == 100.5
    assert "weight" not in saved.exercises[1]
    assert model.requests[0].model_id == "side-model"
    assert "Message date: 2025-03-10" in model.requests[0].messages[0].text


def test_a_job_stored_before_the_router_answered_asks_the_router_itself(repos: dict[str, Any]) -> None:
    route = '{"isWorkoutLog": true, "hasMemoryToSave": false}'
    model = ScriptedModel(route, workout_answer("2025-03-09"))
    run_post_turn(job(is_workout_log=None, has_memory_to_save=None), deps_with(repos, model))

    assert [request.model_id for request in model.requests][:1] == ["side-model"], "the router first"
    (saved,) = repos["workouts"].recent_workouts(USER)
    assert saved.workout_id == workout_id_for("m1")
    assert repos["memories"].recent_memories(USER, COACH) == [], "the router asked for no memory"


@pytest.mark.parametrize("answered", [None, "2025-03-11", "2024-01-01", "last tuesday"])
def test_workout_date_defaults_to_the_message_day(repos: dict[str, Any], answered: str | None) -> None:
    run_post_turn(job(is_workout_log=True), deps_with(repos, ScriptedModel(workout_answer(answered))))

    (saved,) = repos["workouts"].recent_workouts(USER)
    assert saved.performed_on == "2025-03-10"  # the message's own day, in its own time zone


def test_memories_are_saved_at_most_three_with_stable_ids(repos: dict[str, Any]) -> None:
    answer = json.dumps({"memories": ["Has a sore left knee.", "", "Trains at 6 am.", "Goal: 150 kg.", "x"]})
    deps = deps_with(repos, ScriptedModel(answer, answer))

    report = run_post_turn(job(has_memory_to_save=True), deps)
    run_post_turn(job(has_memory_to_save=True), deps)

    memories = repos["memories"].recent_memories(USER, COACH)
    assert report.memory_ids == [memory_id_for("m1", i) for i in range(3)]
    assert len(memories) == 3
    assert {m.content for m in memories} == {"Has a sore left knee.", "Trains at 6 am.", "Goal: 150 kg."}


def conversation_with_messages(repos: dict[str, Any], count: int) -> Conversation:
    conversations: DynamoConversationRepository = repos["conversations"]
    conversation = conversations.create_conversation(USER, COACH, "Training")
    for index in range(0, count, 2):
        user = ChatMessage(id=f"{index:02d}u", role="user", content=f"question {index}", timestamp="t")
        reply = ChatMessage(id=f"{index:02d}a", role="assistant", content=f"answer {index + 1}", timestamp="t")
        turn = conversations.begin_turn(conversation, user, digest=user.content, until_epoch=2**31)
        conversations.finish_turn(conversation, turn, reply)
    return conversation


def test_summary_is_saved_and_only_moves_forward(repos: dict[str, Any]) -> None:
    conversation = conversation_with_messages(repos, 10)
    words = " ".join(["word"] * 200)
    model = ScriptedModel(f"  The athlete squats.\n{words}")
    ids = {"conversation_id": conversation.conversation_id}

    report = run_post_turn(job(message_count=10, **ids), deps_with(repos, model))

    stored = repos["conversations"].get_conversation(USER, COACH, conversation.conversation_id)
    assert report.summarized_through == 10
    assert stored.summarized_through == 10
    assert stored.summary.startswith("The athlete squats. word")
    assert len(stored.summary.split()) == 120
    transcript = model.requests[0].messages[0].text
    assert "Athlete: question 0" in transcript
    assert "Coach: answer 9" in transcript

    # a newer summary exists: a late retry of the older job neither calls the model nor writes
    repos["conversations"].save_summary(stored, "newer", through=20)
    late = run_post_turn(job(message_count=11, **ids), deps_with(repos, ScriptedModel()))
    assert late.skipped == ["summary"]
    # and the store itself refuses to move backwards, whatever the caller read before
    repos["conversations"].save_summary(stored, "older", through=12)
    final = repos["conversations"].get_conversation(USER, COACH, conversation.conversation_id)
    assert (final.summary, final.summarized_through) == ("newer", 20)


def test_summary_is_skipped_when_the_conversation_is_gone(repos: dict[str, Any]) -> None:
    report = run_post_turn(job(message_count=10, conversation_id="gone"), deps_with(repos, ScriptedModel()))
    assert report.skipped == ["summary"]


@pytest.mark.parametrize("answer", ["I could not find a workout.", '{"exercises": "many"}', "{not json}", "[1, 2]"])
def test_an_answer_without_the_json_asked_for_is_skipped(repos: dict[str, Any], answer: str) -> None:
    both = job(is_workout_log=True, has_memory_to_save=True)
    report = run_post_turn(both, deps_with(repos, ScriptedModel(answer, answer)))

    assert report.workout_id is None
    assert "workout" in report.skipped
    assert repos["workouts"].recent_workouts(USER) == []
    assert repos["memories"].recent_memories(USER, COACH) == []


def test_a_model_failure_raises_after_the_other_tasks_ran(repos: dict[str, Any]) -> None:
    failing = ModelUnavailable("throttled", cause="ThrottlingException")
    memories = json.dumps({"memories": ["Has a sore left knee."]})
    observed: list[str] = []
    deps = deps_with(repos, ScriptedModel(failing, memories), observed)

    with pytest.raises(ModelUnavailable):
        run_post_turn(job(is_workout_log=True, has_memory_to_save=True), deps)

    assert repos["workouts"].recent_workouts(USER) == []
    assert len(repos["memories"].recent_memories(USER, COACH)) == 1
    assert "PostTurnTaskFailures" in observed


# --- the handler: DynamoDB stream events, as the event source mapping delivers them ---------------------

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/coach/stream/2025-03-10T08:00:00.000"
SERIALIZE = TypeSerializer().serialize


def outbox_image(payload: Any, **extra: Any) -> dict[str, Any]:
    """The outbox item a turn writes with its reply (`job` as a map, camelCase keys), as the stream carries it."""
    item = {
        "pk": f"USER#{USER}#CONV#conv-1",
        "sk": "POSTTURN#m1",
        "type": "post-turn-job",
        "job": payload,
        "expiresAt": 1_742_212_800,
        **extra,
    }
    return {name: SERIALIZE(value) for name, value in item.items() if value is not _ABSENT}


_ABSENT = object()


def stream_event(*images: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB Streams event with one INSERT record per new image, shaped as Lambda delivers it."""
    records = []
    for index, image in enumerate(images):
        records.append(
            {
                "eventID": f"{index:032x}",
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "eventSourceARN": STREAM_ARN,
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_741_608_000,
                    "Keys": {"pk": image["pk"], "sk": image["sk"]},
                    "NewImage": image,
                    "SequenceNumber": f"{1_000_000 + index}",
                    "SizeBytes": len(json.dumps(image)),
                    "StreamViewType": "NEW_IMAGE",
                },
            }
        )
    return json.loads(json.dumps({"Records": records}))  # what arrives is JSON, nothing else


def job_payload(**changes: Any) -> dict[str, Any]:
    return job(**changes).model_dump(by_alias=True)


@pytest.mark.parametrize(
    "payload",
    [
        {"userId": USER},
        "not a job",
        _ABSENT,  # an outbox item without its job
        {**job_payload(), "kind": "something-else"},
        {**job_payload(), "messageCount": "many"},
        {**job_payload(), "messageCount": Decimal("4.5")},
    ],
)
def test_a_record_that_is_not_a_job_is_counted_and_not_retried(
    repos: dict[str, Any], payload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = io.StringIO()
    monkeypatch.setattr(observability.logger.registered_handler, "stream", log)
    observed: list[str] = []
    model = ScriptedModel()
    image = outbox_image(payload)

    answer = process(stream_event(image), deps_with(repos, model, observed))

    assert answer == {"batchItemFailures": []}  # reported as done: a retry would fail the same way
    assert observed == ["PostTurnInvalidJobs"]
    assert model.requests == []
    logged = log.getvalue()
    assert "invalid post-turn job" in logged
    record = json.loads(logged.splitlines()[-1])
    assert all(isinstance(name, str) and " " not in name for name in record["fields"])  # names, not values
    assert "squats" not in logged and "Great session" not in logged  # never what the user or coach wrote


def test_a_job_record_runs_the_job(repos: dict[str, Any]) -> None:
    event = stream_event(outbox_image(job_payload(is_workout_log=True)))

    answer = process(event, deps_with(repos, ScriptedModel(workout_answer())))

    assert answer == {"batchItemFailures": []}
    (saved,) = repos["workouts"].recent_workouts(USER)
    assert saved.workout_id == workout_id_for("m1")


def test_a_job_that_fails_is_reported_by_its_sequence_number_and_the_rest_of_the_batch_runs(
    repos: dict[str, Any],
) -> None:
    failing = ModelUnavailable("throttled", cause="ThrottlingException")
    first = outbox_image(job_payload(is_workout_log=True))
    second = outbox_image(job_payload(is_workout_log=True, user_message_id="m3", ai_message_id="m4"), sk="POSTTURN#m3")
    invalid = outbox_image({"userId": USER}, sk="POSTTURN#m5")
    event = stream_event(first, second, invalid)

    answer = process(event, deps_with(repos, ScriptedModel(failing, workout_answer())))

    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["dynamodb"]["SequenceNumber"]}]}
    assert [w.workout_id for w in repos["workouts"].recent_workouts(USER)] == [workout_id_for("m3")]


def test_a_batch_whose_every_job_fails_is_still_a_partial_response(repos: dict[str, Any]) -> None:
    failing = ModelUnavailable("throttled", cause="ThrottlingException")
    second = outbox_image(job_payload(is_workout_log=True, user_message_id="m3"), sk="POSTTURN#m3")
    event = stream_event(outbox_image(job_payload(is_workout_log=True)), second)

    answer = process(event, deps_with(repos, ScriptedModel(failing, failing)))

    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
    assert answer == {"batchItemFailures": [{"itemIdentifier": n} for n in sequence_numbers]}
