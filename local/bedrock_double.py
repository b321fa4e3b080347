"""A fake Bedrock Runtime over real HTTP, so botocore's real parser runs in tests and in `make dev`.

It serves `POST /model/{modelId}/converse-stream` (chunked `application/vnd.amazon.eventstream`,
one HTTP chunk per event, written the moment it exists) and `POST /model/{modelId}/converse`
(JSON). boto3 reaches it through `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`. moto mocks neither call.

What it answers is a `Script` of steps: text pieces with delays, stalls, gates a test opens, an
HTTP error before the stream, an exception event, a cut connection, or a missing `messageStop`.
Tests queue scripts (or responders choosing one from the request); with none queued it plays
`CoachResponder`, a paced, coach-like reply built from the user's own words. Every request is
recorded, parsed, so tests can assert prompts, cache points and images.

Standalone: `python -m local.bedrock_double --port 3010 [--speed 2]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import re
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from local.eventstream import event_message, exception_message
from local.quiet_server import QuietServer

if TYPE_CHECKING:
    from local.iam_gate import Answer, IamGate

logger = logging.getLogger("local.bedrock_double")

_PATH = re.compile(r"/model/(?P<model>[^/]+)/(?P<operation>converse-stream|converse)")
_ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"

# The HTTP status Bedrock uses for each error, for `converse`, which has no in-stream exceptions.
EXCEPTION_STATUS = {
    "validationException": 400,
    "throttlingException": 429,
    "modelStreamErrorException": 424,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}


# --- script steps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A `contentBlockDelta`, written `delay` seconds after the previous step."""

    text: str
    delay: float = 0.0


@dataclass(frozen=True)
class Stall:
    """Silence: nothing is written for `seconds` (read timeouts, slow first tokens)."""

    seconds: float


@dataclass(frozen=True)
class WaitFor:
    """Hold the stream until a test sets `event`: proves a client saw earlier steps in time."""

    event: threading.Event
    timeout: float = 10.0


@dataclass(frozen=True)
class Finish:
    """`contentBlockStop`, `messageStop` and `metadata`; unset figures are estimated from the text."""

    stop_reason: str = "end_turn"
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: int | None = None


@dataclass(frozen=True)
class StreamException:
    """An exception event mid-stream; botocore raises `EventStreamError` with this code."""

    exception_type: str = "modelStreamErrorException"
    message: str = "The model stream failed"


@dataclass(frozen=True)
class Cut:
    """Close the connection mid-response, without the terminating chunk."""


@dataclass(frozen=True)
class HttpError:
    """A plain error response before any stream; botocore raises `ClientError` with `error_type`."""

    status: int
    error_type: str
    message: str = ""


Step = Text | Stall | WaitFor | Finish | StreamException | Cut | HttpError
_TERMINAL = (Finish, StreamException, Cut, HttpError)


@dataclass(frozen=True)
class Script:
    """What the double answers to one request. A stream whose steps lack `Finish` ends without
    `messageStop`: that is a failure mode on purpose, so use `Script.reply` for a normal reply."""

    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        for step in self.steps[:-1]:
            if isinstance(step, _TERMINAL):
                raise ValueError(f"{type(step).__name__} must be the last step")
        if self.http_error is not None and any(not isinstance(s, Stall | WaitFor) for s in self.steps[:-1]):
            raise ValueError("HttpError comes before any stream: only Stall or WaitFor may precede it")

    @classmethod
    def of(cls, *steps: Step) -> Script:
        return cls(tuple(steps))

    @classmethod
    def reply(cls, *pieces: str, delay: float = 0.0, stop_reason: str = "end_turn") -> Script:
        return cls((*(Text(piece, delay) for piece in pieces), Finish(stop_reason)))

    @classmethod
    def error(cls, status: int, error_type: str, message: str = "") -> Script:
        return cls((HttpError(status, error_type, message),))

    @property
    def http_error(self) -> HttpError | None:
        last = self.steps[-1] if self.steps else None
        return last if isinstance(last, HttpError) else None


# --- recorded requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    operation: Literal["converse", "converse-stream"]
    model_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)
    delta_times: list[float] = field(default_factory=list)  # monotonic, as each delta is written

    @property
    def streaming(self) -> bool:
        return self.operation == "converse-stream"

    @property
    def system_texts(self) -> list[str]:
        return [block["text"] for block in self.body.get("system", []) if "text" in block]

    @property
    def last_user_text(self) -> str:
        for message in reversed(self.body.get("messages", [])):
            if message.get("role") == "user":
                return " ".join(block["text"] for block in message.get("content", []) if "text" in block)
        return ""


Responder = Callable[[RecordedRequest], Script]
JsonResponder = Callable[[RecordedRequest], dict[str, Any] | None]


# --- the default behaviour -------------------------------------------------------------------------

