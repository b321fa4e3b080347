"""The one error mapping every adapter shares: transport failures become typed `ModelError`s.

Adapters produce raw events and name the exceptions their transport raises; this module decides
`ModelUnavailable` versus `ModelStreamInterrupted` (by whether text was yielded) and treats a
stream that ends without a `StreamEnd` as a failure, since a cut reply must never pass as whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.models.port import (
    ModelError,
    ModelEvent,
    ModelStreamInterrupted,
    ModelUnavailable,
    StreamEnd,
    TextDelta,
)

Failures = tuple[type[BaseException], ...]
Describe = Callable[[BaseException], str]


def exception_name(error: BaseException) -> str:
    return type(error).__name__


def guard_stream(
    events: Iterator[ModelEvent], failures: Failures, describe: Describe = exception_name
) -> Iterator[ModelEvent]:
    """Pass `events` through until the `StreamEnd`, mapping `failures` to the right `ModelError`."""
    partial: list[str] = []
    try:
        for event in events:
            if isinstance(event, TextDelta):
                if not event.text:
                    continue
                partial.append(event.text)
            yield event
            if isinstance(event, StreamEnd):
                return
    except ModelError as error:
        raise _failure(str(error), error.cause, partial) from error
    except failures as error:
        raise _failure(f"model stream failed: {error}", describe(error), partial) from error
    finally:
        _close(events)
    raise _failure("model stream ended without a stop", "IncompleteStream", partial)


@contextmanager
def guard_call(failures: Failures, describe: Describe = exception_name) -> Iterator[None]:
    """For whole replies: any of `failures` inside the block becomes `ModelUnavailable`."""
    try:
        yield
    except failures as error:
        raise ModelUnavailable(f"model call failed: {error}", cause=describe(error)) from error


def _close(events: Iterator[ModelEvent]) -> None:
    """Release the adapter's connection now, also when the consumer stops early."""
    close = getattr(events, "close", None)
    if close is not None:
        close()


def _failure(message: str, cause: str, partial: list[str]) -> ModelError:
    if partial:
        return ModelStreamInterrupted(message, partial_text="".join(partial), cause=cause)
    return ModelUnavailable(message, cause=cause)
