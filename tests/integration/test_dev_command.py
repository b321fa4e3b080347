"""`python -m local dev` as a person runs it: up, answering, and gone without a trace on SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_dev_starts_answers_and_stops_cleanly_on_sigint(tmp_path: Path):
    command = [sys.executable, "-m", "local", "dev", "--ephemeral-ports", "--state-dir", str(tmp_path)]
    # A developer's override, from `make dev`'s own environment: shown in the banner, given to the functions.
    env = {**os.environ, "STREAM_TIME_BUDGET_SECONDS": "20"}
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        outputs = json.loads((tmp_path / "outputs.json").read_text())
        assert set(outputs) >= {"apiUrl", "coachConversationStreamUrl", "coachCreatorStreamUrl", "issuer"}
        sam_env = json.loads((tmp_path / "sam-env.json").read_text())
        assert sam_env["StreamCoachConversationFunction"]["JWT_ISSUER"] == outputs["issuer"]
        banner = "".join(lines)
        assert "as `cdk synth` defines them" in banner
        assert "STREAM_TIME_BUDGET_SECONDS=20  (from environment)" in banner
        assert sam_env["StreamCoachConversationFunction"]["STREAM_TIME_BUDGET_SECONDS"] == "20"

        token = subprocess.run(
            [sys.executable, "-m", "local", "token", "--user-id", "u1", "--state-dir", str(tmp_path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        url = f"{outputs['coachConversationStreamUrl']}/users/u1/coaches/c1/conversations/none/stream"
        answer = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, json={"userResponse": "hi"}, timeout=20)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "NOT_FOUND"

        spawned = descendants(process.pid)
        assert len(spawned) >= 3, "workers and moto should be running"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        time.sleep(0.5)
        assert [pid for pid in spawned if alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
