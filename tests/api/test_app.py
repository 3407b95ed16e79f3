"""
The Klein API shell through ``treq.testing.StubTreq``: no sockets, no clock.

Covers bearer auth on both path prefixes (docs/cloudflare-api.md §1.1, §3.1), JSON
errors everywhere, CORS (§2.1) and adding a route to the table (:meth:`RealtimeAPI.routes`).
"""

from __future__ import annotations

import json
import re

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock

from realtime.api.app import RealtimeAPI, Route
from realtime.api.http import MAX_BODY, MAX_DEPTH, read_json
from realtime.api.errors import ApiError
from realtime.api.openapi import DOCUMENT
from realtime.storage import App, ServerConfig, StateStore
from tests.api.compose import compose

STORED = App("a" * 32, "s" * 64, 1.0, generated=True)
CONFIGURED = App("cli-app", "cli-secret")


# Routes added to the table by a subclass, as a new route class would be; they
# live under /test-* so they cannot shadow a real route.
def _echo(request, app, thing):
    """Echo the body (test only)."""
    return 201, {"app": app.app_id, "thing": thing, "body": read_json(request)}


async def _async_route(request, app):
    """An async route that fails with an ApiError (test only)."""
    raise ApiError(425, "session_error", "not yet")


def _crash(request, app):
    """A route with a bug (test only)."""
    raise RuntimeError("boom")


class WithTestRoutes(RealtimeAPI):
    """The API with three more app routes."""

    def routes(self) -> list[Route]:
        routes = super().routes()
        app = next(route.guard for route in routes if route.path == "/")
        return routes + [Route("POST", "/test-echo/<thing>", _echo, app),
                         Route("PUT", "/test-echo/<thing>", _echo, app),
                         Route("GET", "/test-async", _async_route, app),
                         Route("GET", "/test-crash", _crash, app)]


@pytest.fixture
def store(tmp_path):
    s = StateStore(tmp_path / "state.sqlite3")
    s.add_app(STORED)
    yield s
    s.close()


@pytest.fixture
def treq(store):
    api = compose(store, ServerConfig(apps=(CONFIGURED,)), Clock(), api_class=WithTestRoutes)
    return StubTreq(api.app.resource())


def call(treq, method, url, headers=None, data=None):
    """Return (status, headers, parsed JSON or None) of one request."""
    response = treq.request(method, "https://127.0.0.1" + url, headers=headers or {}, data=data)
    response = response_result(treq, response)
    raw = response_result(treq, response.content())
    body = json.loads(raw) if raw else None
    return response.code, response.headers, body


def response_result(treq, deferred):
    treq.flush()
    results = []
    deferred.addBoth(results.append)
    assert results, "request did not finish"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def bearer(secret):
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("prefix", ["/v1/apps", "/apps"])
@pytest.mark.parametrize(
    ("app_id", "headers", "status", "code"),
    [
        # no Authorization header at all
        (STORED.app_id, {}, 401, "unauthorized"),
        # a different scheme
        (STORED.app_id, {"Authorization": "Basic " + "s" * 64}, 401, "unauthorized"),
        # "Bearer" with no token
        (STORED.app_id, {"Authorization": "Bearer "}, 401, "unauthorized"),
        # the wrong secret
        (STORED.app_id, bearer("x" * 64), 401, "unauthorized"),
        # another app's secret
        (STORED.app_id, bearer(CONFIGURED.secret), 401, "unauthorized"),
        # an unknown app id with a token: the same 401 as a wrong token (no app-id oracle)
        ("f" * 32, bearer(STORED.secret), 401, "unauthorized"),
        # an unknown app id without a token: 401 first, no app-id oracle
        ("f" * 32, {}, 401, "unauthorized"),
    ],
)
def test_auth_failures(treq, prefix, app_id, headers, status, code) -> None:
    got_status, got_headers, body = call(treq, "GET", f"{prefix}/{app_id}/", headers)
    assert got_status == status
    assert body["errorCode"] == code
    assert isinstance(body["errorDescription"], str) and body["errorDescription"]
    assert set(body) == {"errorCode", "errorDescription"}
    assert got_headers.getRawHeaders("content-type") == ["application/json"]


