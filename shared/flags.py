"""Feature flags from configuration: is streaming on, and for which share of users.

A user's bucket is a stable hash of their id, so the same user always gets the same answer and
raising the percentage only ever adds users.
"""

from __future__ import annotations

import hashlib
import os


def streaming_enabled() -> bool:
    return os.environ.get("STREAMING_ENABLED", "true").strip().lower() not in ("false", "0", "off", "no")


def streaming_percentage() -> int:
    try:
        value = int(os.environ.get("STREAMING_PERCENTAGE", "100"))
    except ValueError:
        return 100
    return min(100, max(0, value))


def user_bucket(user_id: str) -> int:
    """0..99, the same for a user forever."""
    return int.from_bytes(hashlib.sha256(user_id.encode("utf-8")).digest()[:4], "big") % 100


def use_streaming(user_id: str) -> bool:
    return streaming_enabled() and user_bucket(user_id) < streaming_percentage()
