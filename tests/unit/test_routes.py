"""Path matching for the streaming routes: typed parameters, 404 and 405 exactly where they belong."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.errors import NotFound
from shared.http.errors import MethodNotAllowed, Problem
from shared.http.event import parse_http_event
from shared.http.routes import (
    CONVERSATION_STREAM_ROUTE,
    CREATOR_SESSION_STREAM_ROUTE,
    ConversationStreamPath,
    CreatorSessionStreamPath,
    Route,
    RoutePattern,
    Router,
)
from tests.fixtures.events import function_url_event

CONV = "/users/u-1/coaches/coach_2/conversations/conv3/stream"
SESSION = "/users/u-1/coach-creator-sessions/s-9/stream"


@pytest.fixture
def router() -> Router:
    return Router([CONVERSATION_STREAM_ROUTE, CREATOR_SESSION_STREAM_ROUTE])


def test_conversation_route_gives_typed_params(router):
    route, params = router.match("POST", CONV)

    assert route is CONVERSATION_STREAM_ROUTE
    assert isinstance(params, ConversationStreamPath)
    assert (params.user_id, params.coach_id, params.conversation_id) == ("u-1", "coach_2", "conv3")


def test_creator_session_route_gives_typed_params(router):
    route, params = router.match("POST", SESSION)

    assert route is CREATOR_SESSION_STREAM_ROUTE
    assert params == CreatorSessionStreamPath(userId="u-1", sessionId="s-9")


def test_params_are_frozen():
    params = CREATOR_SESSION_STREAM_ROUTE.parse(SESSION)
    with pytest.raises(ValidationError):
        params.user_id = "someone-else"


def test_matches_the_raw_path_of_a_function_url_event(router):
    request = parse_http_event(function_url_event(method="post", path=CONV))

    route, params = router.match(request.method, request.path)

    assert route is CONVERSATION_STREAM_ROUTE
    assert params.conversation_id == "conv3"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/users/u-1/coaches/c/conversations/x",  # no /stream
        "/users/u-1/coaches/c/conversations/x/stream/",  # trailing slash
        "/users/u-1/coach-creator-sessions/s/stream/",
        "/users/u-1/coaches/c/conversations/x/stream/extra",  # extra segment
        "/api/users/u-1/coach-creator-sessions/s/stream",  # extra leading segment
        "/users//coaches/c/conversations/x/stream",  # empty segment
        "//users/u-1/coach-creator-sessions/s/stream",
        "/users/u-1/coaches/c/conversations/x/y/stream",  # id spanning two segments
        "/Users/u-1/coach-creator-sessions/s/stream",  # literals are case-sensitive
        "/users/u-1/coach%2Dcreator-sessions/s/stream",  # literals are not decoded
        "/users/u-1/coach-creator-sessions/s/stream?x=1",  # a query never belongs to rawPath
    ],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_unknown_paths_are_404(router, path, method):
    with pytest.raises(NotFound) as caught:
        router.match(method, path)
    assert Problem.of(caught.value).status == 404


@pytest.mark.parametrize(
    "user_id",
    [
        "u.1",  # dot is not an id character
        "u%201",  # decodes to a space
        "u%2F1",  # decodes to '/': cannot smuggle a segment
        "%2E%2E",  # decodes to '..'
        "u%C3%A9",  # decodes to a non-ASCII letter
        "u%FF",  # not UTF-8 once decoded
        "u%zz",  # malformed escape stays literal
        "a" * 129,
        "u+1",
        "u@1",
    ],
)
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_right_shape_with_an_invalid_id_is_404_for_any_method(router, user_id, method):
    with pytest.raises(NotFound):
        router.match(method, f"/users/{user_id}/coach-creator-sessions/s/stream")


def test_longest_valid_id_is_accepted(router):
    _, params = router.match("POST", f"/users/{'a' * 128}/coach-creator-sessions/s/stream")
    assert params.user_id == "a" * 128


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [("u%5F1", "u_1"), ("u%2d1", "u-1"), ("%41bc", "Abc"), ("plain", "plain")],
)
def test_parameters_are_percent_decoded_after_matching(router, encoded, decoded):
    _, params = router.match("POST", f"/users/{encoded}/coach-creator-sessions/s/stream")
    assert params.user_id == decoded


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", [CONV, SESSION])
def test_known_path_with_another_method_is_405_with_allow(router, method, path):
    with pytest.raises(MethodNotAllowed) as caught:
        router.match(method, path)

    assert Problem.of(caught.value).status == 405
    assert Problem.of(caught.value).headers == {"Allow": "POST"}


def test_method_is_case_insensitive(router):
    route, _ = router.match("post", SESSION)
    assert route is CREATOR_SESSION_STREAM_ROUTE


def test_allow_lists_every_method_of_the_path():
    router = Router(
        [
            Route("GET", "/users/{userId}/coach-creator-sessions/{sessionId}", CreatorSessionStreamPath),
            Route("PUT", "/users/{userId}/coach-creator-sessions/{sessionId}", CreatorSessionStreamPath),
        ]
    )

    assert router.match("PUT", "/users/u/coach-creator-sessions/s").route.method == "PUT"
    with pytest.raises(MethodNotAllowed) as caught:
        router.match("POST", "/users/u/coach-creator-sessions/s")
    assert Problem.of(caught.value).headers["Allow"] == "GET, PUT"


def test_single_route_parse_raises_not_found():
    assert CONVERSATION_STREAM_ROUTE.parse(CONV).coach_id == "coach_2"
    with pytest.raises(NotFound):
        CONVERSATION_STREAM_ROUTE.parse(SESSION)


@pytest.mark.parametrize(
    "template",
    [
        "users/{userId}",  # not absolute
        "/users/{userId}/",  # trailing slash
        "/users//{userId}",  # empty segment
        "/users/x{userId}",  # parameter must be a whole segment
        "/users/{userId}/{userId}",  # duplicate
    ],
)
def test_bad_templates_fail_at_import_time(template):
    with pytest.raises(ValueError, match=r"template|segment|duplicate"):
        RoutePattern(template)


def test_template_names_must_match_the_model():
    with pytest.raises(ValueError, match="does not match the fields"):
        Route("POST", "/users/{userId}/coach-creator-sessions/{id}/stream", CreatorSessionStreamPath)
