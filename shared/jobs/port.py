"""The port for work that must happen after a response and must not delay it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class JobQueue(ABC):
    @abstractmethod
    def submit(self, job: dict[str, Any]) -> None:
        """Hand `job` off for asynchronous processing; returns once it is durably accepted."""
