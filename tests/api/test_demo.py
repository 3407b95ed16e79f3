"""
The demo page and its proxy (realtime/api/demo.py) through ``treq.testing.StubTreq``.

* the page and its files are served, with a CSP, and hold no app secret;
* the proxy forwards to the app routes as the demo app, and only the calls of
  ``FORWARDED``: every other app route (and TURN key route) under ``/demo/api`` is a
  JSON 404, and so is any path that tries to climb out of ``/sessions/``;
* it answers its own origin only (no CORS, cross-site ``Origin``/``Sec-Fetch-Site`` 403);
* the limits still apply (``--session-rate``);
* ``--demo`` / ``--no-demo`` and the loopback default, down to what ``makeService`` mounts.
"""

from __future__ import annotations

import json
import re

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.web.resource import Resource

from realtime.api.app import RealtimeAPI
from realtime.api.demo import FORWARDED, PAGES, PROXY_PREFIX, DemoResource
from realtime.api.turn import PREFIX as TURN_KEY_PREFIX
from realtime.options import api_on_loopback
from realtime.service import Options
from realtime.storage import App, ServerConfig, StateStore
from tests.api.compose import compose
from tests.test_service import build

STORED = App("a" * 32, "s" * 64, 1.0, generated=True)
DEMO = App("demo-app", "demo-secret-do-not-ship")


@pytest.fixture
def store(tmp_path):
    s = StateStore(tmp_path / "state.sqlite3")
    s.add_app(STORED)
    yield s
    s.close()


def make(store: StateStore, demo: bool = True, **config) -> tuple[RealtimeAPI, StubTreq]:
    api = compose(store, ServerConfig(apps=(DEMO,), **config), Clock())
    root = api.app.resource()
    return api, StubTreq(DemoResource(root, DEMO) if demo else root)


def call(treq, method, path, headers=None, body=None):
    """Return (status, headers, raw body) of one request to https://127.0.0.1:8443."""
    data = None if body is None else json.dumps(body).encode()
    deferred = treq.request(method, "https://127.0.0.1:8443" + path,
                            headers={"Host": "127.0.0.1:8443", **(headers or {})}, data=data)
    treq.flush()
    results: list = []
    deferred.addBoth(results.append)
    assert results, "request did not finish"
    response = results[0]
    content: list = []
    response.content().addBoth(content.append)
    treq.flush()
    return response.code, response.headers, content[0]


def is_json_404(status, headers, raw) -> bool:
    return (status == 404 and headers.getRawHeaders("content-type") == ["application/json"]
            and json.loads(raw)["errorCode"] == "not_found")


# -- the page ------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(PAGES))
def test_the_page_and_its_files_hold_no_secret(store, path) -> None:
    _, treq = make(store)
    status, headers, raw = call(treq, "GET", path.decode())
    assert status == 200
    assert headers.getRawHeaders("content-type")[0] == PAGES[path][1]
    assert "script-src 'self'" in headers.getRawHeaders("content-security-policy")[0]
    assert raw
    for secret in (DEMO.secret, STORED.secret):
        assert secret.encode() not in raw


def test_the_page_uses_only_the_proxy_and_no_other_host(store) -> None:
    _, treq = make(store)
    page = call(treq, "GET", "/")[2].decode() + call(treq, "GET", "/demo/demo.js")[2].decode()
    assert "Authorization" not in page and "Bearer" not in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)   # no CDN, no other origin
    assert f"const API = '{PROXY_PREFIX.decode()}'" in page


# -- the proxy -----------------------------------------------------------------------


def test_the_proxy_makes_sessions_of_the_demo_app(store) -> None:
    api, treq = make(store)
    status, headers, raw = call(treq, "POST", "/demo/api/sessions/new",
                                headers={"Origin": "https://127.0.0.1:8443",
                                         "Sec-Fetch-Site": "same-origin"})
    assert status == 201, raw
    assert headers.getRawHeaders("access-control-allow-origin") is None
    session_id = json.loads(raw)["sessionId"]
    # the session is the demo app's: its owner reads it with its secret, another app cannot
    own = call(treq, "GET", f"/v1/apps/{DEMO.app_id}/sessions/{session_id}",
               headers={"Authorization": f"Bearer {DEMO.secret}"})
    assert own[0] == 200
    other = call(treq, "GET", f"/v1/apps/{STORED.app_id}/sessions/{session_id}",
                 headers={"Authorization": f"Bearer {STORED.secret}"})
    assert other[0] == 404
    assert call(treq, "GET", f"/demo/api/sessions/{session_id}")[0] == 200


