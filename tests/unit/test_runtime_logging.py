"""Log records framed on the telemetry descriptor as the stock runtime frames them, plain lines without it.

The frames are decoded here from the layout awslambdaric 4.0.1 writes (big-endian type, length,
microsecond timestamp, payload), not with the runtime's own encoder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.runtime_python import find_python
from shared.runtime import log_records
from shared.runtime.log_frames import frame_type
from tests.fixtures.capture_runtime import CaptureRuntimeApi

REPO = Path(__file__).resolve().parents[2]
HEADER = struct.Struct(">IIQ")

# awslambdaric 4.0.1, lambda_runtime_log_utils: _TEXT_FRAME_TYPES and _JSON_FRAME_TYPES
TEXT_TYPES = {0: 0xA55A0003, 10: 0xA55A000B, 20: 0xA55A000F, 30: 0xA55A0013, 40: 0xA55A0017, 50: 0xA55A001B}
JSON_TYPES = {0: 0xA55A0002, 10: 0xA55A000A, 20: 0xA55A000E, 30: 0xA55A0012, 40: 0xA55A0016, 50: 0xA55A001A}


@dataclass(frozen=True)
class Frame:
    kind: int
    timestamp_us: int
    payload: str


def decode(data: bytes) -> list[Frame]:
    frames: list[Frame] = []
    offset = 0
    while offset < len(data):
        kind, length, timestamp_us = HEADER.unpack_from(data, offset)
        offset += HEADER.size
        payload = data[offset : offset + length]
        assert len(payload) == length, "a frame is cut short"
        offset += length
        frames.append(Frame(kind, timestamp_us, payload.decode("utf-8")))
    return frames


def drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = bytearray()
    while True:
        try:
            piece = os.read(fd, 65536)
        except BlockingIOError:
            return bytes(data)
        if not piece:
            return bytes(data)
        data += piece


def read_to_end(fd: int) -> bytes:
    data = bytearray()
    while piece := os.read(fd, 65536):
        data += piece
    return bytes(data)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own, standing for the root logger the bootstrap configures."""
    target = logging.getLogger(f"runtime-logging-{uuid.uuid4().hex}")
    target.propagate = False
    target.setLevel(logging.DEBUG)
    yield target
    for handler in list(target.handlers):
        target.removeHandler(handler)
    log_records.set_invocation("")


def inner_failure() -> None:
    raise ValueError("first line\nsecond line")


def outer_call() -> None:
    inner_failure()


def log_a_failure(logger: logging.Logger, **extra: object) -> None:
    try:
        outer_call()
    except ValueError:
        logger.exception("the handler failed for %s", "alice", extra=extra or None)


def test_a_traceback_is_one_text_frame_with_the_request_id(pipe, logger):
    read_end, write_end = pipe
    environ = {"_LAMBDA_TELEMETRY_LOG_FD": str(write_end)}
    log_records.install(environ, logger)
    assert "_LAMBDA_TELEMETRY_LOG_FD" not in environ
    log_records.set_invocation("req-7")
    before_us = time.time_ns() // 1000
    log_a_failure(logger)
    [frame] = decode(drain(read_end))
    assert frame.kind == TEXT_TYPES[logging.ERROR] == 0xA55A0017
    assert before_us <= frame.timestamp_us <= time.time_ns() // 1000
    first, *rest = frame.payload.split("\n")
    assert re.fullmatch(
        r"\[ERROR\]\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\treq-7\tthe handler failed for alice", first
    )
    assert rest[0] == "Traceback (most recent call last):"
    assert "in outer_call" in frame.payload and "in inner_failure" in frame.payload
    assert frame.payload.endswith("ValueError: first line\nsecond line")


