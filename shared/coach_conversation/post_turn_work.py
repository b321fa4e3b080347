"""The post-turn work itself: log the workout, save memories, refresh the summary.

Runs in its own function, off the reply's path, under Lambda's async retries. Every write is
idempotent (ids derive from the user message id; the summary only moves forward), so a retried job
writes the same items again. A model failure raises, so the job is retried; an answer that is not
the JSON asked for is logged and skipped, since asking again would not fix it reliably.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from shared.coach_conversation.post_turn import PostTurnJob
from shared.coach_conversation.router import decide_route
from shared.json_text import first_json_object
from shared.models import Message, ModelDependencies, ModelRequest, SystemPrompt
from shared.store.ports import ConversationRepository, MemoryRepository, WorkoutRepository
from shared.store.records import ChatMessage, Conversation, Memory, Workout

logger = logging.getLogger(__name__)

_T = TypeVar("_T", bound=BaseModel)

MAX_MEMORIES = 3
MAX_MEMORY_CHARS = 300
MAX_EXERCISES = 30
SUMMARY_MAX_WORDS = 120
SUMMARY_MESSAGES = 40  # the newest messages read for a summary; older ones live in the previous summary
SUMMARY_MESSAGE_CHARS = 2000
BACKDATE_DAYS = 31  # a logged workout may be dated this far before the message, no further
EXISTING_WORKOUTS_SCAN = 25

WORKOUT_PROMPT = """You turn an athlete's message about a workout they did into a log entry.
Answer with a single JSON object and nothing else:
{"performedOn": "YYYY-MM-DD", "summary": "one short sentence",
 "exercises": [{"name": str, "sets": int|null, "reps": int|null, "weight": number|null,
   "unit": "kg"|"lb"|null, "distance": number|null, "duration": str|null}]}
- performedOn: the day the workout happened; resolve words like "yesterday" against the message date.
- Only include exercises the athlete actually reported; never invent numbers."""

MEMORY_PROMPT = f"""You pick out lasting facts an athlete told their coach, worth remembering for \
later conversations: injuries, goals, schedule, equipment, preferences.
Answer with a single JSON object and nothing else: {{"memories": ["short fact", ...]}}
- At most {MAX_MEMORIES} facts, each one short sentence in the third person ("Has a sore left knee.").
- No facts about this one workout or this one day; an empty list if nothing lasts."""

SUMMARY_PROMPT = f"""You summarize a conversation between an athlete and their fitness coach, \
for the coach to read before the next reply.
Write at most {SUMMARY_MAX_WORDS} words of plain prose: the athlete's goals, situation, what was \
agreed, and open questions. Build on the previous summary when one is given. No preamble."""


@dataclass(frozen=True, kw_only=True)
class PostTurnDependencies(ModelDependencies):
    """The ports the job talks to; tests swap adapters, never monkeypatch."""

    conversations: ConversationRepository
    memories: MemoryRepository
    workouts: WorkoutRepository


@dataclass
class PostTurnReport:
    """What a run did, for the log line and the tests."""

    workout_id: str | None = None
    memory_ids: list[str] = field(default_factory=list)
    summarized_through: int | None = None
    skipped: list[str] = field(default_factory=list)

    def api(self) -> dict[str, Any]:
        return {
            "workoutId": self.workout_id,
            "memoryIds": self.memory_ids,
            "summarizedThrough": self.summarized_through,
            "skipped": self.skipped,
        }


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class ExerciseEntry(_Answer):
    name: str
    sets: int | None = None
    reps: int | str | None = None  # "8-10" and "AMRAP" happen
    weight: float | str | None = None
    unit: str | None = None
    distance: float | str | None = None
    duration: str | float | None = None

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an exercise needs a name")
        return value.strip()


class WorkoutAnswer(_Answer):
    performed_on: str | None = None
    summary: str = ""
    exercises: list[Any] = []


class MemoryAnswer(_Answer):
    memories: list[Any] = []


