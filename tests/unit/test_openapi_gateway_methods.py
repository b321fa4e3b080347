"""The local API Gateway answers every HTTP method, as schemathesis probes them (undocumented methods
included): API Gateway's own answers, never `http.server`'s bare 501."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator

import pytest

from local.api_gateway import ApiGatewayServer


@pytest.fixture
def gateway() -> Iterator[int]:
    server = ApiGatewayServer(0, lambda _: {}, lambda: {}, "/pool")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def request(port: int, method: str, path: str = "/users/u1/coaches") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=b"{}" if method in ("POST", "TRACE") else None)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_options_is_answered_by_the_gateway_as_its_cors_configuration_does(gateway):
    assert request(gateway, "OPTIONS") == (204, b"")


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND"])
def test_a_method_no_route_can_name_is_the_gateways_404(gateway, method):
    status, body = request(gateway, method)
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})


def test_head_goes_through_the_routes_and_answers_without_a_body(gateway):
    # no route here, so the gateway's 404; with the stack's routes, HEAD reaches a path's ANY route (a 405)
    assert request(gateway, "HEAD") == (404, b"")
    status, body = request(gateway, "GET")
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
