"""A local API Gateway HTTP API (payload 2.0) for the non-streaming functions, and the token issuer.

Routes come from `functions/catalog.py`. Authorized routes check the JWT as the HTTP API JWT
authorizer would (signature, issuer, audience, expiry) and hand the claims to the function under
`requestContext.authorizer.jwt`; a bad token is the authorizer's 401 `{"message":"Unauthorized"}` with its
`www-authenticate` challenge (`bearer_challenge`), before any function runs. With the stage's throttle from
the template (`local.deployed.StageThrottle`), each route has a token bucket as API Gateway's, checked before
the authorizer: a request that finds it empty is the stage's `429 {"message":"Too Many Requests"}`.

Local only, this front door also serves the demo page: `GET /demo/...` from `web/demo/`,
`GET /web/...` (the JS client) from `web/`, and `GET /demo/session.json`, the outputs plus a fresh
token for the demo user, so the page can sign in with one click. `GET /openapi.json` is the contract's
OpenAPI document (`shared.api.openapi`) with this stack's URLs as its servers: generated here, not by a
function, so it is local only, like the demo (a deployed stack's: `python -m shared.api.openapi --outputs`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from local.deployed import StageThrottle
from local.functions import REPO_ROOT, LocalFunction, Throttled
from local.http_events import build_v2_event
from local.processes import LoopbackHTTPServer
from local.relay import HttpAnswer, buffer_outcomes, send_answer
from shared.http.routes import RoutePattern

logger = logging.getLogger(__name__)

Authorizer = Callable[[str | None], dict[str, Any]]
"""Takes the Authorization header; returns the token's claims or raises."""

DemoSession = Callable[[], dict[str, Any]]
"""Returns what the demo page needs to sign in: the outputs and a freshly minted token."""

WEB_ROOT = REPO_ROOT / "web"
DEMO_SESSION_PATH = "/demo/session.json"
OPENAPI_PATH = "/openapi.json"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


# The HTTP API JWT authorizer's challenge on a refused token, in the form AWS documents (API Gateway developer
# guide, "Troubleshooting issues with HTTP API JWT authorizers"): space-separated parameters, an empty scope.
CHALLENGE = 'Bearer scope="" error="invalid_token"'
# Its `error_description`, for the refusals whose wording is known (keyed by the local verifier's reason);
# any other refusal names the error alone rather than a wording AWS may not use.
CHALLENGE_DESCRIPTIONS = {
    "wrong audience": "the token does not have a valid audience",
    "token expired": "the token has expired",
}


def bearer_challenge(reason: str) -> str:
    """The `www-authenticate` value for a token the authorizer refused for `reason`."""
    description = CHALLENGE_DESCRIPTIONS.get(reason)
    return f'{CHALLENGE} error_description="{description}"' if description else CHALLENGE


