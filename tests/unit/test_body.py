"""The streaming request body: size, decoding, field rules with readable messages, image prefixes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import Forbidden, InvalidRequest
from shared.http.body import MAX_BODY_BYTES, StreamRequestBody, is_key_under_user_prefix, parse_stream_body
from shared.http.errors import PayloadTooLarge, Problem
from shared.http.event import HttpRequest, parse_http_event
from tests.fixtures.events import function_url_event

USER = "u-1"
PATH = f"/users/{USER}/coach-creator-sessions/s/stream"


def request(body: str | None, *, is_base64: bool = False) -> HttpRequest:
    return HttpRequest(
        method="POST",
        path=PATH,
        headers={"content-type": "application/json"},
        query={},
        raw_body=body,
        is_base64_encoded=is_base64,
        request_id="req-1",
        source_ip="127.0.0.1",
    )


def parse(payload: object, user_id: str = USER) -> StreamRequestBody:
    return parse_stream_body(request(json.dumps(payload)), user_id)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def padded_json(size: int) -> str:
    """A valid body of exactly `size` bytes."""
    base = '{"userResponse": "hi"}'
    return base[:-1] + " " * (size - len(base)) + "}"


# --- valid bodies -------------------------------------------------------------------------------


def test_minimal_body_gets_defaults():
    before = datetime.now(UTC)
    body = parse({"userResponse": "  Squats today?  "})

    assert body.user_response == "Squats today?"
    assert body.client_message_id is None
    assert body.image_s3_keys == ()
    assert body.message_timestamp.utcoffset() == timedelta(0)
    assert before <= body.message_timestamp <= datetime.now(UTC)


def test_full_body_through_a_function_url_event():
    payload = {
        "userResponse": "hi",
        "messageTimestamp": "2026-01-02T03:04:05.678+02:00",
        "clientMessageId": "msg_01-A",
        "imageS3Keys": [f"user-uploads/{USER}/a.png", f"user-uploads/{USER}/2026/b c.jpg"],
    }
    event = function_url_event(path=PATH, body=json.dumps(payload))

    body = parse_stream_body(parse_http_event(event), USER)

    assert body.message_timestamp == datetime(2026, 1, 2, 1, 4, 5, 678000, tzinfo=UTC)
    assert body.message_timestamp.utcoffset() == timedelta(hours=2)  # the client's offset is kept
    assert body.client_message_id == "msg_01-A"
    assert body.image_s3_keys == tuple(payload["imageS3Keys"])


def test_base64_body_is_decoded():
    body = parse_stream_body(request(b64('{"userResponse": "caf\u00e9 \u2615"}'), is_base64=True), USER)
    assert body.user_response == "caf\u00e9 \u2615"


@pytest.mark.parametrize("stamp", ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00", "2026-01-02 03:04-05:30"])
def test_aware_timestamps_are_accepted(stamp):
    assert parse({"userResponse": "hi", "messageTimestamp": stamp}).message_timestamp.tzinfo is not None


def test_null_optional_fields_mean_absent():
    body = parse({"userResponse": "hi", "messageTimestamp": None, "clientMessageId": None, "imageS3Keys": None})
    assert (body.client_message_id, body.image_s3_keys) == (None, ())
    assert body.message_timestamp.tzinfo is not None


@pytest.mark.parametrize("text", ["x" * 10_000, " " * 50 + "x" * 10_000 + "\n" * 50, "\u00e9" * 10_000])
def test_user_response_limit_counts_characters_after_trimming(text):
    assert len(parse({"userResponse": text}).user_response) == 10_000


def test_five_images_are_allowed():
    keys = [f"user-uploads/{USER}/{i}.png" for i in range(5)]
    assert len(parse({"userResponse": "hi", "imageS3Keys": keys}).image_s3_keys) == 5


def test_model_is_frozen():
    body = parse({"userResponse": "hi"})
    with pytest.raises(ValueError, match="frozen"):
        body.user_response = "changed"


# --- size -------------------------------------------------------------------------------------------


def test_exactly_64_kib_is_accepted():
    assert parse_stream_body(request(padded_json(MAX_BODY_BYTES)), USER).user_response == "hi"
    as_b64 = request(b64(padded_json(MAX_BODY_BYTES)), is_base64=True)
    assert parse_stream_body(as_b64, USER).user_response == "hi"


@pytest.mark.parametrize(
    "make",
    [
        lambda: request(padded_json(MAX_BODY_BYTES + 1)),
        lambda: request(b64(padded_json(MAX_BODY_BYTES + 1)), is_base64=True),
        lambda: request('{"userResponse": "' + "\u00e9" * (MAX_BODY_BYTES // 2) + '"}'),  # bytes, not chars
        lambda: request("A" * 10_000_000, is_base64=True),  # refused before decoding
        lambda: request("not json" * 10_000),  # refused before parsing
    ],
    ids=["plain", "base64", "multibyte", "huge-base64", "huge-not-json"],
)
def test_over_64_kib_is_413(make):
    with pytest.raises(PayloadTooLarge) as caught:
        parse_stream_body(make(), USER)
    assert Problem.of(caught.value).status == 413


def test_huge_base64_body_is_refused_without_decoding(monkeypatch):
    req = request("A" * (MAX_BODY_BYTES * 2), is_base64=True)
    monkeypatch.setattr(base64, "b64decode", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(PayloadTooLarge):
        parse_stream_body(req, USER)


# --- 400 with field-naming messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "request body is empty; expected a JSON object"),
        ("  ", "request body is empty; expected a JSON object"),
        ("userResponse=hi", "request body is not valid JSON"),
        ('{"userResponse": "hi"', "request body is not valid JSON"),
        ('{"userResponse": NaN}', "request body is not valid JSON"),
        ("[" * 50_000, "request body is not valid JSON"),
        ('[{"userResponse": "hi"}]', "request body must be a JSON object, not an array"),
        ('"hi"', "request body must be a JSON object, not a string"),
        ("null", "request body must be a JSON object, not null"),
        ("42", "request body must be a JSON object, not a number"),
    ],
)
def test_malformed_bodies_are_400(raw, message):
    with pytest.raises(InvalidRequest) as caught:
        parse_stream_body(request(raw), USER)
    assert Problem.of(caught.value).status == 400
    assert Problem.of(caught.value).code == "VALIDATION_ERROR"
    assert caught.value.message == message


def test_invalid_utf8_is_400():
    with pytest.raises(InvalidRequest, match="not valid UTF-8"):
        parse_stream_body(request(b64(b'{"userResponse": "\xff"}'), is_base64=True), USER)


def test_broken_base64_is_400():
    with pytest.raises(InvalidRequest, match="base64"):
        parse_stream_body(request("%%%not-base64", is_base64=True), USER)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"userResponse": None}, "userResponse: must be a string"),
        ({"userResponse": 5}, "userResponse: must be a string"),
        ({"userResponse": ""}, "userResponse: must not be empty"),
        ({"userResponse": " \n\t "}, "userResponse: must not be empty"),
        ({"userResponse": "x" * 10_001}, "userResponse: must be at most 10,000 characters"),
        ({"foo": 1}, "unknown field 'foo'"),
        ({"user_response": "hi"}, "unknown field 'user_response'"),
        (
            {"messageTimestamp": "2026-01-02T03:04:05"},
            "messageTimestamp: must include a time zone (e.g. 'Z' or '+02:00')",
        ),
        (
            {"messageTimestamp": "2026-01-02"},
            "messageTimestamp: must include a time zone (e.g. 'Z' or '+02:00')",
        ),
        ({"messageTimestamp": "yesterday"}, "messageTimestamp: is not a valid ISO-8601 date and time"),
        ({"messageTimestamp": 1767322800}, "messageTimestamp: must be an ISO-8601 string with a time zone"),
        ({"clientMessageId": ""}, "clientMessageId: must not be empty"),
        ({"clientMessageId": "a b"}, "clientMessageId: may contain only letters, digits, '_' and '-'"),
        ({"clientMessageId": "a.b"}, "clientMessageId: may contain only letters, digits, '_' and '-'"),
        ({"clientMessageId": "a" * 65}, "clientMessageId: must be at most 64 characters"),
        ({"clientMessageId": 7}, "clientMessageId: must be a string"),
        (
            {"imageS3Keys": [f"user-uploads/{USER}/{i}.png" for i in range(6)]},
            "imageS3Keys: must have at most 5 items",
        ),
        ({"imageS3Keys": f"user-uploads/{USER}/a.png"}, "imageS3Keys: must be a list"),
        ({"imageS3Keys": [f"user-uploads/{USER}/a.png", 3]}, "imageS3Keys[1]: must be a string"),
        ({"imageS3Keys": [""]}, "imageS3Keys[0]: must not be empty"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(extra, message):
    with pytest.raises(InvalidRequest) as caught:
        parse({"userResponse": "hi", **extra})
    assert caught.value.message == message


def test_missing_user_response_is_400():
    with pytest.raises(InvalidRequest) as caught:
        parse({"clientMessageId": "m1"})
    assert caught.value.message == "userResponse: is required"


def test_several_problems_are_reported_together_and_capped():
    with pytest.raises(InvalidRequest) as caught:
        parse({f"f{i}": i for i in range(20)})
    message = caught.value.message
    assert message.startswith("userResponse: is required; unknown field 'f0'")
    assert message.endswith("and 16 more problems")
    assert "pydantic" not in message
    assert "input" not in message.lower()


# --- image prefix: 403 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "user-uploads/u-2/a.png",  # someone else's
        "user-uploads/u-10/a.png",  # a longer id with ours as prefix
        "user-uploads/u-/a.png",
        "user-uploads/u-1",  # the prefix itself, no object name
        "user-uploads/u-1/",
        "/user-uploads/u-1/a.png",  # leading slash
        "user-uploads//u-1/a.png",  # empty segment
        "user-uploads/u-1//a.png",
        "user-uploads/u-1/../u-2/a.png",  # traversal
        "user-uploads/u-1/x/../../u-2/a.png",
        "user-uploads/u-1/./a.png",
        "user-uploads/u-1/..",
        "user-uploads/u-1\\..\\u-2\\a.png",
        "user-uploads/u-1/a.png\nuser-uploads/u-2/b.png",
        "USER-UPLOADS/u-1/a.png",
        "other/u-1/a.png",
        "u-1/a.png",
    ],
)
def test_keys_outside_the_users_prefix_are_403(key):
    keys = [f"user-uploads/{USER}/ok.png", key]
    with pytest.raises(Forbidden) as caught:
        parse({"userResponse": "hi", "imageS3Keys": keys})
    assert Problem.of(caught.value).status == 403
    assert caught.value.message.startswith("imageS3Keys[1]: must lie under 'user-uploads/u-1/'")


def test_prefix_is_the_given_user_not_the_key_owner():
    key = "user-uploads/u-2/a.png"
    assert parse({"userResponse": "hi", "imageS3Keys": [key]}, user_id="u-2").image_s3_keys == (key,)
    with pytest.raises(Forbidden):
        parse({"userResponse": "hi", "imageS3Keys": [key]}, user_id="u-1")


@pytest.mark.parametrize(
    ("key", "user_id", "ok"),
    [
        ("user-uploads/u-1/a/b/c.png", "u-1", True),
        ("user-uploads/u-1/..a.png", "u-1", True),  # dots inside a name are fine
        ("user-uploads/u/1/a.png", "u/1", False),  # a user id with '/' never matches one segment
        ("user-uploads//a.png", "", False),
    ],
)
def test_prefix_rule_is_segment_by_segment(key, user_id, ok):
    assert is_key_under_user_prefix(key, user_id) is ok


def test_validation_errors_come_before_the_prefix_rule():
    with pytest.raises(InvalidRequest):
        parse({"userResponse": "", "imageS3Keys": ["user-uploads/u-2/a.png"]})


def test_default_timestamp_is_aware_utc_and_fresh_per_request():
    first = parse({"userResponse": "hi"}).message_timestamp
    second = parse({"userResponse": "hi"}).message_timestamp
    assert first.tzinfo is not None
    assert first.utcoffset() == timedelta(0)
    assert first.tzinfo == UTC
    assert second >= first