@pytest.mark.parametrize("prefix", ["/v1/apps", "/apps"])
@pytest.mark.parametrize("app", [STORED, CONFIGURED], ids=["stored", "configured"])
def test_auth_success(treq, prefix, app) -> None:
    status, _, body = call(treq, "GET", f"{prefix}/{app.app_id}/", bearer(app.secret))
    assert status == 200
    assert body["appId"] == app.app_id


def test_bearer_scheme_is_case_insensitive(treq) -> None:
    headers = {"Authorization": f"bEaReR {STORED.secret}"}
    assert call(treq, "GET", f"/v1/apps/{STORED.app_id}", headers)[0] == 200


def test_route_with_path_args_and_json_body(treq) -> None:
    status, _, body = call(
        treq, "POST", f"/v1/apps/{CONFIGURED.app_id}/test-echo/x1?correlationId=7",
        {**bearer(CONFIGURED.secret), "Content-Type": "text/plain;charset=UTF-8"},
        data=b'{"a": [1, 2]}',
    )
    assert (status, body) == (201, {"app": "cli-app", "thing": "x1", "body": {"a": [1, 2]}})


def test_empty_body_is_empty_object(treq) -> None:
    status, _, body = call(
        treq, "PUT", f"/apps/{CONFIGURED.app_id}/test-echo/y", bearer(CONFIGURED.secret)
    )
    assert (status, body["body"]) == (201, {})


@pytest.mark.parametrize(
    ("data", "status", "code", "description"),
    [
        (b"{", 400, "decoding_error", "The request body is not valid JSON"),
        (b"\xff\xfe", 400, "decoding_error", "The request body is not valid JSON"),
        (b"[1]", 400, "decoding_error", "The request body must be a JSON object"),
        (b"null", 400, "decoding_error", "The request body must be a JSON object"),
        # nested past the decoder's recursion (was a 500 and a traceback), and past MAX_DEPTH
        (b"[" * 100_000 + b"]" * 100_000, 400, "decoding_error",
         f"The request body nests deeper than {MAX_DEPTH} levels"),
        (b'{"a":' * 33 + b"1" + b"}" * 33, 400, "decoding_error",
         f"The request body nests deeper than {MAX_DEPTH} levels"),
        (b" " * (MAX_BODY + 1), 413, "payload_too_large",
         f"Request body exceeds {MAX_BODY} bytes"),
    ],
)
def test_bad_bodies(treq, data, status, code, description) -> None:
    got = call(
        treq, "POST", f"/v1/apps/{CONFIGURED.app_id}/test-echo/z", bearer(CONFIGURED.secret),
        data=data,
    )
    assert (got[0], got[2]) == (status, {"errorCode": code, "errorDescription": description})


def test_nesting_up_to_max_depth_is_accepted(treq) -> None:
    data = b'{"a":' * (MAX_DEPTH - 1) + b"[]" + b"}" * (MAX_DEPTH - 1)
    got = call(treq, "POST", f"/v1/apps/{CONFIGURED.app_id}/test-echo/z",
               bearer(CONFIGURED.secret), data=data)
    assert got[0] == 201


def test_unknown_app_and_wrong_token_answer_alike(treq) -> None:
    """Issue 10 item 6: with any token, an unknown app id is indistinguishable from a known
    one (was 404 against 401)."""
    known = call(treq, "GET", f"/v1/apps/{STORED.app_id}/", bearer("guess" * 8))
    unknown = call(treq, "GET", "/v1/apps/" + "f" * 32 + "/", bearer("guess" * 8))
    assert (known[0], known[2]) == (unknown[0], unknown[2]) == (
        401, {"errorCode": "unauthorized",
              "errorDescription": "Unknown id or invalid bearer token"})