def test_each_level_sets_its_bits_in_the_frame_type(pipe, logger):
    read_end, write_end = pipe
    log_records.install({"_LAMBDA_TELEMETRY_LOG_FD": str(write_end)}, logger)
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        logger.log(level, "at %s", level)
    frames = decode(drain(read_end))
    assert [frame.kind for frame in frames] == [TEXT_TYPES[level] for level in (10, 20, 30, 40, 50)]
    assert [frame.payload.split("\t")[0] for frame in frames] == [
        "[DEBUG]",
        "[INFO]",
        "[WARNING]",
        "[ERROR]",
        "[CRITICAL]",
    ]


def test_frame_types_match_the_stock_runtime_tables():
    for levelno, expected in TEXT_TYPES.items():
        assert frame_type(levelno, json_format=False) == expected
    for levelno, expected in JSON_TYPES.items():
        assert frame_type(levelno, json_format=True) == expected
    assert frame_type(5, json_format=False) == TEXT_TYPES[0]
    assert frame_type(25, json_format=True) == JSON_TYPES[20]
    assert frame_type(99, json_format=False) == TEXT_TYPES[50]


def test_json_format_is_one_object_per_frame_with_the_stock_fields(pipe, logger):
    read_end, write_end = pipe
    log_records.install({"_LAMBDA_TELEMETRY_LOG_FD": str(write_end), "AWS_LAMBDA_LOG_FORMAT": "JSON"}, logger)
    log_records.set_invocation("req-8", "tenant-1")
    log_a_failure(logger, turn=3)
    logger.info("plain")
    failure, plain = decode(drain(read_end))
    assert failure.kind == JSON_TYPES[logging.ERROR] and plain.kind == JSON_TYPES[logging.INFO]
    assert failure.payload.endswith("}\n") and failure.payload.count("\n") == 1
    document = json.loads(failure.payload)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document.pop("timestamp"))
    stack = document.pop("stackTrace")
    assert any("outer_call" in entry for entry in stack) and any("inner_failure" in entry for entry in stack)
    assert re.fullmatch(r".*test_runtime_logging\.py:log_a_failure:\d+", document.pop("location"))
    assert document == {
        "level": "ERROR",
        "message": "the handler failed for alice",
        "logger": logger.name,
        "errorType": "ValueError",
        "errorMessage": "first line\nsecond line",
        "requestId": "req-8",
        "tenantId": "tenant-1",
        "turn": 3,
    }
    plain_document = json.loads(plain.payload)
    assert set(plain_document) == {"timestamp", "level", "message", "logger", "requestId", "tenantId"}
    assert plain_document["level"] == "INFO"


@pytest.mark.parametrize(
    ("setting", "passes", "stopped"),
    [("WARN", logging.WARNING, logging.INFO), ("TRACE", logging.DEBUG, None), ("error", logging.ERROR, 30)],
)
def test_the_lambda_log_level_filters(pipe, logger, setting, passes, stopped):
    read_end, write_end = pipe
    logger.setLevel(logging.NOTSET)
    log_records.install({"_LAMBDA_TELEMETRY_LOG_FD": str(write_end), "AWS_LAMBDA_LOG_LEVEL": setting}, logger)
    logger.log(passes, "kept")
    if stopped is not None:
        logger.log(stopped, "dropped")
    assert [frame.payload.split("\t")[3] for frame in decode(drain(read_end))] == ["kept\n"]


def test_without_the_descriptor_records_are_plain_lines_on_stderr(logger, capsys):
    log_records.install({}, logger)
    log_records.set_invocation("req-9")
    logger.warning("one")
    log_a_failure(logger)
    logger.warning("two")
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert re.fullmatch(r"\[WARNING\]\t\S+Z\treq-9\tone", lines[0])
    assert lines[1].startswith("[ERROR]\t") and lines[2] == "Traceback (most recent call last):"
    assert lines[-2] == "second line" and lines[-1].endswith("\treq-9\ttwo")


def test_a_descriptor_that_is_not_open_falls_back_to_stderr(logger, capsys):
    handler = log_records.install({"_LAMBDA_TELEMETRY_LOG_FD": "987654"}, logger)
    assert isinstance(handler, log_records.LineHandler)
    assert "not an open descriptor" in capsys.readouterr().err


