"""Stands in for the metrics sink (`observe(name, value)`): keeps every observation for the test."""

from __future__ import annotations

import threading


class RecordedMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.observed: list[tuple[str, float]] = []

    def __call__(self, name: str, value: float) -> None:
        with self._lock:
            self.observed.append((name, value))

    def values(self, name: str) -> list[float]:
        with self._lock:
            return [value for observed, value in self.observed if observed == name]
