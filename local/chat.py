"""`python -m local chat`: talk to a coach from the terminal, through the conversation stream.

It reads the stack's outputs (`.local/outputs.json` from `make dev`, or a deployed stack's outputs
with `--outputs`), mints a token with the local issuer when the stack is local (a deployed stack
needs `--token`), and streams each turn: progress lines dimmed in brackets, the reply as its chunks
arrive, then a timing line. `--raw` prints the SSE lines as they come, the way `curl -N` would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import httpx

from local.issuer import KEY_FILE, LocalIssuer

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=10.0)  # keep-alives come every 15 s
ERROR_WORDS = {
    401: "token rejected",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    413: "message too large",
    429: "rate limited",
}


class ChatError(Exception):
    """A failure to explain in words; the command prints it and exits non-zero."""


@dataclass(frozen=True)
class Target:
    """Where a conversation lives and who talks to it."""

    api_url: str
    stream_url: str
    user_id: str
    coach_id: str
    conversation_id: str
    token: str

    @property
    def conversation_path(self) -> str:
        ids = (self.user_id, self.coach_id, self.conversation_id)
        user, coach, conversation = (quote(part, safe="") for part in ids)
        return f"/users/{user}/coaches/{coach}/conversations/{conversation}"


@dataclass
class Turn:
    """What one turn produced, with the moments (seconds after the request) things arrived."""

    started: float = field(default_factory=time.monotonic)
    start_at: float | None = None
    first_chunk_at: float | None = None
    ended_at: float | None = None
    chunks: list[str] = field(default_factory=list)
    complete: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def seen(self, event: dict[str, Any]) -> None:
        now = time.monotonic() - self.started
        kind = event.get("type")
        if kind == "start" and self.start_at is None:
            self.start_at = now
        elif kind == "chunk":
            if self.first_chunk_at is None:
                self.first_chunk_at = now
            self.chunks.append(str(event.get("content", "")))
        elif kind == "complete":
            self.complete = event
        elif kind == "error":
            self.error = event

    def finish(self) -> None:
        self.ended_at = time.monotonic() - self.started

    def timing_line(self) -> str:
        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}s"

        parts = [
            f"start {seconds(self.start_at)}",
            f"first chunk {seconds(self.first_chunk_at)}",
            f"total {seconds(self.ended_at)}",
            f"{len(self.chunks)} chunks",
        ]
        metadata = ((self.complete or {}).get("aiMessage") or {}).get("metadata") or {}
        if "outputTokens" in metadata:
            parts.append(f"{metadata['outputTokens']} output tokens")
        if metadata.get("fallback"):
            parts.append("model fallback")
        return "timing: " + ", ".join(parts)


def iter_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each line as it came, paired with the event its blank line completed (else None)."""
    data: list[str] = []
    for line in lines:
        event = None
        if line == "":
            if data:
                event = json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        yield line, event


class Printer:
    """Readable output: dim brackets for progress lines, the reply as it streams, a timing line."""

    def __init__(self, out: TextIO, color: bool) -> None:
        self.out = out
        self.color = color
        self.in_reply = False

    def style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def end_reply(self) -> None:
        if self.in_reply:
            self.write("\n")
            self.in_reply = False

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in ("contextual", "progress"):
            self.end_reply()
            text = event.get("content") or json.dumps(event.get("progressDetails"))
            self.write(self.style(f"  [{text}]", "2") + "\n")
        elif kind == "chunk":
            if not self.in_reply:
                self.write(self.style("coach> ", "1;36"))
                self.in_reply = True
            self.write(str(event.get("content", "")))
        elif kind == "error":
            self.end_reply()
            self.write(self.style(f"the turn failed: {event.get('code')}: {event.get('message')}", "31") + "\n")

    def note(self, text: str) -> None:
        self.end_reply()
        self.write(self.style(text, "2") + "\n")


def stream_turn(client: httpx.Client, target: Target, message: str, printer: Printer, raw: bool) -> Turn:
    """POST one message to the Function URL and show the events as they arrive."""
    url = f"{target.stream_url.rstrip('/')}{target.conversation_path}/stream"
    headers = {"Authorization": f"Bearer {target.token}", "Accept": "text/event-stream"}
    turn = Turn()
    try:
        with client.stream("POST", url, headers=headers, json={"userResponse": message}) as response:
            if response.status_code != 200:
                response.read()
                raise ChatError(describe_http_error(response))
            if raw:
                print(f"< HTTP {response.status_code} {response.headers.get('content-type', '')}", file=sys.stderr)
            for line, event in iter_sse(response.iter_lines()):
                if raw:
                    printer.write(line + "\n")
                if event is not None:
                    turn.seen(event)
                    if not raw:
                        printer.event(event)
    except httpx.TransportError as exc:
        if turn.start_at is None:
            raise ChatError(f"cannot reach {url}: {exc or type(exc).__name__} (is the stack running?)") from exc
        raise ChatError(f"the connection broke mid-stream: {exc or type(exc).__name__}") from exc
    finally:
        turn.finish()
    printer.end_reply()
    if turn.complete is None and turn.error is None:
        raise ChatError("the stream ended before the turn finished")
    return turn