class TokenBucket:
    """API Gateway's throttle for one route: `burst` tokens to start with, refilled at `rate_per_second` up to
    `burst`; each request takes one, and a request that finds none is refused (AWS calls its limits targets,
    applied best-effort: this is the algorithm, exactly)."""

    def __init__(self, throttle: StageThrottle, clock: Callable[[], float] = time.monotonic) -> None:
        self.throttle = throttle
        self._clock = clock
        self._tokens = float(throttle.burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            refilled = self._tokens + (now - self._at) * self.throttle.rate_per_second
            self._tokens, self._at = min(float(self.throttle.burst), refilled), now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


@dataclass(frozen=True)
class ApiRoute:
    method: str
    template: str
    pattern: RoutePattern
    function: LocalFunction
    authorized: bool
    bucket: TokenBucket | None = None  # the stage's throttle, this route's own tokens


class ApiGatewayServer(LoopbackHTTPServer):
    def __init__(
        self,
        port: int,
        authorizer: Authorizer,
        jwks: Callable[[], dict[str, Any]],
        issuer_path: str,
        demo: DemoSession | None = None,
        web_root: Path = WEB_ROOT,
        throttle: StageThrottle | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), _ApiHandler)
        self.throttle = throttle
        self.authorizer = authorizer
        self.jwks = jwks
        self.issuer_path = issuer_path.rstrip("/")
        self.routes: list[ApiRoute] = []
        self.keys_fetches: list[tuple[str, int]] = []  # who fetched the issuer's JWKS (each init once)
        self.demo = demo
        self.web_root = web_root.resolve()

    def add_route(self, route_key: str, function: LocalFunction, *, authorized: bool) -> None:
        method, template = route_key.split(" ", 1)
        bucket = TokenBucket(self.throttle) if self.throttle is not None else None
        self.routes.append(ApiRoute(method.upper(), template, RoutePattern(template), function, authorized, bucket))

    def start(self) -> ApiGatewayServer:
        threading.Thread(target=self.serve_forever, name="api-gateway", daemon=True).start()
        return self

    def find(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
        for route in self.routes:
            params = route.pattern.match(path)
            if params is not None and route.method in (method, "ANY"):
                return route, params
        return None


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiGatewayServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("api %s", format % args)

    def _handle(self) -> None:
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "GET" and path == f"{self.server.issuer_path}/.well-known/jwks.json":
            self.server.keys_fetches.append(self.client_address)  # a list's append: safe from any thread
            self._send(
                HttpAnswer(200, {"Content-Type": "application/json"}, body=json.dumps(self.server.jwks()).encode())
            )
            return
        if self.command == "GET" and path == OPENAPI_PATH:
            self._send(self._openapi())
            return
        if self.command == "GET" and (path == "/demo" or path.startswith(("/demo/", "/web/"))):
            self._send(self._static(path))
            return
        found = self.server.find(self.command, path)
        if found is None:
            self._send(_message(404, "Not Found"))
            return
        route, params = found
        if route.bucket is not None and not route.bucket.take():
            self._send(_message(429, "Too Many Requests"))
            return
        authorizer: dict[str, Any] | None = None
        if route.authorized:
            try:
                claims = self.server.authorizer(self.headers.get("Authorization"))
            except Exception as exc:
                logger.info("authorizer refused the request: %s", exc)
                refused = _message(401, "Unauthorized")
                refused.headers["www-authenticate"] = bearer_challenge(getattr(exc, "message", ""))
                self._send(refused)
                return
            authorizer = {"jwt": {"claims": {k: _claim_text(v) for k, v in claims.items()}, "scopes": None}}
        event = build_v2_event(
            self.command,
            self.path,
            self.headers,
            body,
            self.client_address[0],
            api_id="localapi",
            domain_name="localapi.execute-api.us-east-1.amazonaws.com",
            route_key=f"{route.method} {route.template}",
            authorizer=authorizer,
            path_parameters=params,
        )
        try:
            invocation = route.function.invoke(event)
        except Throttled:
            # a throttled Lambda is an integration failure to API Gateway: the client gets a 500
            self._send(_message(500, "Internal Server Error"))
            return
        self._send(buffer_outcomes(invocation))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle  # HEAD reaches the ANY routes

    def do_OPTIONS(self) -> None:
        """The HTTP API has a CORS configuration, so API Gateway answers OPTIONS itself and no function
        sees it; the CORS headers (which need the stack's origins) are the Function URL double's business."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(HttpAnswer(204))

    def __getattr__(self, name: str) -> Any:
        """A method no HTTP API route can name (TRACE, CONNECT, ...): no route matches, the gateway's 404
        (inferred from how API Gateway matches routes; `http.server` alone would answer 501)."""
        if name.startswith("do_"):
            return self._no_route
        raise AttributeError(name)

    def _no_route(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(_message(404, "Not Found"))

    def _send(self, answer: HttpAnswer) -> None:
        send_answer(self, replace(answer, body=b"") if self.command == "HEAD" else answer)

    def _openapi(self) -> HttpAnswer:
        """The document with the stack's outputs as its servers (the demo session carries the outputs)."""
        from shared.api.openapi import contract_document  # only when asked: it builds every schema

        outputs: dict[str, Any] = {"apiUrl": f"http://127.0.0.1:{self.server.server_port}"}
        if self.server.demo is not None:
            try:
                outputs = {k: v for k, v in self.server.demo().items() if k != "token"}
            except Exception:
                logger.exception("the stack's outputs are not ready; the stream servers stay relative")
        document = json.dumps(contract_document(outputs), indent=1).encode()
        return HttpAnswer(200, {"Content-Type": "application/json", "Cache-Control": "no-cache"}, body=document)

    def _static(self, path: str) -> HttpAnswer:
        """The demo page, its session and the JS client; nothing outside `web/`, ever."""
        if path == "/demo":
            return HttpAnswer(308, {"Location": "/demo/"})
        if path == DEMO_SESSION_PATH:
            if self.server.demo is None:
                return _message(404, "Not Found")
            try:
                session = json.dumps(self.server.demo()).encode()
            except Exception:
                logger.exception("the demo session is not ready")
                return _message(503, "The local stack is still starting")
            return HttpAnswer(200, {"Content-Type": "application/json", "Cache-Control": "no-store"}, body=session)
        relative = "demo/" + path.removeprefix("/demo/") if path.startswith("/demo/") else path.removeprefix("/web/")
        if relative.endswith("/") or not relative:
            relative += "index.html"
        file = resolve_web_file(self.server.web_root, relative)
        if file is None:
            return _message(404, "Not Found")
        headers = {"Content-Type": CONTENT_TYPES[file.suffix], "Cache-Control": "no-cache"}
        return HttpAnswer(200, headers, body=file.read_bytes())


def resolve_web_file(root: Path, relative: str) -> Path | None:
    """The file `relative` (URL-encoded) names under `root`, if it is a servable file inside it."""
    name = unquote(relative)
    if "\x00" in name or "\\" in name:
        return None
    try:
        file = (root / name).resolve()
    except (OSError, ValueError):
        return None
    if not file.is_relative_to(root) or not file.is_file() or file.suffix not in CONTENT_TYPES:
        return None
    return file


def _message(status: int, message: str) -> HttpAnswer:
    return HttpAnswer(status, {"Content-Type": "application/json"}, body=json.dumps({"message": message}).encode())


def _claim_text(value: Any) -> str:
    """HTTP API authorizers pass every claim as a string; lists look like `[a b]`."""
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    return str(value)
