"""The Runtime API's wire vocabulary, shared by the client and the response stream."""

from __future__ import annotations

import traceback
from typing import Any

API_VERSION = "2018-06-01"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
"""The error type: a header on `/error` posts, a trailer on a stream that fails after its first byte."""
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The error document the Runtime API expects, as the stock runtime would write it."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[1:],
    }