def test_the_proxy_ignores_a_bearer_token_it_is_given(store) -> None:
    """A token in the request names no other app: the proxy acts as the demo app only."""
    api, treq = make(store)
    status, _, raw = call(treq, "POST", "/demo/api/sessions/new",
                          headers={"Authorization": f"Bearer {STORED.secret}"})
    assert status == 201
    session_id = json.loads(raw)["sessionId"]
    assert call(treq, "GET", f"/v1/apps/{STORED.app_id}/sessions/{session_id}",
                headers={"Authorization": f"Bearer {STORED.secret}"})[0] == 404


class Recorder(Resource):
    """An inner resource that records what reached it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict] = []

    def render(self, request):
        self.seen.append({"path": request.path, "uri": request.uri, "postpath": request.postpath,
                          "authorization": request.getHeader(b"authorization"),
                          "origin": request.getHeader(b"origin")})
        return b"{}"


def test_a_forwarded_call_is_the_call_a_client_with_the_secret_makes() -> None:
    """What the API root (and with --cluster, its forwarding) sees: the app's path and secret."""
    inner = Recorder()
    treq = StubTreq(DemoResource(inner, DEMO))
    call(treq, "PUT", "/demo/api/sessions/" + "ab" * 16 + "/tracks/update?x=1",
         headers={"Origin": "https://127.0.0.1:8443", "Authorization": "Bearer other"})
    call(treq, "GET", "/v1/apps/other/usage", headers={"Authorization": "Bearer mine"})
    target = f"/v1/apps/{DEMO.app_id}/sessions/{'ab' * 16}/tracks/update".encode()
    assert inner.seen == [
        {"path": target, "uri": target, "postpath": target.split(b"/")[1:],
         "authorization": f"Bearer {DEMO.secret}".encode(), "origin": None},
        {"path": b"/v1/apps/other/usage", "uri": b"/v1/apps/other/usage",
         "postpath": [b"v1", b"apps", b"other", b"usage"], "authorization": b"Bearer mine",
         "origin": None},
    ]


def _concrete(path: str) -> str:
    return re.sub(r"<[^>]+>", "x" * 32, path)


def _forwarded(method: str, path: str) -> bool:
    return any(m.decode() == method and pattern.fullmatch(path.encode())
               for m, pattern in FORWARDED)


def test_every_other_route_under_the_proxy_is_a_json_404(store) -> None:
    api, treq = make(store)
    routes = [(r.method, _concrete(r.path)) for r in api.routes()
              if r.guard.id_name in ("app_id", "key_id")]
    others = [(method, path) for method, path in routes if not _forwarded(method, path)]
    assert len(routes) - len(others) == len(FORWARDED) == 7
    assert len(others) >= 15  # tracks/close, datachannels/update|close, echo, usage, WHIP ...
    climbing = ["/sessions/../usage", "/sessions/%2e%2e/usage", "/sessions/..%2fusage",
                "/sessions/x/../../usage", "/sessions/new/../../diagnostics"]
    for method, path in others + [("GET", p) for p in climbing] + [
            ("GET", ""), ("GET", "/"), ("PUT", "/sessions/new"), ("OPTIONS", "/sessions/new"),
            ("POST", TURN_KEY_PREFIX.replace("<key_id>", "k") + "/credentials/generate-ice-servers")]:
        answer = call(treq, method, PROXY_PREFIX.decode() + path)
        assert is_json_404(*answer), (method, path, answer)
        assert answer[1].getRawHeaders("access-control-allow-origin") is None


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "https://127.0.0.1:9999"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://127.0.0.1:8443"},
])
def test_the_proxy_answers_its_own_origin_only(store, headers) -> None:
    api, treq = make(store)
    status, answered, raw = call(treq, "POST", "/demo/api/sessions/new", headers=headers)
    assert status == 403 and json.loads(raw)["errorCode"] == "forbidden"
    assert answered.getRawHeaders("access-control-allow-origin") is None
    assert api.switchboard.sessions == {}            # nothing was made


