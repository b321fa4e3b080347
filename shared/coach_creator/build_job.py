"""The job an interview's last answer hands off: build the session's coach (`coach_builder` does the work).

Apart from the builder so that the interview's functions, which only make the job, import none of the
builder's prompt, draft model and model plumbing at cold start.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

from shared.jobs import JobMessage

JOB_KIND = "build-coach-from-session"


class BuildCoachJob(JobMessage):
    """What the interview hands to the builder function (camelCase on the wire)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    kind: Literal["build-coach-from-session"] = JOB_KIND
    user_id: str
    session_id: str

    def log_keys(self) -> dict[str, str]:
        return {"user_id": self.user_id, "session_id": self.session_id}
