"""Feature flags from configuration: is streaming on, and for which share of users.

A user's bucket is a stable hash of their id, so the same user always gets the same answer and
raising the percentage only ever adds users.
"""

from __future__ import annotations

import hashlib

from shared.settings import FlagSettings, settings


def streaming_enabled() -> bool:
    return settings(FlagSettings).streaming_enabled


def streaming_percentage() -> int:
    return settings(FlagSettings).streaming_percentage


def user_bucket(user_id: str) -> int:
    """0..99, the same for a user forever."""
    return int.from_bytes(hashlib.sha256(user_id.encode("utf-8")).digest()[:4], "big") % 100


def use_streaming(user_id: str) -> bool:
    return streaming_enabled() and user_bucket(user_id) < streaming_percentage()
