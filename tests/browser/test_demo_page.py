"""The demo page in headless Chromium against the local stack: the reply visibly grows, then matches the store."""

from __future__ import annotations

import json
import shutil
import subprocess
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from local.bedrock_double import CoachResponder, Finish, RecordedRequest, Script, Text
from local.stack import LocalStack

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
REPLY = [f"word{n} " for n in range(24)]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Installs Debian's Chromium and playwright-core when missing (the test setup, not the developer)."""
    installed = subprocess.run(["bash", str(REPO / "scripts" / "install-chromium.sh")], capture_output=True, text=True)
    if installed.returncode != 0:
        pytest.skip(f"Chromium could not be installed: {installed.stderr.strip()[-300:]}")
    if not (REPO / "node_modules" / "playwright-core").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=REPO, check=True)
    return "/usr/bin/chromium"


class SlowReply:
    """A reply of 24 pieces 60 ms apart, so the page is seen mid-stream; defaults for everything else."""

    def __init__(self) -> None:
        self.default = CoachResponder(speed=50)

    def __call__(self, request: RecordedRequest) -> Script:
        if request.streaming:
            return Script((*(Text(piece, 0.06) for piece in REPLY), Finish()))
        return self.default(request)


def test_a_person_chats_and_watches_the_reply_grow(stack: LocalStack, chromium: str):
    assert stack.bedrock is not None
    default = stack.bedrock.responder
    stack.bedrock.responder = SlowReply()
    ARTIFACTS.mkdir(exist_ok=True)
    api_url = stack.outputs()["apiUrl"]
    options = {"url": f"{api_url}/demo/", "screenshot": str(ARTIFACTS / "demo-page.png"), "message": "How do I brace?"}
    try:
        driven = subprocess.run(
            ["node", str(REPO / "tests" / "browser" / "drive-demo.mjs"), json.dumps(options)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env={"CHROMIUM": chromium, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        )
    finally:
        stack.bedrock.responder = default
    assert driven.returncode == 0, driven.stderr[-2000:]
    report = json.loads(driven.stdout.strip().splitlines()[-1])
    assert report["pageErrors"] == []

    streaming = [s["text"] for s in report["snapshots"] if s["status"] == "streaming" and s["text"]]
    growing = sorted(set(streaming), key=len)
    assert len(growing) >= 3, f"the reply was never seen growing: {streaming}"
    for shorter, longer in pairwise(growing):
        assert longer.startswith(shorter)
    final = report["final"]
    assert final["status"] == "complete"
    assert final["text"].strip() == "".join(REPLY).strip()
    assert len(growing[0]) < len(final["text"]), "the reply was seen partial before complete"

    demo = stack.demo
    stored = httpx.get(
        f"{api_url}/users/{demo['userId']}/coaches/{demo['coachId']}/conversations/{final['conversationId']}",
        headers={"Authorization": f"Bearer {stack.issuer.mint(demo['userId'])}"},
        timeout=30,
    ).json()
    assert stored["messages"][-1]["role"] == "assistant"
    assert stored["messages"][-1]["content"] == final["text"]
    assert (ARTIFACTS / "demo-page.png").stat().st_size > 10_000
