"""The port for work that must happen after a response and must not delay it, and the jobs' base."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel


class JobQueue(ABC):
    @abstractmethod
    def submit(self, job: dict[str, Any]) -> None:
        """Hand `job` off for asynchronous processing; returns once it is durably accepted."""


class JobMessage(BaseModel):
    """A job as it travels (camelCase JSON); `kind` tells a worker it got the job it expects."""

    kind: str

    def log_keys(self) -> dict[str, str]:
        """The ids a worker's log lines carry for this job (never what the user wrote)."""
        raise NotImplementedError