def test_async_route_api_error(treq) -> None:
    status, _, body = call(treq, "GET", f"/v1/apps/{CONFIGURED.app_id}/test-async",
                           bearer(CONFIGURED.secret))
    assert (status, body) == (425, {"errorCode": "session_error", "errorDescription": "not yet"})


def test_crash_is_json_500(treq) -> None:
    status, _, body = call(treq, "GET", f"/v1/apps/{CONFIGURED.app_id}/test-crash",
                           bearer(CONFIGURED.secret))
    assert (status, body["errorCode"]) == (500, "internal_error")


@pytest.mark.parametrize("path", ["/", "/nope", "/v1/apps", "/v1/apps/x/unknown/route",
                                  "/v2/apps/x/"])
def test_unknown_route_is_json_404(treq, path) -> None:
    status, headers, body = call(treq, "GET", path, bearer(STORED.secret))
    assert status == 404
    assert body["errorCode"] == "not_found"
    assert headers.getRawHeaders("content-type") == ["application/json"]


def test_wrong_method_is_json_405(treq) -> None:
    status, _, body = call(treq, "DELETE", f"/v1/apps/{STORED.app_id}/", bearer(STORED.secret))
    assert (status, body["errorCode"]) == (405, "method_not_allowed")


@pytest.mark.parametrize("path", [f"/v1/apps/{STORED.app_id}/", "/apps/x/test-echo/1", "/nope"])
def test_cors_preflight(treq, path) -> None:
    headers = {
        "Origin": "http://localhost:8000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    status, got, body = call(treq, "OPTIONS", path, headers)
    assert status == 204 and body is None
    assert got.getRawHeaders("access-control-allow-origin") == ["http://localhost:8000"]
    assert got.getRawHeaders("access-control-allow-headers") == [
        "authorization, content-type, if-match"]
    assert got.getRawHeaders("access-control-allow-methods") == [
        "GET, POST, PUT, PATCH, DELETE, OPTIONS"]
    assert got.getRawHeaders("vary") == ["Origin"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [(bearer(STORED.secret), 200), ({}, 401)],
    ids=["success", "error"],
)
def test_cors_on_actual_responses(treq, headers, status) -> None:
    headers = {**headers, "Origin": "https://example.test"}
    got_status, got, _ = call(treq, "GET", f"/v1/apps/{STORED.app_id}/", headers)
    assert got_status == status
    assert got.getRawHeaders("access-control-allow-origin") == ["https://example.test"]
    assert got.getRawHeaders("vary") == ["Origin"]


def test_no_origin_no_allow_origin(treq) -> None:
    _, got, _ = call(treq, "GET", f"/v1/apps/{STORED.app_id}/", bearer(STORED.secret))
    assert got.getRawHeaders("access-control-allow-origin") is None
    assert got.getRawHeaders("vary") == ["Origin"]


def _openapi_path(path: str) -> str:
    """``/sessions/<session_id>`` -> ``/apps/{appId}/sessions/{sessionId}``."""
    def camel(match: re.Match) -> str:
        first, *rest = match.group(1).split("_")
        return "{" + first + "".join(word.title() for word in rest) + "}"
    return "/apps/{appId}" + re.sub(r"<(\w+)>", camel, path)


def test_the_route_table_is_what_the_openapi_document_describes(store) -> None:
    """The one table (RealtimeAPI.routes) and /openapi.json list the same app routes."""
    api = compose(store, ServerConfig(apps=(CONFIGURED,)), Clock())
    table = {(route.method.lower(), _openapi_path(route.path)) for route in api.routes()
             if route.guard.id_name == "app_id" and route.path != "/"}
    documented = {(method, path) for path, operations in DOCUMENT["paths"].items()
                  for method in operations}
    assert table == documented
    turn = {(route.method, route.path) for route in api.routes() if route.guard.id_name == "key_id"}
    assert turn == {("POST", "/credentials/generate-ice-servers"),
                    ("POST", "/credentials/generate"),
                    ("POST", "/credentials/<username>/revoke"), ("GET", "/usage")}

