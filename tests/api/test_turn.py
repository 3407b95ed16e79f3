"""The TURN key routes through StubTreq: credentials, revocation, usage, auth errors."""

from __future__ import annotations

import json

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock

from realtime.api.turn import TurnKeys
from realtime.storage import ServerConfig, StateStore, TurnKey
from realtime.stun.credentials import long_term_key
from realtime.turn.credentials import Credential, TurnKeyCredentials
from tests.api.compose import compose

KEY = TurnKey("key-1", "token-1-secret")
BASE = "https://127.0.0.1/v1/turn/keys/key-1"


class Revocations:
    def __init__(self):
        self.calls = []

    def __call__(self, username, now):
        self.calls.append((username, now))


@pytest.fixture
def env(tmp_path):
    store = StateStore(tmp_path / "s.sqlite3")
    clock = Clock()
    clock.advance(1_800_000_000)
    pending = []
    revocations = Revocations()
    turn = TurnKeys(store, [KEY], TurnKeyCredentials({KEY.key_id: KEY.token}),
                    drain=lambda: [pending.pop() for _ in list(pending)], revoke=revocations)
    api = compose(store, ServerConfig(), clock, turn=turn)
    api.turn.set_urls("203.0.113.9", 3478, 5349, [("udp", 53), ("tcp", 80), ("tls", 443)])
    yield StubTreq(api.app.resource()), api, pending, revocations
    store.close()


def call(treq, method, url, token=KEY.token, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    deferred = treq.request(method, url, headers=headers, data=data)
    treq.flush()
    results = []
    deferred.addBoth(results.append)
    response = results[0]
    content = []
    response.content().addBoth(content.append)
    treq.flush()
    return response.code, json.loads(content[0]) if content[0] else None


def test_generate_ice_servers(env):
    treq, api, _, _ = env
    status, body = call(treq, "POST", BASE + "/credentials/generate-ice-servers", body={"ttl": 86400})
    assert status == 201
    stun, relay = body["iceServers"]
    assert stun == {"urls": ["stun:203.0.113.9:3478", "stun:203.0.113.9:53"]}
    assert relay["urls"] == [
        "turn:203.0.113.9:3478?transport=udp", "turn:203.0.113.9:3478?transport=tcp",
        "turns:203.0.113.9:5349?transport=tcp", "turn:203.0.113.9:53?transport=udp",
        "turn:203.0.113.9:80?transport=tcp", "turns:203.0.113.9:443?transport=tcp"]
    assert len(relay["username"]) == 96 and len(relay["credential"]) == 96
    credential = api.turn.credentials.credential(relay["username"], "realm", api.clock.seconds())
    assert credential.key == long_term_key(relay["username"], "realm", relay["credential"])
    assert credential.expires == 1_800_000_000 + 86400


def test_legacy_generate_is_an_object(env):
    treq, *_ = env
    status, body = call(treq, "POST", BASE + "/credentials/generate", body={"ttl": 60})
    assert status == 201 and isinstance(body["iceServers"], dict)
    assert body["iceServers"]["urls"][0].startswith("stun:")


@pytest.mark.parametrize("token, url, body, expected", [
    (None, BASE, {"ttl": 60}, (401, "unauthorized")),
    ("wrong", BASE, {"ttl": 60}, (401, "unauthorized")),
    # an unknown key id answers like a wrong token (issue 10 item 6: was 404, an oracle)
    (KEY.token, "https://127.0.0.1/v1/turn/keys/nope", {"ttl": 60}, (401, "unauthorized")),
    ("wrong", "https://127.0.0.1/v1/turn/keys/nope", {"ttl": 60}, (401, "unauthorized")),
    (KEY.token, BASE, {"ttl": 48 * 3600 + 1}, (400, "invalid_params")),
    (KEY.token, BASE, {"ttl": "60"}, (400, "invalid_params")),
    (KEY.token, BASE, {"ttl": 60, "customIdentifier": 5}, (400, "invalid_params")),
])
def test_generate_errors(env, token, url, body, expected):
    treq, *_ = env
    status, answer = call(treq, "POST", url + "/credentials/generate-ice-servers", token, body)
    assert (status, answer["errorCode"]) == expected


def test_unknown_key_and_wrong_token_answer_alike(env):
    treq, *_ = env
    known = call(treq, "POST", BASE + "/credentials/generate-ice-servers", "guess" * 4,
                 {"ttl": 60})
    unknown = call(treq, "POST", "https://127.0.0.1/v1/turn/keys/nope/credentials/"
                   "generate-ice-servers", "guess" * 4, {"ttl": 60})
    assert known == unknown
    assert known[0] == 401


def test_revoke(env):
    treq, api, _, revocations = env
    _, body = call(treq, "POST", BASE + "/credentials/generate-ice-servers", body={"ttl": 600})
    username = body["iceServers"][1]["username"]
    status, answer = call(treq, "POST", f"{BASE}/credentials/{username}/revoke")
    assert status == 204 and answer is None
    assert revocations.calls == [(username, 1_800_000_000)]
    assert api.turn.credentials.credential(username, "r", api.clock.seconds()) is None
    assert api.turn.store.turn.credentials(0)[0][4] is True
    status, _ = call(treq, "POST", f"{BASE}/credentials/{'ab' * 48}/revoke")
    assert status == 404


def test_usage_totals_and_series(env):
    treq, api, pending, _ = env
    _, body = call(treq, "POST", BASE + "/credentials/generate-ice-servers",
                   body={"ttl": 600, "customIdentifier": "user-7"})
    username = body["iceServers"][1]["username"]
    credential = Credential(username, b"", None, "key-1", "user-7")
    pending.append((credential, 100, 1000))
    api.turn.flush(api.clock.seconds())
    api.clock.advance(60)
    pending.append((credential, 1, 10))
    status, usage = call(treq, "GET", BASE + "/usage?since=1799990000")
    assert status == 200
    assert (usage["ingressBytes"], usage["egressBytes"]) == (101, 1010)
    assert [p["egressBytes"] for p in usage["series"]] == [1000, 10]
    assert usage["series"][0]["minute"] == "2027-01-15T08:00:00Z"
    _, filtered = call(treq, "GET", BASE + "/usage?since=1799990000&customIdentifier=other")
    assert filtered["egressBytes"] == 0
    _, by_user = call(treq, "GET", f"{BASE}/usage?since=1799990000&username={username}")
    assert by_user["egressBytes"] == 1010
    status, bad = call(treq, "GET", BASE + "/usage?since=yesterday")
    assert (status, bad["errorCode"]) == (400, "invalid_params")


@pytest.mark.parametrize("query", ["since=nan", "until=inf", "since=1e308", "until=-1e13"])
def test_usage_times_that_are_not_times_are_400_not_500(env, query):
    status, bad = call(env[0], "GET", f"{BASE}/usage?{query}")
    assert (status, bad["errorCode"]) == (400, "invalid_params")
