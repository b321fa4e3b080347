"""The common way: FastAPI + uvicorn `StreamingResponse` (what Lambda Web Adapter would front)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from bench.handlers import bench_events
from shared.http.sse import SSE_HEADERS, encode

app = FastAPI()


@app.post("/events")
def events(count: int = 0, delay: float = 0.0) -> StreamingResponse:
    def body() -> Iterator[bytes]:
        for event in bench_events(count, delay, str(uuid.uuid4())):
            yield encode(event)

    return StreamingResponse(body(), headers=SSE_HEADERS)
