"""Log frames on the telemetry descriptor Lambda hands the runtime in `_LAMBDA_TELEMETRY_LOG_FD`.

Lambda cuts a runtime's stdout and stderr into one log event per line; a frame on this descriptor is
one event whatever it holds, so a traceback stays whole. The layout is awslambdaric's (read at 4.0.1,
`bootstrap.FramedTelemetryLogSink` and `lambda_runtime_log_utils`), all big-endian:

    type: 4 bytes | payload length: 4 bytes | timestamp, microseconds since the epoch: 8 bytes | payload (UTF-8)

The type is 0xA55A0002 with the record's level in bits 2-4 (NOTSET 0, DEBUG 2, INFO 3, WARNING 4,
ERROR 5, CRITICAL 6; a level number is first floored to its tens and clamped to 0..50) and the format
in bit 0 (1 text, 0 JSON): 0xA55A0003 is a text frame with no level, 0xA55A0017 a text ERROR,
0xA55A0016 a JSON ERROR. This encoding reproduces awslambdaric's two twelve-entry tables exactly;
code 1 is unused there (presumably TRACE, which it maps to DEBUG).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time

FRAME_HEADER = struct.Struct(">IIQ")
LOG_FRAME_BASE = 0xA55A0002
TEXT_FORMAT_BIT = 0b1


def frame_type(levelno: int, *, json_format: bool) -> int:
    """The frame type of a record at `levelno`, as awslambdaric tags it."""
    tens = min(logging.CRITICAL, max(logging.NOTSET, levelno)) // 10
    level_code = tens + 1 if tens else 0
    return LOG_FRAME_BASE | level_code << 2 | (0 if json_format else TEXT_FORMAT_BIT)


def encode_frame(payload: bytes, kind: int, timestamp_us: int) -> bytes:
    return FRAME_HEADER.pack(kind, len(payload), timestamp_us) + payload


class FrameWriter:
    """Writes whole frames to the descriptor; a frame is never interleaved with another thread's."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def write(self, message: str, kind: int) -> None:
        frame = memoryview(encode_frame(message.encode("utf-8"), kind, time.time_ns() // 1000))
        with self._lock:
            while frame:
                frame = frame[os.write(self.fd, frame) :]
