"""`_X_AMZN_TRACE_ID` per invocation when several run at once in one process.

Lambda hands each invocation its trace header, and the stock runtime puts it in the process
environment, where botocore (the `X-Amzn-Trace-Id` header of every AWS call) and Powertools' Logger
read it. With invocations on threads, one process-wide variable would give every call the trace of
whichever invocation wrote it last. Once `install()` has run, `os.environ` reads and writes that one
variable through a context variable: each invocation's thread, and every task it hands a copy of its
context to, sees its own; every other variable is the process's as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar

TRACE_ID_VARIABLE = "_X_AMZN_TRACE_ID"

_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)


class InvocationEnviron(MutableMapping[str, str]):
    """The process environment, with the trace id held per context."""

    def __init__(self, process: MutableMapping[str, str]) -> None:
        self.process = process

    def __getitem__(self, key: str) -> str:
        if key == TRACE_ID_VARIABLE:
            value = _trace_id.get()
            if value is None:
                raise KeyError(key)
            return value
        return self.process[key]

    def __setitem__(self, key: str, value: str) -> None:
        if key == TRACE_ID_VARIABLE:
            _trace_id.set(value)
        else:
            self.process[key] = value

    def __delitem__(self, key: str) -> None:
        if key == TRACE_ID_VARIABLE:
            if _trace_id.get() is None:
                raise KeyError(key)
            _trace_id.set(None)
        else:
            del self.process[key]

    def __iter__(self) -> Iterator[str]:
        yield from (key for key in self.process if key != TRACE_ID_VARIABLE)
        if _trace_id.get() is not None:
            yield TRACE_ID_VARIABLE

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


def install() -> None:
    """Make `os.environ` (and so `os.getenv`) per invocation for the trace id; once per process."""
    if not isinstance(os.environ, InvocationEnviron):
        os.environ.pop(TRACE_ID_VARIABLE, None)
        os.environ = InvocationEnviron(os.environ)  # type: ignore[assignment]  # noqa: B003 (wrapped, not replaced)
