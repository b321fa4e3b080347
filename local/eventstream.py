"""Encoder for `application/vnd.amazon.eventstream` messages, the binary framing of Bedrock streams.

A message is: prelude (total length, headers length, CRC32 of those 8 bytes), headers (name length,
name, type 7 = string, value length, value), payload, then the CRC32 of everything before it.
Only string headers are written: they are all Bedrock's `:event-type`, `:exception-type`,
`:content-type` and `:message-type` ever use. botocore's own decoder checks every length and CRC.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32
from collections.abc import Mapping
from typing import Any

_STRING_HEADER = 7
_PRELUDE = struct.Struct("!II")
_CRC = struct.Struct("!I")


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One framed message, CRCs included."""
    header_bytes = b"".join(_encode_header(name, value) for name, value in headers.items())
    total_length = _PRELUDE.size + _CRC.size + len(header_bytes) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total_length, len(header_bytes))
    message = prelude + _CRC.pack(crc32(prelude)) + header_bytes + payload
    return message + _CRC.pack(crc32(message))


def event_message(event_type: str, body: Mapping[str, Any]) -> bytes:
    """A normal event, such as `contentBlockDelta`, with a JSON payload."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, _json(body))


def exception_message(exception_type: str, body: Mapping[str, Any]) -> bytes:
    """An in-stream error, such as `modelStreamErrorException`: botocore raises `EventStreamError`."""
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_message(headers, _json(body))


def _encode_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", _STRING_HEADER, len(raw_value)) + raw_value


def _json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