def describe_http_error(response: httpx.Response) -> str:
    """An error answered before the stream, in words: `token rejected: token expired`."""
    code, message = f"HTTP_{response.status_code}", response.reason_phrase
    try:
        error = response.json().get("error") or {}
        code, message = error.get("code", code), error.get("message", message)
    except (ValueError, AttributeError):
        pass
    if code == "STREAMING_DISABLED":
        return f"streaming is switched off on this stack: {message}"
    words = ERROR_WORDS.get(response.status_code, f"HTTP {response.status_code} {code}")
    if response.status_code == 429 and "retry-after" in response.headers:
        message = f"{message} (retry after {response.headers['retry-after']} s)"
    return f"{words}: {message}"


def load_outputs(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.outputs) if args.outputs else Path(args.state_dir) / "outputs.json"
    if not path.exists():
        hint = "run `make dev` first" if not args.outputs else "check the path"
        raise ChatError(f"no stack outputs at {path}: {hint}")
    return json.loads(path.read_text())


def resolve_token(args: argparse.Namespace, outputs: dict[str, Any], user_id: str) -> str:
    """`--token` (or $COACH_TOKEN), else a token from the local issuer when the stack is local."""
    token = args.token or os.environ.get("COACH_TOKEN")
    if token:
        return token
    issuer = outputs.get("issuer", "")
    state_dir = Path(args.state_dir)
    if urlsplit(issuer).hostname in LOCAL_HOSTS and (state_dir / KEY_FILE).exists():
        return LocalIssuer.load_or_create(state_dir, issuer=issuer).mint(user_id)
    raise ChatError("this stack has no local issuer: pass --token with a Cognito ID token")


def resolve_target(args: argparse.Namespace, client: httpx.Client) -> Target:
    outputs = load_outputs(args)
    demo = outputs.get("demo") or {}
    api_url = outputs.get("apiUrl")
    stream_url = outputs.get("coachConversationStreamUrl")
    if not api_url or not stream_url:
        raise ChatError("the outputs have no apiUrl or coachConversationStreamUrl")
    user_id = args.user_id or demo.get("userId")
    coach_id = args.coach_id or demo.get("coachId")
    if not user_id or not coach_id:
        raise ChatError("no demo ids in the outputs: pass --user-id and --coach-id")
    token = resolve_token(args, outputs, user_id)
    same_as_demo = not args.user_id and not args.coach_id
    conversation_id = args.conversation_id or (demo.get("conversationId") if same_as_demo else None)
    if not conversation_id:
        conversation_id = create_conversation(client, api_url, user_id, coach_id, token)
    return Target(api_url, stream_url, user_id, coach_id, conversation_id, token)


def create_conversation(client: httpx.Client, api_url: str, user_id: str, coach_id: str, token: str) -> str:
    url = f"{api_url.rstrip('/')}/users/{quote(user_id, safe='')}/coaches/{quote(coach_id, safe='')}/conversations"
    try:
        response = client.post(url, headers={"Authorization": f"Bearer {token}"}, json={"title": "terminal chat"})
    except httpx.TransportError as exc:
        raise ChatError(f"cannot reach {url}: {exc} (is the stack running?)") from exc
    if response.status_code != 201:
        raise ChatError(f"could not create a conversation: {describe_http_error(response)}")
    return str(response.json()["conversationId"])


def one_turn(client: httpx.Client, target: Target, message: str, printer: Printer, raw: bool) -> int:
    turn = stream_turn(client, target, message, printer, raw)
    if raw:
        print(turn.timing_line(), file=sys.stderr)
    else:
        printer.note(turn.timing_line())
    return 0 if turn.complete is not None else 1


def interactive(client: httpx.Client, target: Target, printer: Printer, raw: bool) -> int:
    printer.note(
        f"coach {target.coach_id}, user {target.user_id}, conversation {target.conversation_id}"
        " (Ctrl-C stops a reply, Ctrl-D quits)"
    )
    while True:
        try:
            message = input("you> ")
        except (EOFError, KeyboardInterrupt):
            printer.write("\n")
            return 0
        if not message.strip():
            continue
        try:
            one_turn(client, target, message, printer, raw)
        except KeyboardInterrupt:
            printer.note("[stopped]")
        except ChatError as exc:
            printer.write(printer.style(str(exc), "31") + "\n")


def main(args: argparse.Namespace) -> int:
    color = not args.no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    printer = Printer(sys.stdout, color)
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            target = resolve_target(args, client)
            if args.message is not None:
                return one_turn(client, target, args.message, printer, args.raw)
            return interactive(client, target, printer, args.raw)
    except ChatError as exc:
        printer.end_reply()
        print(f"error: {exc}", file=sys.stderr)
        return 1