def test_no_cors_preflight_for_the_proxy(store) -> None:
    _, treq = make(store)
    status, headers, _ = call(treq, "OPTIONS", "/demo/api/sessions/new",
                              headers={"Origin": "https://evil.example",
                                       "Access-Control-Request-Method": "POST"})
    assert status == 404
    assert headers.getRawHeaders("access-control-allow-origin") is None
    assert headers.getRawHeaders("access-control-allow-methods") is None


def test_the_session_rate_limit_applies_through_the_proxy(store) -> None:
    _, treq = make(store, session_rate=1, session_burst=2)
    codes = [call(treq, "POST", "/demo/api/sessions/new")[0] for _ in range(3)]
    assert codes == [201, 201, 429]


def test_without_the_demo_nothing_of_it_is_mounted(store) -> None:
    _, treq = make(store, demo=False)
    for method, path in [("GET", "/"), ("GET", "/demo/demo.js"),
                         ("POST", "/demo/api/sessions/new")]:
        assert is_json_404(*call(treq, method, path)), path
    assert call(treq, "GET", "/v1/apps/demo-app/usage")[0] == 401


# -- --demo, --no-demo and the loopback default ---------------------------------------


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


@pytest.mark.parametrize(("argv", "on"), [
    ([], True),                                                    # ssl on 127.0.0.1:8443
    (["--api", "tcp:8080:interface=127.0.0.1"], True),
    (["--api", r"tcp6:8080:interface=\:\:1"], True),
    (["--api", "tcp:8080"], False),                                # every interface
    (["--api", "tcp:8080:interface=0.0.0.0"], False),
    (["--api", "tcp:8080:interface=192.0.2.7"], False),
    (["--api", "unix:/tmp/realtime.sock"], False),
    (["--api", "tcp:8080:interface=0.0.0.0", "--demo"], True),
    (["--no-demo"], False),
    (["--api", "tcp:8080:interface=127.0.0.1", "--no-demo"], False),
])
def test_demo_default_follows_the_api_address(argv, on) -> None:
    assert parse(*argv)["demo"] is on


def test_demo_and_no_demo_contradict() -> None:
    with pytest.raises(usage.UsageError, match="--demo and --no-demo"):
        parse("--demo", "--no-demo")


def test_loopback_detection() -> None:
    assert api_on_loopback(None)
    assert api_on_loopback("ssl:8443:interface=127.0.0.1:privateKey=k.pem:certKey=c.pem")
    assert not api_on_loopback("ssl:8443:privateKey=k.pem")
    assert not api_on_loopback("tcp:8080:interface=localhost")     # a name: not trusted


def site_root(service):
    """Return the resource the API listener serves."""
    return service.api_listener.factory.resource


def test_a_service_on_a_public_address_serves_no_demo(tmp_path) -> None:
    service, _ = build(tmp_path, "--api", "tcp:8080:interface=0.0.0.0")
    assert service.parts.demo is None
    treq = StubTreq(site_root(service))
    assert is_json_404(*call(treq, "GET", "/"))
    assert is_json_404(*call(treq, "POST", "/demo/api/sessions/new"))
    service.store.close()


def test_a_service_on_loopback_serves_the_demo_as_its_generated_app(tmp_path) -> None:
    service, _ = build(tmp_path, "--api", "tcp:8080:interface=127.0.0.1")
    generated = service.store.apps()[0]
    demo = service.parts.demo
    assert demo is not None and demo.app == generated and site_root(service) is demo
    treq = StubTreq(site_root(service))
    status, _, raw = call(treq, "GET", "/")
    assert status == 200 and generated.secret.encode() not in raw
    status, _, raw = call(treq, "POST", "/demo/api/sessions/new")
    assert status == 201
    service.store.close()


def test_the_first_command_line_app_is_the_demo_app(tmp_path) -> None:
    service, _ = build(tmp_path, "--app", "one:secret-one", "--app", "two:secret-two")
    assert service.parts.demo is not None and service.parts.demo.app == App("one", "secret-one")
    service.store.close()


def test_help_explains_demo_and_its_trade_off() -> None:
    text = " ".join(str(Options()).split())
    assert "--demo" in text and "--no-demo" in text
    assert "anyone who loads the page" in text and "loopback" in text
