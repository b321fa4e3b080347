"""Uploaded images: where a user's uploads live, and which bytes are an image the model takes.

Both the request validation (a key outside the user's prefix is refused before anything happens)
and the image source (which checks again before reading) use this one rule.
"""

from __future__ import annotations

IMAGE_PREFIX = "user-uploads"
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def image_format(data: bytes) -> str | None:
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def is_key_under_user_prefix(key: str, user_id: str) -> bool:
    """True only for `user-uploads/{user_id}/<name>[/...]` with no empty, `.` or `..` segment.

    The key is judged segment by segment rather than by `startswith`, so `../`, a leading `/`,
    `//` and a user id that is a prefix of another (`u1` vs `u10`) cannot slip through, whatever
    a later consumer does to normalize the key. Backslashes and control characters are refused
    too: some tools treat them as separators or mangle them.
    """
    if "\\" in key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        return False
    segments = key.split("/")
    if len(segments) < 3 or any(s in ("", ".", "..") for s in segments):
        return False
    return segments[0] == IMAGE_PREFIX and segments[1] == user_id
