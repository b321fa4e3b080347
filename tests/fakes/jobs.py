"""A job queue that records what was handed off, or refuses like an unreachable queue would."""

from __future__ import annotations

import json
import threading
from typing import Any

from shared.jobs import JobQueue


class RecordingJobQueue(JobQueue):
    """`failure`, when set, is raised by every `submit` (the hand-off could not be made)."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.attempts = 0
        self._lock = threading.Lock()
        self._jobs: list[dict[str, Any]] = []

    @property
    def jobs(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._jobs)

    def submit(self, job: dict[str, Any]) -> None:
        with self._lock:
            self.attempts += 1
            if self.failure is not None:
                raise self.failure
            # the real queue sends JSON: a job that does not survive the trip must fail here too
            self._jobs.append(json.loads(json.dumps(job)))
