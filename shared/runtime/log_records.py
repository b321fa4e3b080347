"""The root logger's output, formatted and routed as the stock Python runtime does it.

What awslambdaric 4.0.1 does (`bootstrap.run`, `_setup_logging`, `create_log_sink`), and so this:

- with `_LAMBDA_TELEMETRY_LOG_FD` set it pops the variable (the handler never sees it) and writes each
  root-logger record as one frame on that descriptor (`log_frames`); without it, plain text.
- `AWS_LAMBDA_LOG_FORMAT=JSON` makes a record one JSON object per line: timestamp, level, message,
  logger, requestId, tenantId when there is one, and for an exception stackTrace, errorType,
  errorMessage and location, plus any `extra` fields; None values are left out. Otherwise text:
  `[LEVEL]\\tTIMESTAMP\\tREQUEST_ID\\tmessage`, the traceback on the lines after.
- `AWS_LAMBDA_LOG_LEVEL` (TRACE read as DEBUG) sets the root logger's level; without it the level is
  left alone, so the root logger stays at WARNING as in any Python program.
- stdout and stderr are not framed: `print()` and Powertools' Logger (a StreamHandler on sys.stdout,
  one JSON line per record) reach Lambda as lines. The stock runtime only makes them unbuffered,
  which `exec-wrapper`'s `python -u` does.

Differences, on purpose: a text frame always carries its record's level (the stock runtime tags text
frames NOTSET unless AWS_LAMBDA_LOG_LEVEL is set, but tags its own error reports ERROR in any mode);
UTC timestamps are set on these formatters only, not on every `logging.Formatter`; without the
descriptor, records go to stderr (the stock runtime writes them to stdout); a field JSON cannot
encode is written as its `str`; the request id is the one of the invocation in progress, empty
before the first (the stock runtime keeps it in a global just the same).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any, TextIO

from shared.runtime.log_frames import FrameWriter, frame_type

TELEMETRY_FD_VARIABLE = "_LAMBDA_TELEMETRY_LOG_FD"
TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
TEXT_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
JSON_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_LAMBDA_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "FATAL": logging.CRITICAL,
    "CRITICAL": logging.CRITICAL,
}

_RESERVED = frozenset(
    {
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "aws_request_id",
        "tenant_id",
    }
)


_invocation: ContextVar[tuple[str, str | None]] = ContextVar("invocation", default=("", None))
"""The invocation in progress: its request id and tenant. A context variable, so that invocations served
at once on threads each log their own; a process serving one at a time sees the last one set."""


def set_invocation(request_id: str, tenant_id: str | None = None) -> None:
    _invocation.set((request_id, tenant_id))


def lambda_log_level(value: str | None) -> int | None:
    """The `logging` level an `AWS_LAMBDA_LOG_LEVEL` names, or None for none or an unknown one."""
    return _LAMBDA_LEVELS.get((value or "").strip().upper())


def _normal_level(levelno: int) -> int:
    return min(logging.CRITICAL, max(logging.NOTSET, levelno)) // 10 * 10


class _InvocationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id, record.tenant_id = _invocation.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TEXT_DATE_FORMAT)
        self.converter = time.gmtime


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(datefmt=JSON_DATE_FORMAT)
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        exc_info = record.exc_info
        error = exc_info[1] if exc_info else None
        document: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": logging.getLevelName(_normal_level(record.levelno)),
            "message": record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc_info[2]) if exc_info and error is not None else None,
            "errorType": type(error).__name__ if error is not None else None,
            "errorMessage": str(error) if error is not None else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if error is not None else None,
        }
        tenant_id = getattr(record, "tenant_id", None)
        if tenant_id is not None:
            document["tenantId"] = tenant_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in document:
                document[key] = value
        document = {key: value for key, value in document.items() if value is not None}
        return json.dumps(document, ensure_ascii=False, default=str) + "\n"


class FramedHandler(logging.Handler):
    """One record, one frame on the telemetry descriptor, tagged with its level and format."""

    def __init__(self, writer: FrameWriter, *, json_format: bool) -> None:
        super().__init__()
        self.writer = writer
        self.json_format = json_format

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write(self.format(record), frame_type(record.levelno, json_format=self.json_format))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class LineHandler(logging.StreamHandler[TextIO]):
    """Plain text for a terminal or `sam local`: the formats end their own lines."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.terminator = ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if text.endswith("\n") else text + "\n"


def _telemetry_fd(value: str | None) -> int | None:
    if not value:
        return None
    try:
        fd = int(value)
        os.fstat(fd)
    except (ValueError, OSError):
        return None
    return fd


def install(environ: MutableMapping[str, str], logger: logging.Logger | None = None) -> logging.Handler:
    """Give `logger` (the root logger by default) the stock runtime's handler, format and level.

    Call it before the handler module is imported, as the stock runtime does: a Powertools Logger
    filters the root logger's handlers present when it is created, so that its records (and those of
    any logger under its service name), which propagate, are not written a second time.
    """
    target = logger or logging.getLogger()
    raw_fd = environ.pop(TELEMETRY_FD_VARIABLE, None)
    fd = _telemetry_fd(raw_fd)
    json_format = environ.get("AWS_LAMBDA_LOG_FORMAT", "").strip().upper() == "JSON"
    handler: logging.Handler = (
        LineHandler(sys.stderr) if fd is None else FramedHandler(FrameWriter(fd), json_format=json_format)
    )
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    handler.addFilter(_InvocationFilter())
    level = lambda_log_level(environ.get("AWS_LAMBDA_LOG_LEVEL"))
    if level is not None:
        target.setLevel(level)
    target.addHandler(handler)
    if raw_fd and fd is None:
        target.warning("%s=%r is not an open descriptor; logging to stderr", TELEMETRY_FD_VARIABLE, raw_fd)
    return handler
