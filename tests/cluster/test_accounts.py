"""
Apps, TURN keys, revocations and TURN usage shared through the directory (issue 12 item 1).

Two ``twistd realtime --cluster`` nodes and one ``redis-server``; each node generates
its own app and TURN key at its first start (no ``--app``, no ``--turn-key``).  TURN
clients are this project's STUN codec over real UDP sockets
(:mod:`tests.cluster.turn_client`), relaying to a UDP socket of the test.

Without ``realtime.cluster.accounts`` node B knows only its own app and key: A's app
gets 401 at B, A's credential gets 401 at B's TURN server, a revocation through A
leaves B relaying, and usage through A counts only A's traffic.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.cluster.test_jit import secret, wait_registered  # noqa: F401 (fixture)
from tests.cluster.turn_client import TurnClient
from tests.interop.realtime_server import Server

pytestmark = pytest.mark.interop


def start(tmp_path, redis_server, name: str) -> Server:
    """A node with a generated app and TURN key (printed by this, its first, start)."""
    server = Server(tmp_path / name, "--cluster", redis_server.url, "--node-id", name,
                    "--relay-address", "127.0.0.1:0", "--allow-loopback-peers",
                    "--relay-ports", "46000-46999", "--turn-usage-flush", "1")
    server.wait_ready()
    return server


def request(server: Server, method: str, path: str, token: str,
            body: dict | None = None) -> tuple[int, dict]:
    """One API call; return (status, JSON body or {})."""
    call = urllib.request.Request(
        server.api_url() + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def credential(server: Server, key_id: str, token: str, custom: str = "") -> tuple[str, str]:
    status, body = request(server, "POST", f"/v1/turn/keys/{key_id}/credentials/"
                           "generate-ice-servers", token, {"ttl": 600, "customIdentifier": custom})
    assert status == 201, body
    relay = body["iceServers"][1]
    return relay["username"], relay["credential"]


def received(peer: socket.socket, wait: float) -> list[bytes]:
    """Return what ``peer`` receives within ``wait`` seconds."""
    peer.settimeout(0.05)
    got, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            got.append(peer.recv(65535))
        except socket.timeout:
            pass
    return got


@pytest.fixture
def cluster(tmp_path, redis_server, secret):  # noqa: F811 (fixture)
    a = start(tmp_path, redis_server, "node-a")
    b = None
    try:
        b = start(tmp_path, redis_server, "node-b")
        wait_registered(redis_server, "node-a", "node-b")
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        yield a, b, peer
        peer.close()
    finally:
        for node in (b, a):
            if node is not None:
                node.stop()


def test_apps_keys_and_revocations_reach_every_node(cluster) -> None:
    a, b, peer = cluster
    app_id, app_secret = a.value("app id:"), a.value("app secret:")
    key_id, token = a.value("TURN key id:"), a.value("TURN key API token:")
    assert b.value("app id:") != app_id and b.value("TURN key id:") != key_id

    # A's app (generated at A's first start) calls B's API
    status, body = request(b, "GET", f"/v1/apps/{app_id}/", app_secret)
    assert status == 200 and body["appId"] == app_id, (status, body)
    status, body = request(b, "POST", f"/v1/apps/{app_id}/sessions/new", app_secret, {})
    assert status == 201, body
    assert request(b, "GET", f"/v1/apps/{app_id}/", "a wrong secret")[0] == 401
    assert request(b, "GET", "/v1/apps/no-such-app/", app_secret)[0] == 401
    # A's TURN key works at B's API too
    credential(b, key_id, token)

    # a credential minted through A allocates at B and relays
    username, password = credential(a, key_id, token)
    client = TurnClient(b.turn, username, password)
    try:
        assert client.allocate() == "success"
        target = peer.getsockname()
        assert client.permit(target) == "success"
        client.send(target, b"before")
        assert received(peer, 0.5) == [b"before"]

        # revoked through A: within 1 s B refuses it and its allocation stops relaying
        status, _ = request(a, "POST", f"/v1/turn/keys/{key_id}/credentials/{username}/revoke",
                            token)
        assert status == 204
        revoked = time.monotonic()
        while True:
            fresh = TurnClient(b.turn, username, password)
            try:
                refused = fresh.allocate() == 401
            finally:
                fresh.close()
            if refused:
                break
            assert time.monotonic() - revoked < 1.0, "B still allocates a revoked credential"
            time.sleep(0.05)
        print(f"\nB refused the revoked credential {time.monotonic() - revoked:.3f} s after "
              "the revocation through A")
        client.send(target, b"after")
        assert received(peer, 0.5) == []
    finally:
        client.close()



def test_a_node_started_later_reads_revocations_and_keys(cluster, tmp_path, redis_server) -> None:
    a, _, _ = cluster
    key_id, token = a.value("TURN key id:"), a.value("TURN key API token:")
    kept, kept_password = credential(a, key_id, token)
    revoked, password = credential(a, key_id, token)
    assert request(a, "POST", f"/v1/turn/keys/{key_id}/credentials/{revoked}/revoke",
                   token)[0] == 204
    c = start(tmp_path, redis_server, "node-c")
    try:
        deadline = time.monotonic() + 5
        while True:  # C reads the keys and revocations as soon as its directory is up
            client = TurnClient(c.turn, kept, kept_password)
            try:
                if client.allocate() == "success":
                    break
            finally:
                client.close()
            assert time.monotonic() < deadline, c.output()[-3000:]
            time.sleep(0.1)
        client = TurnClient(c.turn, revoked, password)
        try:
            assert client.allocate() == 401
        finally:
            client.close()
    finally:
        c.stop()


def test_usage_sums_every_node(cluster) -> None:
    a, b, peer = cluster
    key_id, token = a.value("TURN key id:"), a.value("TURN key API token:")
    target = peer.getsockname()
    sent = {}
    for node, size in ((a, 300), (b, 700)):
        username, password = credential(a, key_id, token, custom=f"via-{node.turn}")
        client = TurnClient(node.turn, username, password)
        try:
            assert client.allocate() == "success"
            assert client.permit(target) == "success"
            for _ in range(20):
                client.send(target, b"x" * size)
            assert len(received(peer, 0.5)) == 20
        finally:
            client.close()
        sent[node.turn] = 20 * size
    time.sleep(1.5)  # both nodes flush every second (--turn-usage-flush 1)
    path = f"/v1/turn/keys/{key_id}/usage?since={int(time.time()) - 600}"
    through_a, through_b = request(a, "GET", path, token), request(b, "GET", path, token)
    assert through_a[0] == through_b[0] == 200, (through_a, through_b)
    usage = through_a[1]
    assert usage["ingressBytes"] == through_b[1]["ingressBytes"], (usage, through_b)
    assert usage["egressBytes"] == through_b[1]["egressBytes"], (usage, through_b)
    # ingress = what the clients sent the relay: every payload through either node
    assert usage["ingressBytes"] >= sum(sent.values()), (usage, sent)
    print(f"\nusage through A and B alike: {usage['ingressBytes']} B in, "
          f"{usage['egressBytes']} B out ({sent} payload bytes sent via each TURN port)")
    only_b = request(a, "GET", f"{path}&customIdentifier=via-{b.turn}", token)[1]
    assert sent[b.turn] <= only_b["ingressBytes"] < usage["ingressBytes"], only_b
