"""
A DataChannel publication over a cascading tree, end to end (issue 13): three
``twistd realtime --cluster --cascade-fanout 1`` nodes, one ``redis-server``, aiortc.

Fan-out 1 makes the publication's tree a chain.  The publisher's session is at node A; a
subscriber subscribes through B first (B attaches under A), then one through C (A has no
free slot: C attaches under B)::

    publisher ──SCTP──> A ══ relay ══> B ══ relay ══> C ──SCTP──> subscriber at C
                                       └──SCTP──> subscriber at B

A sends each message once (to B); B passes every fragment on to C; C's subscriber gets
every message, in order.  Then B is killed (SIGKILL: it stays registered until its
heartbeat expires): C stops hearing B's keepalives, moves under A, and its subscriber
receives the publisher's messages again within 2 s; A, no longer acknowledged by B,
stops relaying to it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime.cluster.datachannels import tree_name
from realtime.cluster.options import SECRET_VARIABLE
from tests.cluster.test_datachannel_nodes import SPECIAL, datachannel_session, opened, subscriber
from tests.cluster.test_jit import node, wait_registered
from tests.conftest import require_module
from tests.interop.test_sfu_aiortc import api

pytestmark = pytest.mark.interop

MESSAGES = 100
#: C's subscriber must receive again within this long after B was killed
RESUME_WITHIN = 2.0


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_VARIABLE, "a cluster secret for the tests")


def tree_of(redis_server, publisher: str) -> dict[str, str]:
    raw = redis_server.command("HGETALL", f"rt:tree:{publisher}:{tree_name('chat')}")
    return {k.decode(): v.decode() for k, v in zip(raw[0::2], raw[1::2]) if k != b"~v"}


async def counters(server) -> dict:
    _, body = await asyncio.get_running_loop().run_in_executor(None, server.get, "/diagnostics")
    return body["clusterDataChannels"]


async def chain(a, b, c, redis_server) -> dict:
    pc, publisher = await datachannel_session(a)
    reply = await api(a, "POST", f"/sessions/{publisher}/datachannels/new", {
        "dataChannels": [{"location": "local", "dataChannelName": "chat"}]})
    chat = pc.createDataChannel("chat", negotiated=True, id=reply["dataChannels"][0]["id"])
    await opened(chat)
    at_b = await subscriber(b, publisher)
    at_c = await subscriber(c, publisher)
    pcs = [pc, at_b["pc"], at_c["pc"]]
    try:
        tree = tree_of(redis_server, publisher)
        deadline = time.monotonic() + 10
        warm = 0
        while not (at_b["messages"] and at_c["messages"]):
            assert time.monotonic() < deadline, "no message crossed the chain"
            chat.send("warm")
            warm += 1
            await asyncio.sleep(0.05)
        for i in range(MESSAGES):
            chat.send(SPECIAL.get(i, f"m{i}"))
            if i % 20 == 19:
                await asyncio.sleep(0.01)
        chat.send("end")
        await asyncio.wait_for(at_c["end"].wait(), 15)
        await asyncio.wait_for(at_b["end"].wait(), 15)
        before = {n: await counters(s) for n, s in (("a", a), ("b", b), ("c", c))}
        # B is killed: still registered for its heartbeat's TTL, its keepalives stop
        b.process.kill()
        killed = time.monotonic()
        seen = len(at_c["messages"])
        resumed, i = None, 0
        while time.monotonic() - killed < 10.0:
            chat.send(f"after {i}")
            i += 1
            await asyncio.sleep(0.05)
            if len(at_c["messages"]) > seen:
                resumed = time.monotonic() - killed
                break
        await asyncio.sleep(1.0)     # A has cut the silent B off by now (1.0-1.25 s)
        return {"tree": tree, "warm": warm, "before": before, "resumed": resumed,
                "tree_after": tree_of(redis_server, publisher),
                "after": await counters(c), "at_a": await counters(a),
                "received": [m for m in at_c["messages"] if m != "warm"],
                "at_b": [m for m in at_b["messages"] if m != "warm"]}
    finally:
        for peer in pcs:
            await peer.close()


def test_a_datachannel_crosses_a_chain_of_nodes_and_survives_a_killed_middle_node(
        tmp_path, redis_server) -> None:
    require_module("aiortc")
    nodes = [node(tmp_path, redis_server, name, "--cascade-fanout", "1")
             for name in ("node-a", "node-b", "node-c")]
    a, b, c = nodes
    try:
        for server in nodes:
            server.wait_ready()
        wait_registered(redis_server, "node-a", "node-b", "node-c")
        result = asyncio.run(chain(a, b, c, redis_server))
    finally:
        for server in nodes:
            if server.process.poll() is None:
                server.stop()
    assert result["tree"] == {"node-b": "node-a", "node-c": "node-b"}, result["tree"]
    wanted = [SPECIAL.get(i, f"m{i}") for i in range(MESSAGES)] + ["end"]
    assert result["at_b"] == wanted
    assert result["received"][:len(wanted)] == wanted      # every message, in order, via B
    at_a, at_b, at_c = (result["before"][n] for n in "abc")
    assert set(at_a["sentPerNode"]) == {"node-b"}           # A sends each message once, to B
    assert at_a["sentPerNode"]["node-b"] >= MESSAGES + 1
    assert at_c["receivedPerNode"] == {"node-b": at_a["sentPerNode"]["node-b"]}
    assert at_b["forwardedPerNode"]["node-c"] >= at_a["framesSealed"] - 1
    assert at_c["receivers"].get("lost", 0) == 0
    # B killed: C moved under A and is fed again within RESUME_WITHIN
    assert result["resumed"] is not None and result["resumed"] < RESUME_WITHIN, result
    assert result["tree_after"] == {"node-c": "node-a"}, result["tree_after"]
    assert result["after"]["trees"].get("parent-silent", 0) >= 1, result["after"]
    assert "node-a" in result["after"]["receivedPerNode"]
    # A stopped relaying to the killed B (its acknowledgements stopped), though registered
    assert list(result["at_a"]["publicationsFed"].values()) == [["node-c"]], result["at_a"]
    assert result["at_a"]["trees"].get("child-silent") == 1, result["at_a"]
    after = [m for m in result["received"][len(wanted):]]
    assert after == sorted(after, key=lambda m: int(m.split()[1]))   # in order after the move
    print(f"chain A->B->C: {MESSAGES + 1} messages, A sent {at_a['sentPerNode']}, "
          f"B forwarded {at_b['forwardedPerNode']}; B killed: C fed again "
          f"{result['resumed']:.2f} s later")