_COACH_TEMPLATES = (
    'Love that you brought this up. You said: "{quote}". Here is how I would handle it: keep the '
    "effort honest, own the basics, and write down how each session felt so we can adjust next week.",
    'Good question. About "{quote}": start a little lighter than you think, focus on clean reps, and '
    "add load only when the last set still feels controlled. Consistency beats heroics every time.",
    'Thanks for sharing that. "{quote}" tells me you are paying attention, which is half the work. '
    "Let us pick one thing to improve this week, track it, and check in on how it went.",
)
_JSON_WORD = re.compile(r"\bjson\b", re.IGNORECASE)


class CoachResponder:
    """Coach-like replies from the last user message, paced like a real model.

    First token after 300 to 400 ms, then a piece of 2 to 4 words every 20 to 40 ms, all divided by
    `speed`. A `converse` call (a side task) whose system prompt or message mentions JSON gets JSON:
    from the first registered JSON responder that returns an object, else a generic object.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.json_responders: list[JsonResponder] = []

    def add_json_responder(self, responder: JsonResponder) -> None:
        self.json_responders.append(responder)

    def __call__(self, request: RecordedRequest) -> Script:
        rng = random.Random(request.last_user_text)  # noqa: S311 - same question, same answer
        side_task = not request.streaming and self.wants_json(request)
        text = self.json_text(request) if side_task else self.coach_text(request, rng)
        pieces = _pieces(text, rng)
        steps = [
            Text(piece, (rng.uniform(0.3, 0.4) if index == 0 else rng.uniform(0.02, 0.04)) / self.speed)
            for index, piece in enumerate(pieces)
        ]
        return Script((*steps, Finish()))

    @staticmethod
    def wants_json(request: RecordedRequest) -> bool:
        return any(_JSON_WORD.search(text) for text in (*request.system_texts, request.last_user_text))

    def json_text(self, request: RecordedRequest) -> str:
        for responder in self.json_responders:
            answer = responder(request)
            if answer is not None:
                return json.dumps(answer)
        words = request.last_user_text.split()
        return json.dumps({"summary": " ".join(words[:12]), "intent": "general", "confidence": 0.8})

    @staticmethod
    def coach_text(request: RecordedRequest, rng: random.Random) -> str:
        said = " ".join(request.last_user_text.split())
        quote = said if len(said) <= 80 else said[:77].rstrip() + "..."
        return rng.choice(_COACH_TEMPLATES).format(quote=quote or "that")


def _pieces(text: str, rng: random.Random) -> list[str]:
    """A few words per piece, each keeping its trailing space, so the pieces join back exactly."""
    words = re.findall(r"\S+\s*", text)
    pieces: list[str] = []
    while words:
        size = rng.randint(2, 4)
        pieces.append("".join(words[:size]))
        words = words[size:]
    return pieces


# --- the server ----------------------------------------------------------------------------------


class BedrockDouble(QuietServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        responder: Responder | None = None,
        iam: IamGate | None = None,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.responder: Responder = responder or CoachResponder()
        self.iam = iam  # checks and records each call against the caller's IAM policy
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Script | Responder] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def enqueue(self, *items: Script | Responder) -> None:
        """Each item answers exactly one request, in order; then `responder` takes over again."""
        with self._lock:
            self._queue.extend(items)

    def reset(self) -> None:
        """Forget queued scripts and recorded requests: one double can serve many tests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    def script_for(self, request: RecordedRequest) -> Script:
        with self._lock:
            self.requests.append(request)
            item = self._queue.popleft() if self._queue else self.responder
        return item if isinstance(item, Script) else item(request)

    def pause(self, seconds: float) -> bool:
        """Sleep, but wake at once when the double stops; False means: stop now."""
        return not self._stopping.wait(seconds) if seconds > 0 else not self._stopping.is_set()

    def wait_gate(self, gate: WaitFor) -> bool:
        end = time.monotonic() + gate.timeout
        while not gate.event.wait(0.02):
            if self._stopping.is_set() or time.monotonic() > end:
                return False
        return True

    def start(self) -> BedrockDouble:
        self.serve_in_background("bedrock-double")
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.close()

    def __enter__(self) -> BedrockDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BedrockDouble

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = _PATH.fullmatch(urlsplit(self.path).path)
        if match is None:
            self._send_error(HttpError(404, "UnknownOperationException", f"no route for {self.path}"))
            return
        if self.server.iam is not None:
            denial = self.server.iam.screen("POST", self.path, dict(self.headers.items()), body, service="bedrock")
            if denial is not None:
                self._send_answer(denial)
                return
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            self._send_error(HttpError(400, "SerializationException", "body is not JSON"))
            return
        request = RecordedRequest(
            operation=match["operation"],  # type: ignore[arg-type]  # the pattern allows only these two
            model_id=unquote(match["model"]),
            body=parsed,
            headers=dict(self.headers.items()),
        )
        logger.info("%s %s", request.operation, request.model_id)
        script = self.server.script_for(request)
        try:
            if request.streaming:
                self._play_stream(request, script)
            else:
                self._play_converse(request, script)
        except OSError:  # the client went away (read timeout, closed stream): nothing more to say
            self.close_connection = True

    def _play_stream(self, request: RecordedRequest, script: Script) -> None:
        if script.http_error is None:  # a stream's headers go out at once, as Bedrock's do
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.amazon.eventstream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self._chunk(event_message("messageStart", {"role": "assistant"}))
        text: list[str] = []
        for step in self._timed_steps(script.steps):
            if isinstance(step, HttpError):
                return self._send_error(step)
            if isinstance(step, Cut):
                return self._cut()
            if isinstance(step, Text):
                request.delta_times.append(time.monotonic())  # before the write: the client may be quicker
                self._chunk(event_message("contentBlockDelta", {"delta": {"text": step.text}, "contentBlockIndex": 0}))
                text.append(step.text)
            elif isinstance(step, StreamException):
                self._chunk(exception_message(step.exception_type, {"message": step.message}))
            else:
                metrics = {"latencyMs": _latency(request, step)}
                self._chunk(event_message("contentBlockStop", {"contentBlockIndex": 0}))
                self._chunk(event_message("messageStop", {"stopReason": step.stop_reason}))
                self._chunk(
                    event_message("metadata", {"usage": _usage(request, step, "".join(text)), "metrics": metrics})
                )
        self.wfile.write(b"0\r\n\r\n")
        return None

    def _play_converse(self, request: RecordedRequest, script: Script) -> None:
        text: list[str] = []
        finish = Finish()
        for step in self._timed_steps(script.steps):
            if isinstance(step, HttpError):
                return self._send_error(step)
            if isinstance(step, Cut):
                return self._cut()
            if isinstance(step, StreamException):  # `converse` has no stream: the same error, as HTTP
                status = EXCEPTION_STATUS.get(step.exception_type, 500)
                error_type = step.exception_type[:1].upper() + step.exception_type[1:]
                return self._send_error(HttpError(status, error_type, step.message))
            if isinstance(step, Text):
                text.append(step.text)
            else:
                finish = step
        reply = "".join(text)
        body = {
            "output": {"message": {"role": "assistant", "content": [{"text": reply}]}},
            "stopReason": finish.stop_reason,
            "usage": _usage(request, finish, reply),
            "metrics": {"latencyMs": _latency(request, finish)},
        }
        return self._send_json(200, body)

    def _timed_steps(self, steps: Sequence[Step]) -> Iterator[Text | Finish | StreamException | Cut | HttpError]:
        """The steps that write something, each at its time; a stopping double cuts the rest short."""
        for step in steps:
            if isinstance(step, WaitFor):
                on_time = self.server.wait_gate(step)
            elif isinstance(step, Stall | Text):
                on_time = self.server.pause(step.seconds if isinstance(step, Stall) else step.delay)
            else:
                on_time = self.server.pause(0)
            if not on_time:
                yield Cut()
                return
            if not isinstance(step, Stall | WaitFor):
                yield step

    def _chunk(self, data: bytes) -> None:
        """One event, one HTTP chunk, one write: the client's parser sees it at once."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _cut(self) -> None:
        """FIN without the terminating chunk: the client has read everything sent, then a broken body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_error(self, error: HttpError) -> None:
        """The shape botocore's rest-json parser reads: the code from `x-amzn-ErrorType`."""
        self._send_json(
            error.status,
            {"message": error.message or error.error_type},
            {"x-amzn-ErrorType": error.error_type + _ERROR_TYPE_SUFFIX},
        )

    def _send_answer(self, answer: Answer) -> None:
        self._send_bytes(answer.status, answer.body, answer.headers)

    def _send_json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _usage(request: RecordedRequest, finish: Finish, reply: str) -> dict[str, int]:
    """Scripted token counts, else a rough four-characters-a-token estimate."""
    input_tokens = finish.input_tokens
    if input_tokens is None:
        input_tokens = max(1, len(json.dumps(request.body)) // 4)
    output_tokens = finish.output_tokens if finish.output_tokens is not None else max(1, len(reply) // 4)
    return {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    }


def _latency(request: RecordedRequest, finish: Finish) -> int:
    if finish.latency_ms is not None:
        return finish.latency_ms
    return round((time.monotonic() - request.received_at) * 1000)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.bedrock_double", description="A fake Bedrock Runtime.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3010, help="0 picks a free port")
    parser.add_argument("--speed", type=float, default=1.0, help="pacing factor: 2 replies twice as fast")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    double = BedrockDouble(args.port, args.host, CoachResponder(speed=args.speed)).start()
    print(f"bedrock double listening on {double.url}", flush=True)
    print(f"  export AWS_ENDPOINT_URL_BEDROCK_RUNTIME={double.url}", flush=True)
    while not stopped.wait(0.5):
        pass
    double.stop()
    print("bedrock double stopped", flush=True)


if __name__ == "__main__":
    main()
