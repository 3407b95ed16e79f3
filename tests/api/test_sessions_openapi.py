"""
``GET /openapi.json`` and hostile request bodies on the SFU routes.

The document is ours: every path it names must be a route (authenticated
calls do not answer "No route"), every ``$ref`` must resolve, and it is
served without a token.  Random JSON bodies on every SFU route must never
produce a 5xx.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from realtime.api.openapi import DOCUMENT
from tests.api.test_sessions import Api


@pytest.fixture
def api(tmp_path):
    from realtime.storage import StateStore
    store = StateStore(tmp_path / "state.sqlite3")
    yield Api(store)
    store.close()


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_document_is_served_without_a_token(api) -> None:
    response = []
    api.treq.get("https://127.0.0.1/openapi.json", headers={"Origin": "https://x"}
                 ).addBoth(response.append)
    api.treq.flush()
    assert response[0].code == 200
    assert response[0].headers.getRawHeaders("access-control-allow-origin") == ["https://x"]
    body = []
    response[0].json().addBoth(body.append)
    api.treq.flush()
    assert body[0] == json.loads(json.dumps(DOCUMENT))
    assert body[0]["openapi"].startswith("3.0")


def test_every_reference_resolves() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    found = set(refs(DOCUMENT))
    assert found and all(r.startswith("#/components/schemas/") for r in found)
    assert {r.rsplit("/", 1)[1] for r in found} <= set(schemas)


def test_every_documented_path_is_a_route(api) -> None:
    session_id = api.session()
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            assert set(operation["responses"]) <= {"200", "201", "204", "400", "401", "404",
                                                   "406", "409", "410", "412", "415", "425",
                                                   "429", "503"}
            concrete = path.replace("/apps/{appId}", "").replace("{sessionId}", session_id)
            status, body = api.call(method.upper(), concrete, {})
            assert not (status == 404 and body["errorDescription"].startswith("No route")), path
            whip = "/ingest/" in path or "/play/" in path  # a JSON body: 415; no stream: 404
            adapters = "/adapters/" in path                # no tracks: 406 invalid_params
            expected = (404, 415) if whip else (406,) if adapters else (200, 201, 400)
            assert status in expected, (path, status, body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["tracks", "mid", "location", "sessionId", "trackName", "kind",
                         "sessionDescription", "sdp", "type", "force", "simulcast",
                         "preferredRid", "autoDiscover", "bidirectionalMediaStream", "x"]),
        inner, max_size=5),
    max_leaves=12)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON, route=st.sampled_from([
    ("POST", "/tracks/new"), ("PUT", "/tracks/close"), ("PUT", "/tracks/update"),
    ("PUT", "/renegotiate"), ("POST", "new")]))
def test_hostile_bodies_never_cause_a_server_error(api, body, route) -> None:
    method, path = route
    if path == "new":
        status, reply = api.call(method, "/sessions/new", body)
    else:
        session_id = api.session()
        status, reply = api.call(method, f"/sessions/{session_id}{path}", body, wait=3.5)
    assert status < 500, reply
    assert isinstance(reply, dict)