def workout_id_for(message_id: str) -> str:
    return f"wo-{message_id}"


def memory_id_for(message_id: str, index: int) -> str:
    return f"mem-{message_id}-{index}"


def run_post_turn(job: PostTurnJob, deps: PostTurnDependencies) -> PostTurnReport:
    """Do every task the job asks for; raise the first failure after trying them all.

    One failing task does not stop the others on this attempt; the retry then redoes all of them,
    which the idempotent writes allow.
    """
    report = PostTurnReport()
    if not job.routed:  # the turn stored its reply before the router answered: ask it here
        route = decide_route(deps.model, deps.model_settings.side_model_id, job.user_text)
        job = job.model_copy(
            update={"is_workout_log": route.is_workout_log, "has_memory_to_save": route.has_memory_to_save}
        )
    tasks: list[tuple[str, Callable[[PostTurnJob, PostTurnDependencies, PostTurnReport], None]]] = []
    if job.is_workout_log:
        tasks.append(("workout", log_workout))
    if job.has_memory_to_save:
        tasks.append(("memories", save_memories))
    if job.wants_summary:
        tasks.append(("summary", refresh_summary))
    failures: list[Exception] = []
    for name, task in tasks:
        try:
            task(job, deps, report)
        except Exception as exc:
            logger.exception("post-turn %s failed; the job will be retried", name)
            deps.observe("PostTurnTaskFailures", 1)
            failures.append(exc)
    if failures:
        raise failures[0]
    return report


def log_workout(job: PostTurnJob, deps: PostTurnDependencies, report: PostTurnReport) -> None:
    message_day = _message_date(job.message_timestamp)
    text = _ask(
        deps,
        WORKOUT_PROMPT,
        f"Message date: {message_day.isoformat()}\nThe athlete wrote:\n{job.user_text}",
        max_tokens=800,
    )
    answer = _parse(text, WorkoutAnswer, "workout")
    if answer is None:
        report.skipped.append("workout")
        return
    exercises = _exercises(answer.exercises)
    if not exercises and not answer.summary.strip():
        logger.warning("workout answer had neither a summary nor exercises; nothing logged")
        report.skipped.append("workout")
        return
    workout_id = workout_id_for(job.user_message_id)
    workout = Workout(
        workout_id=workout_id,
        coach_id=job.coach_id,
        conversation_id=job.conversation_id,
        performed_on=_stored_date(job, deps, workout_id) or _performed_on(answer.performed_on, message_day),
        summary=answer.summary.strip()[:500],
        exercises=exercises,
        source_message_id=job.user_message_id,
        created_at=job.message_timestamp,
    )
    deps.workouts.save_workout(job.user_id, workout)
    deps.observe("WorkoutsLogged", 1)
    report.workout_id = workout_id


def save_memories(job: PostTurnJob, deps: PostTurnDependencies, report: PostTurnReport) -> None:
    text = _ask(deps, MEMORY_PROMPT, f"The athlete wrote:\n{job.user_text}", max_tokens=300)
    answer = _parse(text, MemoryAnswer, "memory")
    if answer is None:
        report.skipped.append("memories")
        return
    texts = (m.strip()[:MAX_MEMORY_CHARS] for m in answer.memories if isinstance(m, str))
    facts = list(dict.fromkeys(text for text in texts if text))
    for index, fact in enumerate(facts[:MAX_MEMORIES]):
        memory = Memory(
            memory_id=memory_id_for(job.user_message_id, index),
            coach_id=job.coach_id,
            content=fact,
            created_at=job.message_timestamp,
            source_message_id=job.user_message_id,
        )
        deps.memories.save_memory(job.user_id, memory)
        report.memory_ids.append(memory.memory_id)
    deps.observe("MemoriesSaved", len(report.memory_ids))


