"""CORS for responses the function writes itself.

Function URLs add CORS headers from their own configuration; a REST API proxy integration does
not, so for v1 events the function answers `Access-Control-Allow-Origin` for the configured origins.
"""

from __future__ import annotations

from shared.http.event import HttpRequest
from shared.settings import WebSettings, settings


def allowed_origins() -> frozenset[str]:
    return frozenset(settings(WebSettings).allowed_origins)


def cors_headers(request: HttpRequest) -> dict[str, str]:
    """The headers a REST API response needs for the request's origin; none for Function URLs."""
    origin = request.header("origin")
    if request.payload_version != "1.0" or not origin or origin not in allowed_origins():
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
