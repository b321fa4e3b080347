"""Time and ids as the records store them: one place, so every store and flow stamps alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def now_iso() -> str:
    """UTC, millisecond precision, `Z`-suffixed: sorts as text in the order it happened."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex
