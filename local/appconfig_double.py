"""A local AppConfig Data: its real REST protocol, so botocore's own serializer and parser run.

`POST /configurationsessions` (JSON body: the application, environment and profile, by name or id, and
`RequiredMinimumPollIntervalInSeconds`) answers 201 with an `InitialConfigurationToken`.
`GET /configuration?configuration_token=...` answers the configuration as the body, with the
`Next-Poll-Configuration-Token`, `Next-Poll-Interval-In-Seconds` and `Content-Type` headers; the body is
empty when the session already has that version. As in AWS: each token works once, a poll before the
session's interval is `BadRequestException` ("Request too early"), an unknown profile is
`ResourceNotFoundException`; errors carry `x-amzn-ErrorType`, which botocore's rest-json parser reads.

One difference, on purpose: a poll is early when it comes sooner than the session's interval (15 s at
least: botocore refuses less) or, if the stack gives one, `shortest_poll_seconds`: the functions' own cache
age when a local override (`FLAGS_MAX_AGE_SECONDS`) sets it under AppConfig's minimum, so tests can flip a
flag and see it within a second (`infra/config.py` refuses a deployed cache age under 15 s).
Calls are not checked against the functions' roles here (the CDK tests check the grant's scope).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from local.appconfig_profile import FLAGS_FILE, FlagsFile, LocalProfile
from local.quiet_server import QuietServer

logger = logging.getLogger("local.appconfig")

DEFAULT_POLL_INTERVAL_SECONDS = 60  # AppConfig Data's, when a session asks for none
POLL_INTERVAL_RANGE = (15, 86400)


@dataclass
class _Session:
    interval: int
    served_digest: str = ""  # what this session last received
    last_poll: float = float("-inf")


class AppConfigDataDouble(QuietServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, flags: FlagsFile, port: int = 0, host: str = "127.0.0.1", shortest_poll_seconds: float | None = None
    ) -> None:
        super().__init__((host, port), _Handler)
        self.flags = flags
        self.shortest_poll_seconds = shortest_poll_seconds
        self.calls: list[str] = []  # operation names, in order: what tests count
        self.connections: list[tuple[str, int]] = []  # each call's client address, in the same order
        self._tokens: dict[str, _Session] = {}  # an unused token -> its session
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_session(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        names = [
            body.get(key)
            for key in ("ApplicationIdentifier", "EnvironmentIdentifier", "ConfigurationProfileIdentifier")
        ]
        if not all(isinstance(name, str) and name for name in names):
            return 400, _error(
                "BadRequestException",
                "ApplicationIdentifier, EnvironmentIdentifier and ConfigurationProfileIdentifier are required",
            )
        interval = body.get("RequiredMinimumPollIntervalInSeconds", DEFAULT_POLL_INTERVAL_SECONDS)
        low, high = POLL_INTERVAL_RANGE
        if not isinstance(interval, int) or not low <= interval <= high:
            return 400, _error("BadRequestException", f"RequiredMinimumPollIntervalInSeconds must be {low} to {high}")
        if not self.flags.profile.matches(*names):
            return 404, _error("ResourceNotFoundException", f"no configuration profile {'/'.join(names)}")
        with self._lock:
            token = self._new_token(_Session(interval))
        return 201, {"InitialConfigurationToken": token}

    def latest(self, token: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            session = self._tokens.pop(token, None)
            if session is None:
                return _error_answer(400, "BadRequestException", "the configuration token is invalid or was used")
            now = time.monotonic()
            early = (
                session.interval
                if self.shortest_poll_seconds is None
                else min(session.interval, self.shortest_poll_seconds)
            )
            if now - session.last_poll < early:
                self._tokens[token] = session  # refused, not spent
                return _error_answer(400, "BadRequestException", "Request too early")
            session.last_poll = now
            content = self.flags.current()
            digest = hashlib.sha256(content).hexdigest()
            body = b"" if digest == session.served_digest else content
            session.served_digest = digest
            headers = {
                "Next-Poll-Configuration-Token": self._new_token(session),
                "Next-Poll-Interval-In-Seconds": str(session.interval),
                "Content-Type": self.flags.profile.content_type,
            }
        return 200, headers, body

    def _new_token(self, session: _Session) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[token] = session
        return token

    def start(self) -> AppConfigDataDouble:
        self.serve_in_background("appconfig-double")
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AppConfigDataDouble

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)

    def _gone(self) -> bool:
        """A stopped double drops requests on connections clients kept alive, as a service that is gone."""
        if self.server.stopped:
            self.close_connection = True
        return self.server.stopped

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self._gone():
            return
        if urlsplit(self.path).path != "/configurationsessions":
            self._send(*_error_answer(404, "ResourceNotFoundException", "unknown operation"))
            return
        self.server.calls.append("StartConfigurationSession")
        self.server.connections.append(self.client_address)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send(*_error_answer(400, "BadRequestException", "the body is not a JSON object"))
            return
        status, answer = self.server.start_session(body)
        headers = {"x-amzn-ErrorType": answer["__type"]} if "__type" in answer else {}
        self._send(status, {"Content-Type": "application/json", **headers}, json.dumps(answer).encode())

    def do_GET(self) -> None:
        if self._gone():
            return
        split = urlsplit(self.path)
        if split.path != "/configuration":
            self._send(*_error_answer(404, "ResourceNotFoundException", "unknown operation"))
            return
        self.server.calls.append("GetLatestConfiguration")
        self.server.connections.append(self.client_address)
        token = parse_qs(split.query).get("configuration_token", [""])[0]
        self._send(*self.server.latest(token))

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"__type": error_type, "Message": message}


def _error_answer(status: int, error_type: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"Message": message}).encode()
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}, body


def serve_flags(
    templates: Mapping[str, Mapping[str, Any]], state_dir: Path, port: int, cache_ages: Iterable[int]
) -> AppConfigDataDouble | None:
    """The templates' AppConfig profile served from `<state_dir>/feature-flags.json`, which starts as the
    stack's first version (as a deploy does); None when the templates define no AppConfig application.
    `cache_ages`: the functions' `FLAGS_MAX_AGE_SECONDS`, overrides included."""
    profile = LocalProfile.from_templates(templates)
    if profile is None:
        return None
    flags = FlagsFile(state_dir / FLAGS_FILE, profile)
    flags.deploy_initial()
    return AppConfigDataDouble(flags, port, shortest_poll_seconds=min(cache_ages, default=None)).start()
