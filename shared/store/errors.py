"""What a store refuses, in the domain's terms: the callers' exits map these like any domain error."""

from __future__ import annotations

from shared.errors import Conflict, NotFound


class RecordNotFound(NotFound):
    """The record a write depends on does not exist (any more)."""


class WriteConflict(Conflict):
    """A conditional write lost: someone else is answering, or the record changed or is complete."""
