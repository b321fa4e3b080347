"""A turn's events, as the contract names them (CONTRACT.md section 2), free of any wire format.

The flows yield these; the HTTP layer writes them as Server-Sent Events or collects them into one
JSON answer. A turn that fails after its first event yields `TurnFailed` last, holding the domain
error: which contract code and message it becomes is the HTTP layer's table's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.errors import CoachError


class SseEvent(BaseModel):
    """Base of every contract event; `type` tells the client which one it is."""

    model_config = ConfigDict(frozen=True)

    type: str

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class StartEvent(SseEvent):
    type: Literal["start"] = "start"
    status: Literal["initialized"] = "initialized"
    requestId: str  # noqa: N815 - the contract's field name


class ContextualEvent(SseEvent):
    type: Literal["contextual"] = "contextual"
    content: str
    updateType: str  # noqa: N815


class ChunkEvent(SseEvent):
    type: Literal["chunk"] = "chunk"
    content: str


class ProgressEvent(SseEvent):
    type: Literal["progress"] = "progress"
    progressDetails: dict[str, Any]  # noqa: N815


class CompleteEvent(SseEvent):
    """The flow decides the payload (see CONTRACT.md); it rides as extra fields."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: Literal["complete"] = "complete"
    status: Literal["finished"] = "finished"


class ErrorEvent(SseEvent):
    """The wire form of a failure; built by the HTTP layer from its error table, never by a flow."""

    type: Literal["error"] = "error"
    code: str
    message: str


@dataclass(frozen=True)
class TurnFailed:
    """A turn's last event when it could not finish; everything stored before it stays stored."""

    error: CoachError


TurnEvent = SseEvent | TurnFailed
