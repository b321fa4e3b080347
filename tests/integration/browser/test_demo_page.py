"""The demo page in a real browser: headless Chromium opens it on the local stack and chats.

`drive-demo.mjs` (playwright-core, Debian's Chromium) does what a person would do and reports what
the page showed; these tests check it against what the stack stored. Screenshots land in
`test-artifacts/`. Chromium and playwright-core are installed by the session fixture below; where
that is impossible (no network, not root) the tests skip and say why.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from local.bedrock_double import Finish, RecordedRequest, Script
from local.functions import REPO_ROOT
from local.model_responders import local_coach_responder
from local.stack import LocalStack
from tests.integration.model_script import TurnScript, pieces

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
INSTALL_CHROMIUM = REPO_ROOT / "scripts" / "install-chromium.sh"
DRIVER = Path(__file__).with_name("drive-demo.mjs")
PLAYWRIGHT = REPO_ROOT / "node_modules" / "playwright-core" / "package.json"
ARTIFACTS = REPO_ROOT / "test-artifacts"
OFFLINE_HINTS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ENETUNREACH", "network")

# About 20 pieces, 50 ms apart: slow enough that several snapshots of the page see it grow.
REPLY = (
    "Nice ", "work ", "on ", "those ", "squats! ", "Five ", "by ", "five ", "at ", "100 kg ",
    "is ", "a ", "solid ", "base: ", "add ", "2.5 kg ", "next ", "session ", "if your form ", "holds.",
)  # fmt: skip


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium and the pinned playwright-core, installed if missing; a skip if they cannot be."""
    installed = subprocess.run(
        ["bash", str(INSTALL_CHROMIUM)], capture_output=True, text=True, timeout=600, check=False
    )
    if installed.returncode == 3:
        pytest.skip(f"Chromium is not installed and cannot be here: {installed.stderr.strip().splitlines()[-1:]}")
    assert installed.returncode == 0, installed.stderr
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed to drive Chromium (playwright-core)")
    if not PLAYWRIGHT.exists():
        npm = subprocess.run(
            ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if npm.returncode != 0 and any(hint in npm.stderr for hint in OFFLINE_HINTS):
            pytest.skip(f"npm ci could not reach the registry for playwright-core: {npm.stderr.strip()[-300:]}")
        assert npm.returncode == 0, npm.stderr
    return CHROMIUM


@pytest.fixture
def model(stack: LocalStack) -> Iterator[None]:
    assert stack.bedrock is not None
    default = stack.bedrock.responder
    stack.bedrock.reset()
    yield
    stack.bedrock.responder = default


def drive(chromium: str, **options: Any) -> dict[str, Any]:
    """Runs the driver with `options` (JSON) and returns its report."""
    done = subprocess.run(
        ["node", str(DRIVER), json.dumps(options)],
        cwd=REPO_ROOT,
        env={**os.environ, "CHROMIUM": chromium},
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"drive-demo.mjs failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["pageErrors"] == [], report["pageErrors"]
    assert report["console"] == [], report["console"]
    return report


def api_get(stack: LocalStack, path: str, user_id: str = "demo-user") -> dict[str, Any]:
    token = stack.issuer.mint(user_id)
    response = httpx.get(f"{stack.outputs()['apiUrl']}{path}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert path.stat().st_size > 10_000, f"{path} looks empty"


@pytest.mark.timeout(300)
def test_the_reply_grows_token_by_token_and_ends_as_stored(stack, chromium, model):
    assert stack.bedrock is not None
    stack.bedrock.responder = TurnScript(reply=Script.reply(*REPLY, delay=0.05))
    shot, streaming_shot = ARTIFACTS / "demo-page.png", ARTIFACTS / "demo-page-streaming.png"
    for old in (shot, streaming_shot):
        old.unlink(missing_ok=True)

    report = drive(
        chromium,
        url=f"{stack.outputs()['apiUrl']}/demo/",
        message="I did 5x5 squats at 100kg today, how should I progress?",
        screenshot=str(shot),
        streamingScreenshot=str(streaming_shot),
    )

    final = report["final"]
    assert final["status"] == "complete", final
    assert final["error"] is None
    assert final["text"] == "".join(REPLY)
    assert final["transport"] == "stream"
    assert not final["cursor"], "the cursor stays only while the reply streams"
    assert final["contextualCount"] >= 1 and not final["contextualVisible"], "progress lines fold away at the end"

    streaming = [s for s in report["snapshots"] if s["status"] == "streaming"]
    assert all(s["cursor"] for s in streaming)
    assert any(s["contextual"] for s in streaming), "progress lines show while the coach works"
    growth: list[str] = []
    for snapshot in streaming:
        if snapshot["text"] and (not growth or snapshot["text"] != growth[-1]):
            growth.append(snapshot["text"])
    assert len(growth) >= 3, f"the reply should be seen growing, saw {growth}"
    for shorter, longer in pairwise(growth):
        assert longer.startswith(shorter) and len(longer) > len(shorter), (shorter, longer)
    # A snapshot between the last chunk and `complete` may already hold the whole reply.
    assert final["text"].startswith(growth[-1]) and growth[0] != final["text"], "seen partial before complete"

    demo = stack.demo
    assert final["conversationId"] == demo["conversationId"]
    stored = api_get(stack, f"/users/{demo['userId']}/coaches/{demo['coachId']}/conversations/{demo['conversationId']}")
    assistant = [m for m in stored["messages"] if m["role"] == "assistant"]
    assert assistant[-1]["content"] == final["text"]
    assert_png(shot)
    assert_png(streaming_shot)


@pytest.mark.timeout(300)
def test_a_stream_dropped_mid_reply_shows_the_stored_reply_whole_and_sends_once(stack, chromium, model):
    assert stack.bedrock is not None
    stack.bedrock.responder = TurnScript(reply=Script.reply(*REPLY, delay=0.05))
    message = f"Squats went well today ({uuid.uuid4().hex[:8]}), what next?"

    report = drive(chromium, url=f"{stack.outputs()['apiUrl']}/demo/", message=message, dropAfterFirstChunk=True)

    final = report["final"]
    assert final["status"] == "complete" and final["error"] is None, final
    assert final["recovered"] and final["replyStatus"] == "complete", final
    assert final["text"] == "".join(REPLY), "the whole stored reply replaces the part that streamed"
    assert "recovered after the connection dropped" in final["meta"]
    recovering = [s["text"] for s in report["snapshots"] if s["status"] == "recovering"]
    assert recovering and all(len(text) < len(final["text"]) for text in recovering), "seen partial, then whole"

    demo = stack.demo
    path = f"/users/{demo['userId']}/coaches/{demo['coachId']}/conversations/{demo['conversationId']}"
    posts = [r["path"] for r in report["requests"] if r["method"] not in ("GET", "OPTIONS")]
    assert posts == [f"{path}/stream"], "the message is sent once, never again"
    reads = [r for r in report["requests"] if r["method"] == "GET" and r["path"] == path]
    assert len(reads) >= 2, "opened, then read back by the recovery"
    stored = api_get(stack, path)["messages"]
    assert [m["content"] for m in stored if m["role"] == "user"].count(message) == 1
    assert [(m["role"], m["content"]) for m in stored[-2:]] == [("user", message), ("assistant", final["text"])]


class QuickInterview:
    """Short interview replies; the local coach responder for the coach builder and everything else."""

    def __init__(self) -> None:
        self.default = local_coach_responder(speed=50)

    def __call__(self, request: RecordedRequest) -> Script:
        if request.streaming:
            return Script.of(*pieces("Thanks, ", "that helps. ", "Next question coming up."), Finish())
        return self.default(request)


@pytest.mark.timeout(300)
def test_the_coach_creator_ends_in_a_chat_with_the_new_coach(stack, chromium, model):
    assert stack.bedrock is not None
    stack.bedrock.responder = QuickInterview()
    shot = ARTIFACTS / "demo-creator.png"
    shot.unlink(missing_ok=True)

    report = drive(chromium, url=f"{stack.outputs()['apiUrl']}/demo/", flow="creator", screenshot=str(shot))

    assert report["firstQuestion"]
    assert 10 <= report["answers"] <= 15
    progress = report["progress"]
    assert progress == sorted(progress) and progress[0] < 50 and progress[-1] == 100, progress
    assert "is ready" in report["ready"]
    chat = report["chat"]
    assert chat["coachId"] == report["coachId"] and chat["coachName"] != "Coach Riley"
    assert report["final"]["status"] == "complete", report["final"]
    stored = api_get(stack, f"/users/demo-user/coaches/{chat['coachId']}/conversations/{chat['conversationId']}")
    assert stored["messages"][-1]["content"] == report["final"]["text"]
    assert_png(shot)


def raw_get(stack: LocalStack, path: str) -> tuple[int, str, bytes]:
    """A GET with the path sent exactly as written (httpx would clean up `..`)."""
    host, port = urlsplit(stack.outputs()["apiUrl"]).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def test_the_front_door_serves_the_page_and_nothing_outside_web(stack):
    status, content_type, body = raw_get(stack, "/demo/")
    assert (status, content_type) == (200, "text/html; charset=utf-8") and b'id="sign-in"' in body
    assert raw_get(stack, "/demo/app.js")[:2] == (200, "text/javascript; charset=utf-8")
    assert raw_get(stack, "/demo/style.css")[:2] == (200, "text/css; charset=utf-8")
    assert raw_get(stack, "/web/coach-stream-client.js")[:2] == (200, "text/javascript; charset=utf-8")
    assert raw_get(stack, "/demo")[0] == 308
    for outside in (
        "/demo/../../pyproject.toml",
        "/web/../package.json",
        "/web/..%2fpackage.json",
        "/web/%2e%2e/package.json",
        "/demo/..%2f..%2fpackage.json",
        "/web/%2Fetc%2Fpasswd",
        "/demo/missing.js",
        "/web/",
    ):
        assert raw_get(stack, outside)[0] == 404, outside


def test_the_demo_session_signs_the_page_in(stack):
    status, content_type, body = raw_get(stack, "/demo/session.json")
    assert (status, content_type) == (200, "application/json")
    session = json.loads(body)
    outputs = stack.outputs()
    assert {k: session[k] for k in outputs} == outputs
    demo = session["demo"]
    path = f"/users/{demo['userId']}/coaches/{demo['coachId']}/conversations/{demo['conversationId']}"
    response = httpx.get(f"{outputs['apiUrl']}{path}", headers={"Authorization": f"Bearer {session['token']}"})
    assert response.status_code == 200, response.text
