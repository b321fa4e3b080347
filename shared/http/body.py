"""The request body of the two streaming routes (CONTRACT.md section 1), parsed and bounded.

Order matters: size before decoding, decoding before JSON, JSON before the model, the model before
the image prefix rule. Each step refuses cheaply what the next one should never have to see.
Every failure is a typed `CoachError` whose message a person can read: no pydantic dump reaches
the client.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.errors import Forbidden, InvalidRequest
from shared.http.errors import PayloadTooLarge
from shared.http.event import HttpRequest
from shared.images import IMAGE_PREFIX, is_key_under_user_prefix

MAX_BODY_BYTES = 64 * 1024
MAX_USER_RESPONSE_CHARS = 10_000
MAX_IMAGES = 5
MAX_IMAGE_KEY_CHARS = 1024  # S3's own limit on a key
# Base64 of MAX_BODY_BYTES bytes; `b64decode(validate=True)` refuses whitespace, so nothing longer
# can decode to an acceptable body.
_MAX_BASE64_CHARS = 4 * -(-MAX_BODY_BYTES // 3)
_MAX_REPORTED_ERRORS = 5

UserResponse = Annotated[
    str,
    StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=MAX_USER_RESPONSE_CHARS),
]
ClientMessageId = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
ImageKey = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_IMAGE_KEY_CHARS)]

_OPTIONAL_FIELDS = ("messageTimestamp", "clientMessageId", "imageS3Keys")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StreamRequestBody(BaseModel):
    """What a client may send to a streaming route; unknown fields are refused, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_response: UserResponse = Field(alias="userResponse")
    message_timestamp: datetime = Field(alias="messageTimestamp", default_factory=_utc_now)
    client_message_id: ClientMessageId | None = Field(alias="clientMessageId", default=None)
    image_s3_keys: tuple[ImageKey, ...] = Field(alias="imageS3Keys", default=(), max_length=MAX_IMAGES)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        """JavaScript clients send `null` for "not given"; treat it as absent for optional fields."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (k in _OPTIONAL_FIELDS and v is None)}
        return data

    @field_validator("message_timestamp", mode="before")
    @classmethod
    def _aware_iso_8601(cls, value: Any) -> Any:
        """Only an ISO-8601 string with a zone: a naive time is ambiguous, a number is not ISO-8601."""
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value  # the default, or a model built in code
        if not isinstance(value, str):
            raise PydanticCustomError("timestamp_type", "must be an ISO-8601 string with a time zone")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("timestamp_format", "is not a valid ISO-8601 date and time") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise PydanticCustomError("timestamp_naive", "must include a time zone (e.g. 'Z' or '+02:00')")
        return parsed

    def image_keys_for(self, user_id: str) -> tuple[str, ...]:
        """The image keys, each checked to lie under the user's prefix (else `Forbidden`)."""
        for index, key in enumerate(self.image_s3_keys):
            if not is_key_under_user_prefix(key, user_id):
                raise Forbidden(f"imageS3Keys[{index}]: must lie under '{IMAGE_PREFIX}/{user_id}/'")
        return self.image_s3_keys


def parse_stream_body(request: HttpRequest, user_id: str) -> StreamRequestBody:
    """The validated body of a streaming request for the path's (already authorized) `user_id`.

    400 for anything malformed, 413 over `MAX_BODY_BYTES` (measured on the decoded bytes, with a
    cheap check on the raw length first so a huge base64 body is never decoded), 403 for an image
    key outside `user-uploads/{user_id}/`.
    """
    raw = request.raw_body or ""
    if len(raw) > (_MAX_BASE64_CHARS if request.is_base64_encoded else MAX_BODY_BYTES):
        raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
    data = request.body_bytes()
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is over {MAX_BODY_BYTES} bytes")
    body = _validate(_json_object(data))
    body.image_keys_for(user_id)
    return body


def _json_object(data: bytes) -> dict[str, Any]:
    if not data.strip():
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {_json_kind(value)}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _validate(payload: dict[str, Any]) -> StreamRequestBody:
    try:
        return StreamRequestBody.model_validate(payload)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Plain words, one clause per problem, naming the field: "userResponse: must not be empty"."""
    errors = exc.errors(include_url=False, include_input=False)
    clauses = [_describe(error) for error in errors[:_MAX_REPORTED_ERRORS]]
    if len(errors) > _MAX_REPORTED_ERRORS:
        clauses.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more problems")
    return "; ".join(clauses)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(error: Any) -> str:
    kind: str = error["type"]
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        return f"unknown field '{name[:64]}{'...' if len(name) > 64 else ''}'"
    return f"{_location(tuple(error['loc']))}: {_problem(kind, error.get('ctx') or {}, error['msg'])}"


def _problem(kind: str, ctx: dict[str, Any], fallback: str) -> str:
    """Our wording for the error kinds these fields can produce; our own validators word theirs."""
    if kind == "missing":
        return "is required"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_too_short":
        low = ctx.get("min_length", 1)
        return "must not be empty" if low == 1 else f"must be at least {low:,} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length', 0):,} characters"
    if kind == "string_pattern_mismatch":
        return "may contain only letters, digits, '_' and '-'"
    if kind in ("tuple_type", "list_type"):
        return "must be a list"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length', 0):,} items"
    return fallback
