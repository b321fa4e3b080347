"""The adapter through the local stack: real worker processes, real Runtime API, real HTTP client."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.sse_client import EventCollector, iter_events, parse_body

pytestmark = pytest.mark.integration


def test_events_arrive_one_by_one_while_the_handler_is_blocked(url, gate_dir: Path):
    gate = uuid.uuid4().hex
    with httpx.stream("POST", f"{url('t-stream')}/events?count=2&gate={gate}", json={}, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        collector = EventCollector(response)
        assert [e["type"] for e in collector.wait_for(1)] == ["start"]
        time.sleep(0.3)
        # the handler is blocked before its first chunk; start reached us, nothing else did
        assert len(collector.events) == 1
        (gate_dir / f"{gate}-0").touch()
        assert collector.wait_for(2)[1]["content"].startswith("piece 0")
        time.sleep(0.2)
        assert len(collector.events) == 2
        (gate_dir / f"{gate}-1").touch()
        events = collector.join()
    assert [e["type"] for e in events] == ["start", "chunk", "chunk", "complete"]


def test_mid_stream_failure_ends_with_an_error_event(url):
    response = httpx.post(f"{url('t-stream')}/fails_mid_stream", json={}, timeout=20)
    assert response.status_code == 200
    events = parse_body(response.text)
    assert [e["type"] for e in events] == ["start", "chunk", "error"]
    assert events[-1] == {"type": "error", "code": "INTERNAL_ERROR", "message": "internal error"}
    assert "secret" not in response.text


def test_statuses_before_the_stream(url):
    not_found = httpx.post(f"{url('t-stream')}/not_found_before_stream", json={}, timeout=20)
    assert not_found.status_code == 404
    assert not_found.json() == {"error": {"code": "NOT_FOUND", "message": "conversation not found"}}
    crashed = httpx.post(f"{url('t-stream')}/crashes_before_stream", json={}, timeout=20)
    assert crashed.status_code == 500
    assert crashed.json() == {"error": {"code": "INTERNAL_ERROR", "message": "internal error"}}
    assert "hunter2" not in crashed.text
    unhandled = httpx.post(f"{url('t-stream')}/plain_raises", json={}, timeout=20)
    assert unhandled.status_code == 502


def test_json_answers_keep_status_and_cookies(url):
    response = httpx.post(f"{url('t-stream')}/json_answer", content=b"hello", timeout=20)
    assert response.status_code == 201
    assert response.json() == {"echo": "hello", "path": "/json_answer"}
    assert response.headers["set-cookie"] == "a=1"


def test_buffered_delivery_returns_the_same_events(stack, url):
    streamed = parse_body(httpx.post(f"{url('t-stream')}/events?count=3", json={}, timeout=20).text)
    buffered_response = httpx.post(f"{stack.outputs()['apiUrl']}/events?count=3", json={}, timeout=20)
    assert buffered_response.status_code == 200
    assert buffered_response.headers["content-type"] == "text/event-stream; charset=utf-8"
    buffered = parse_body(buffered_response.text)

    def shape(events):
        return [(e["type"], e.get("content", "")[:7]) for e in events]

    expected = [
        ("start", ""),
        ("chunk", "piece 0"),
        ("chunk", "piece 1"),
        ("chunk", "piece 2"),
        ("complete", ""),
    ]
    assert shape(buffered) == shape(streamed) == expected


def test_the_function_runs_on_after_the_client_disconnects(url, gate_dir: Path):
    done = uuid.uuid4().hex
    with httpx.stream("POST", f"{url('t-stream')}/events?count=5&delay=0.1&done={done}", json={}, timeout=20) as r:
        _, first = next(iter_events(r))
        assert first["type"] == "start"
    deadline = time.monotonic() + 5
    while not (gate_dir / done).exists():
        assert time.monotonic() < deadline, "the handler stopped when the client left"
        time.sleep(0.02)


def test_timeout_cuts_the_stream_and_the_worker_is_replaced(url):
    """A timeout mid-stream is a function error after the first byte: the client's response is cut."""
    started = time.monotonic()
    events: list[dict] = []

    def read_all() -> None:
        with httpx.stream("POST", f"{url('t-short')}/sleeps?seconds=10", json={}, timeout=20) as response:
            events.extend(event for _, event in iter_events(response))

    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        read_all()
    assert [e["type"] for e in events] == ["start"]
    assert time.monotonic() - started < 5
    again = httpx.post(f"{url('t-short')}/events?count=1", json={}, timeout=20)
    assert [e["type"] for e in parse_body(again.text)] == ["start", "chunk", "complete"]


def test_streams_run_concurrently(url):
    results: list[float] = []

    def one() -> None:
        response = httpx.post(f"{url('t-stream')}/events?count=5&delay=0.2", json={}, timeout=20)
        assert parse_body(response.text)[-1]["type"] == "complete"
        results.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert max(results) - started < 1.9, "three 1-second streams should overlap, not queue"


def test_cors_follows_the_function_url_configuration(stack, url):
    allowed = stack.outputs()["apiUrl"]
    preflight = httpx.options(
        f"{url('t-stream')}/events",
        headers={"Origin": allowed, "Access-Control-Request-Method": "POST"},
        timeout=20,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    streamed = httpx.post(f"{url('t-stream')}/events?count=1", headers={"Origin": allowed}, json={}, timeout=20)
    assert streamed.headers["access-control-allow-origin"] == allowed
    foreign = httpx.post(f"{url('t-stream')}/events?count=1", headers={"Origin": "https://evil.example"}, timeout=20)
    assert "access-control-allow-origin" not in foreign.headers
    assert httpx.options(f"{url('t-stream')}/events", headers={"Origin": "https://evil.example"}).status_code == 403
