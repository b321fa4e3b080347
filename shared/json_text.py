"""JSON inside model text: models like to wrap their JSON in prose or code fences."""

from __future__ import annotations

import json


def first_json_object(text: str) -> dict[str, object] | None:
    """The first `{...}` in `text` that parses as a JSON object."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None
