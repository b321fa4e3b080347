"""Request bodies of the coach API: JSON objects, bounded, validated by a pydantic model.

Messages are plain words naming the field (`title: must be at most 200 characters`), the same
wording as the streaming routes' bodies; no pydantic dump reaches the client.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, model_validator

from shared.errors import InvalidRequest
from shared.http.body import MAX_BODY_BYTES, describe_validation_error
from shared.http.errors import PayloadTooLarge

MAX_TITLE_CHARS = 200

M = TypeVar("M", bound=BaseModel)


class CreateConversationBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: Annotated[str, StringConstraints(strict=True, strip_whitespace=True, max_length=MAX_TITLE_CHARS)] = ""

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("title", "") is None:
            return {k: v for k, v in data.items() if k != "title"}
        return data


class CreateCreatorSessionBody(BaseModel):
    """Nothing to send yet; an empty body or `{}`, and unknown fields are refused like everywhere else."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def body_bytes(body: str | None, is_base64_encoded: bool) -> bytes:
    """The body as the client sent it: 413 over `MAX_BODY_BYTES`, 400 for broken base64."""
    if not body:
        return b""
    if len(body) > (4 * -(-MAX_BODY_BYTES // 3) if is_base64_encoded else MAX_BODY_BYTES):
        raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
    if not is_base64_encoded:
        data = body.encode("utf-8")
    else:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("request body is not valid base64") from None
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
    return data


def parse_optional_body(model: type[M], data: bytes) -> M:
    """`model` from a JSON object body; an empty body is an empty object (every field optional)."""
    if not data.strip():
        return _validate(model, {})
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("request body must be a JSON object")
    return _validate(model, value)


def _validate(model: type[M], payload: dict[str, Any]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None