PROBE_HANDLER = textwrap.dedent(
    """
    import importlib.util
    import logging
    import os

    if importlib.util.find_spec("aws_lambda_powertools"):
        from aws_lambda_powertools import Logger

        powertools = Logger(service="probe")
    else:
        powertools = None


    def fails():
        raise KeyError("deep")


    def handler(event, context):
        print("printed\\nover two lines")
        if powertools:
            powertools.info("from powertools")
        try:
            fails()
        except KeyError:
            logging.getLogger("handler_code").exception("caught it")
        return {"fd": os.environ.get("_LAMBDA_TELEMETRY_LOG_FD")}
    """
)


def interpreters() -> list[object]:
    deployed = find_python("3.13")
    return [
        pytest.param(sys.executable, id="venv"),
        pytest.param(
            str(deployed.executable) if deployed else None,
            id="python3.13",
            marks=pytest.mark.skipif(deployed is None, reason="Python 3.13 is not installed"),
        ),
    ]


@pytest.mark.parametrize("interpreter", interpreters())
@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_the_bootstrap_frames_the_root_logger_and_leaves_stdout_alone(
    runtime: CaptureRuntimeApi, tmp_path, pipe, interpreter, log_format
):
    read_end, write_end = pipe
    (tmp_path / "log_probe.py").write_text(PROBE_HANDLER)
    runtime.events.append(("req-42", {}, {}))
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_LAMBDA_LOG")}
    env |= {
        "AWS_LAMBDA_RUNTIME_API": runtime.address,
        "_HANDLER": "log_probe.handler",
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "_LAMBDA_TELEMETRY_LOG_FD": str(write_end),
        "AWS_LAMBDA_LOG_FORMAT": log_format,
    }
    process = subprocess.Popen(
        [interpreter, "-u", "-m", "shared.runtime.bootstrap"],
        env=env,
        cwd=REPO,
        pass_fds=(write_end,),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    try:
        assert runtime.done.wait(30), "the invocation was never answered"
    finally:
        process.kill()
        stdout, stderr = process.communicate(timeout=10)
    frames = decode(read_to_end(read_end))
    assert json.loads(runtime.requests[-1].raw_body) == {"fd": None}, stderr.decode(errors="replace")
    [frame] = [frame for frame in frames if "caught it" in frame.payload]
    assert all("printed" not in f.payload and "from powertools" not in f.payload for f in frames)
    if log_format == "JSON":
        assert frame.kind == JSON_TYPES[logging.ERROR]
        document = json.loads(frame.payload)
        assert document["requestId"] == "req-42" and document["errorType"] == "KeyError"
        assert any("in fails" in entry for entry in document["stackTrace"])
    else:
        assert frame.kind == TEXT_TYPES[logging.ERROR]
        assert "\treq-42\tcaught it\nTraceback (most recent call last):\n" in frame.payload
        assert "in fails" in frame.payload and frame.payload.endswith("KeyError: 'deep'")
    assert b"printed\nover two lines\n" in stdout
    if interpreter == sys.executable:
        assert b'"message":"from powertools"' in stdout


def test_invocations_on_threads_each_log_their_own_request_id(logger, capsys):
    """Managed Instances on threads: a record carries the request id of the invocation that wrote it."""
    log_records.install({}, logger)
    both_set = threading.Barrier(2)

    def invocation(request_id: str) -> None:
        log_records.set_invocation(request_id)
        both_set.wait()  # the other invocation has set its own by now
        logger.warning("answered %s", request_id)

    threads = [threading.Thread(target=invocation, args=(f"req-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [line for line in capsys.readouterr().err.splitlines() if "answered" in line]
    assert sorted(line.split("\t")[2] + " " + line.split("\t")[3] for line in lines) == [
        "req-0 answered req-0",
        "req-1 answered req-1",
    ]
