"""
A DataChannel published at one node reaches subscribers on the other two (issue 12).

Three real ``twistd realtime --cluster`` nodes share one ``redis-server``.  An aiortc
publisher makes its session through node A's API and connects to A; it publishes "chat".
Two aiortc subscribers make their sessions through node B's API (their media at B), one
through node C's; each subscribes to "chat" *through its own node*, which does not hold
the publisher.  Every message the publisher sends reaches all three, in order; A's
counters show each message went once to B (which has two subscribers) and once to C.
C's subscriber holds ``canReply``: its message goes back to the publisher at A; B's
(without it) goes nowhere.

Node A runs under ``lossy_twistd.py`` (a user-space hook of the test): one DataChannel
relay frame in :data:`DROP_EVERY` it sends is sealed and then lost (repairs and tail
probes too), :data:`DROPS` in all.  Every message still reaches every subscriber in
order: B and C ask A again (``DATACHANNEL_NACK``) and A resends from its buffer.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from realtime.cluster.options import SECRET_VARIABLE
from tests.cluster.test_jit import node, wait_registered
from tests.conftest import require_module
from tests.interop.realtime_server import Server
from tests.interop.test_sfu_aiortc import api

pytestmark = pytest.mark.interop

#: numbered messages after the warm-up
MESSAGES = 100
#: sent among them: empty ones of both types, and one binary message cut into ~50 fragments
SPECIAL = {30: "", 31: b"", 60: bytes(range(256)) * 234}
LOSSY = [sys.executable, str(Path(__file__).with_name("lossy_twistd.py"))]
#: node A loses one DataChannel relay frame in DROP_EVERY after the first 10, DROPS in all
DROP_EVERY = 9
DROPS = 16


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_VARIABLE, "a cluster secret for the tests")
    for name, value in (("KIND", "datachannel"), ("EVERY", DROP_EVERY), ("AFTER", 10),
                        ("LIMIT", DROPS)):
        monkeypatch.setenv(f"REALTIME_TEST_RELAY_DROP_{name}", str(value))


async def datachannel_session(server):
    """Make a session through ``server``'s API with an SCTP transport; return (pc, id)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    session = (await api(server, "POST", "/sessions/new"))["sessionId"]
    reply = await api(server, "POST", f"/sessions/{session}/datachannels/establish", {
        "dataChannel": {"location": "remote", "dataChannelName": "server-events"}})
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    await pc.setRemoteDescription(RTCSessionDescription(
        sdp=reply["sessionDescription"]["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await api(server, "PUT", f"/sessions/{session}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
    return pc, session


async def opened(channel, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if channel.readyState == "open":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"DataChannel {channel.label} stayed {channel.readyState}")


async def subscriber(server, publisher: str, can_reply: bool = False) -> dict:
    """Subscribe to the publisher's "chat" through ``server``; collect what arrives."""
    pc, session = await datachannel_session(server)
    reply = await api(server, "POST", f"/sessions/{session}/datachannels/new", {
        "dataChannels": [{"location": "remote", "sessionId": publisher,
                          "dataChannelName": "chat", "canReply": can_reply}]})
    item = reply["dataChannels"][0]
    assert "errorCode" not in item, item       # before this issue: not_found_track_error
    channel = pc.createDataChannel("chat", negotiated=True, id=item["id"])
    got: dict = {"pc": pc, "session": session, "messages": [], "end": asyncio.Event(),
                 "channel": channel}

    @channel.on("message")
    def on_message(message) -> None:
        got["messages"].append(message)
        if message == "end":
            got["end"].set()

    await opened(channel)
    listed = (await api(server, "GET", f"/sessions/{session}"))["dataChannels"]
    assert {"location": "remote", "sessionId": publisher, "dataChannelName": "chat",
            "id": item["id"], "status": "active"} in listed, listed
    return got


async def publish_to_other_nodes(a, b, c) -> dict:
    from aiortc import RTCDataChannel  # noqa: F401  (aiortc present)

    pc, publisher = await datachannel_session(a)
    reply = await api(a, "POST", f"/sessions/{publisher}/datachannels/new", {
        "dataChannels": [{"location": "local", "dataChannelName": "chat"}]})
    chat = pc.createDataChannel("chat", negotiated=True, id=reply["dataChannels"][0]["id"])
    replies: list = []
    chat.on("message", replies.append)
    await opened(chat)
    subscribers = [await subscriber(b, publisher), await subscriber(b, publisher),
                   await subscriber(c, publisher, can_reply=True)]
    try:
        warm = 0   # until every subscriber has one: B and C asked A over pub/sub meanwhile
        deadline = time.monotonic() + 10
        while not all(s["messages"] for s in subscribers):
            assert time.monotonic() < deadline, "no message crossed to every node"
            chat.send("warm")
            warm += 1
            await asyncio.sleep(0.05)
        started = time.monotonic()
        for i in range(MESSAGES):
            chat.send(SPECIAL.get(i, f"m{i}"))
            if i % 20 == 19:
                await asyncio.sleep(0.01)
        chat.send("end")
        for s in subscribers:
            await asyncio.wait_for(s["end"].wait(), 15)
        elapsed = time.monotonic() - started
        subscribers[1]["channel"].send("one-way")        # B's: no canReply, dropped
        subscribers[2]["channel"].send("reply from c")   # C's holds canReply: back to A
        for _ in range(250):
            if replies:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        return {"publisher": publisher, "warm": warm, "elapsed": elapsed, "replies": replies,
                "received": [[m for m in s["messages"] if m != "warm"] for s in subscribers],
                "sessions": [s["session"] for s in subscribers]}
    finally:
        for s in subscribers:
            await s["pc"].close()
        await pc.close()


def test_a_datachannel_published_at_a_reaches_subscribers_at_b_and_c(
        tmp_path, redis_server) -> None:
    require_module("aiortc")
    a = Server(tmp_path / "node-a", "--cluster", redis_server.url, "--node-id", "node-a",
               "--relay-address", "127.0.0.1:0", app=True, program=LOSSY)
    nodes = [a] + [node(tmp_path, redis_server, name) for name in ("node-b", "node-c")]
    b, c = nodes[1:]
    try:
        for server in nodes:
            server.wait_ready()
        wait_registered(redis_server, "node-a", "node-b", "node-c")
        result = asyncio.run(publish_to_other_nodes(a, b, c))
        counters = {server: server.get("/diagnostics")[1]["clusterDataChannels"]
                    for server in nodes}
    finally:
        for server in nodes:
            server.stop()
    wanted = [SPECIAL.get(i, f"m{i}") for i in range(MESSAGES)] + ["end"]
    for received in result["received"]:
        assert received == wanted       # every message, in order
    at_a, at_b, at_c = counters[a], counters[b], counters[c]
    # A sent each message once per subscribing node: B (two subscribers) got it once
    assert at_b["receivedPerNode"] == {"node-a": at_a["sentPerNode"]["node-b"]}
    assert at_c["receivedPerNode"] == {"node-a": at_a["sentPerNode"]["node-c"]}
    assert at_a["sentPerNode"]["node-b"] >= MESSAGES + 1
    assert at_b["delivered"] == 2 * at_b["receivedPerNode"]["node-a"]
    assert at_c["delivered"] == at_c["receivedPerNode"]["node-a"]
    # sealed once per message (per fragment), whatever the number of nodes it goes to
    assert at_a["messagesRelayed"] == max(at_a["sentPerNode"].values())
    assert at_a["framesSealed"] >= at_a["messagesRelayed"] + len(SPECIAL[60]) // 1200
    assert at_b["receivers"].get("lost", 0) == 0 and at_c["receivers"].get("lost", 0) == 0
    # frames were lost on A's relay link, and repaired: NACKs from B and C, resent by A
    drops = [line for line in a.output().splitlines() if "relay-test-drop-datachannel" in line]
    assert len(drops) == DROPS, drops
    recovered = at_b["receivers"].get("recovered", 0) + at_c["receivers"].get("recovered", 0)
    assert recovered >= DROPS // 2, (at_b["receivers"], at_c["receivers"])
    assert at_b["repair"]["nacksSent"] > 0 and at_c["repair"]["nacksSent"] > 0
    assert at_a["repair"]["nacksReceived"] > 0 and at_a["repair"]["resent"] > 0
    # canReply across nodes: C's subscriber reached the publisher at A, B's did not
    assert result["replies"] == ["reply from c"]
    assert at_c["repliesSent"] == 1 and at_a["repliesDelivered"] == 1
    record = redis_server.command("GET", f"rt:datachannel:{result['publisher']}:chat")
    assert record is not None and b'"owner_node":"node-a"' in record
    print(f"{MESSAGES + 1} messages to 3 subscribers on 2 other nodes in "
          f"{result['elapsed'] * 1000:.0f} ms after {result['warm']} warm-up messages; "
          f"A: {at_a['sentPerNode']}, {at_a['messagesRelayed']} messages in "
          f"{at_a['framesSealed']} sealed frames; "
          f"B delivered {at_b['delivered']}, C {at_c['delivered']}; {DROPS} frames lost "
          f"at A, repairs: A {at_a['repair']}, B {at_b['repair']}, C {at_c['repair']}; "
          f"B's receiver {at_b['receivers']}")
