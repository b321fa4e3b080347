"""The work after a reply: log the workout, save the memory, refresh the summary.

The pipeline only describes the job; the post-turn function does it, idempotently (ids derive from
the message ids), so a retried job writes the same items again.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

from shared.jobs import JobMessage

SUMMARY_EVERY_MESSAGES = 10


class PostTurnJob(JobMessage):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    kind: Literal["coach-conversation-post-turn"] = "coach-conversation-post-turn"
    user_id: str
    coach_id: str
    conversation_id: str
    user_message_id: str
    ai_message_id: str
    user_text: str
    ai_text: str
    message_timestamp: str
    # None: the router had not answered when the reply was stored; the worker asks it itself
    is_workout_log: bool | None
    has_memory_to_save: bool | None
    message_count: int

    def log_keys(self) -> dict[str, str]:
        return {"user_id": self.user_id, "conversation_id": self.conversation_id}

    @property
    def wants_summary(self) -> bool:
        return self.message_count > 0 and self.message_count % SUMMARY_EVERY_MESSAGES < 2

    @property
    def routed(self) -> bool:
        return self.is_workout_log is not None and self.has_memory_to_save is not None

    @property
    def has_work(self) -> bool:
        return not self.routed or bool(self.is_workout_log or self.has_memory_to_save) or self.wants_summary
