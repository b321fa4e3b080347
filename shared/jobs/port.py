"""The port for work that must happen after a response and must not delay it, and the jobs' base."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict


class JobQueue(ABC):
    @abstractmethod
    def submit(self, job: dict[str, Any]) -> None:
        """Hand `job` off for asynchronous processing; returns once it is durably accepted."""


class JobMessage(BaseModel):
    """A job as it travels (camelCase JSON); `kind` tells a worker it got the job it expects.

    Its validator is built on first use (`defer_build`, inherited by every job): a turn makes its job
    only after its reply has streamed, and a worker reads one only in an invocation. So the streaming
    functions, which import the job to make it, build none at cold start.
    """

    model_config = ConfigDict(defer_build=True)

    kind: str

    def log_keys(self) -> dict[str, str]:
        """The ids a worker's log lines carry for this job (never what the user wrote)."""
        raise NotImplementedError