def refresh_summary(job: PostTurnJob, deps: PostTurnDependencies, report: PostTurnReport) -> None:
    conversation = deps.conversations.get_conversation(job.user_id, job.coach_id, job.conversation_id)
    if conversation is None:
        logger.info("conversation is gone; no summary")
        report.skipped.append("summary")
        return
    if conversation.summarized_through >= job.message_count:
        logger.info("summary already covers %d messages", conversation.summarized_through)
        report.skipped.append("summary")
        return
    messages = deps.conversations.list_messages(job.user_id, job.conversation_id, limit=SUMMARY_MESSAGES)
    if not messages:
        report.skipped.append("summary")
        return
    summary = _words(_ask(deps, SUMMARY_PROMPT, _transcript(conversation, messages), max_tokens=400))
    if not summary:
        logger.warning("summary answer was empty; skipped")
        report.skipped.append("summary")
        return
    deps.conversations.save_summary(conversation, summary, through=job.message_count)
    deps.observe("SummariesSaved", 1)
    report.summarized_through = job.message_count


def _ask(deps: PostTurnDependencies, system: str, text: str, *, max_tokens: int) -> str:
    """One side-model call; a `ModelError` propagates so the async invocation is retried."""
    request = ModelRequest(
        model_id=deps.model_settings.side_model_id,
        messages=(Message(role="user", text=text),),
        system=SystemPrompt(static=system, cache=False),
        max_tokens=max_tokens,
        temperature=0.0,
    )
    return deps.model.converse(request).text


def _parse(text: str, schema: type[_T], task: str) -> _T | None:
    found = first_json_object(text)
    if found is None:
        logger.warning("%s answer held no JSON object; skipped", task)
        return None
    try:
        return schema.model_validate(found)
    except ValidationError as exc:
        logger.warning("%s answer did not fit the schema (%d errors); skipped", task, exc.error_count())
        return None


def _exercises(raw: list[Any]) -> list[dict[str, Any]]:
    """Keep each exercise that validates; one malformed entry does not lose the others."""
    kept: list[dict[str, Any]] = []
    for item in raw[:MAX_EXERCISES]:
        try:
            entry = ExerciseEntry.model_validate(item)
        except ValidationError:
            logger.info("dropped an exercise that did not fit the schema")
            continue
        kept.append(entry.model_dump(exclude_none=True))
    return kept


def _message_date(timestamp: str) -> date:
    """The day in the athlete's own time zone, as the message carried it."""
    try:
        return datetime.fromisoformat(timestamp).date()
    except ValueError:
        return datetime.now(UTC).date()


def _performed_on(answered: str | None, message_day: date) -> str:
    """The model's date if it is plausible (not after the message, not long before), else the message's."""
    try:
        day = date.fromisoformat((answered or "").strip())
    except ValueError:
        return message_day.isoformat()
    if message_day - timedelta(days=BACKDATE_DAYS) <= day <= message_day:
        return day.isoformat()
    return message_day.isoformat()


def _stored_date(job: PostTurnJob, deps: PostTurnDependencies, workout_id: str) -> str | None:
    """A retry keeps the first attempt's date: the date is part of the key, so a new one would duplicate."""
    for workout in deps.workouts.recent_workouts(job.user_id, limit=EXISTING_WORKOUTS_SCAN):
        if workout.workout_id == workout_id:
            return workout.performed_on
    return None


def _transcript(conversation: Conversation, messages: list[ChatMessage]) -> str:
    parts = []
    if conversation.summary:
        parts.append(f"Previous summary:\n{conversation.summary}\n")
    parts.append("Conversation (oldest first):")
    for message in messages:
        speaker = "Athlete" if message.role == "user" else "Coach"
        parts.append(f"{speaker}: {message.content[:SUMMARY_MESSAGE_CHARS]}")
    return "\n".join(parts)


def _words(text: str) -> str:
    words = re.sub(r"\s+", " ", text).strip().split(" ")
    return " ".join(words[:SUMMARY_MAX_WORDS]).strip()
