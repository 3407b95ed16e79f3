"""
DataChannel publications over cascading trees (issue 13), fan-out 1: a chain A -> B -> C.

The nodes of tests/cluster/test_datachannels.py (a real redis-server for records, control
messages, the registry and the trees; real RelayLink machines; the SFU's own sessions with
the SCTP stand-in), each DataChannelRelay given ``fanout=1``.  B subscribes first and hangs
under A; C then hangs under B: A sends each message once (to B), B passes every fragment on
to C, C's subscriber gets every message in order.  B killed (its frames stop, it stays
registered): C stops hearing B's keepalives, moves to A within PARENT_SILENCE and is fed
again.  B's last subscriber leaving instead: B detaches, C is told to re-read its parent.
C killed: its acknowledgements stop and B stops relaying to it after CHILD_SILENCE.
Frames lost on both links: B answers C's NACKs from its own buffer and asks A only for
its own gaps.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest_twisted
from twisted.internet import reactor

from realtime.cluster.datachannel_tree import CHILD_SILENCE, KEEPALIVE_INTERVAL
from realtime.cluster.datachannels import DataChannelRelay, PARENT_SILENCE, tree_name
from realtime.cluster.directory import Directory
from realtime.cluster.keys import Keys
from realtime.cluster.records import NodeRecord
from realtime.cluster.relay import RelayKind
from realtime.sfu.datachannels import ChannelPolicy
from tests.cluster.test_datachannels import ADDRESSES, Node, publish_chat
from tests.cluster.test_directory import sleep
from tests.sfu.test_datachannels import client_open, pump


class TreeNode(Node):
    """A node whose DataChannelRelay follows publications through trees (fan-out 1)."""

    def __init__(self, node_id: str, directory: Directory, network: list) -> None:
        super().__init__(node_id, directory, network)
        self.heard: dict[str, float] = {}
        self.dead = False

        async def refresh():
            return self.members

        self.relay = DataChannelRelay(
            node_id, directory, reactor, self.send, lambda: self.members, refresh,
            self.published, lambda sessions: None, fanout=1, heard=self.heard.get)

    def send(self, kind, stream_id, payload, destinations) -> None:
        if not self.dead:
            super().send(kind, stream_id, payload, destinations)


def deliver(network: list, nodes: dict[str, TreeNode]) -> None:
    """Move the queued frames (a dead node neither sends nor receives); KEEPALIVEs are
    recorded as the node's PullMachine does."""
    by_address = {ADDRESSES[n]: node for n, node in nodes.items()}
    while network:
        frame, source, destination = network.pop(0)
        node = by_address[destination]
        if node.dead:
            continue
        node.link.receive_datagram(frame, source, 0.0)
        while (packet := node.link.next_event()) is not None:
            if packet.kind == RelayKind.KEEPALIVE:
                node.heard[packet.sender] = reactor.seconds()
            else:
                node.relay.receive(packet)


async def chain(redis_server):
    network: list = []
    nodes = {}
    for node_id in "abc":
        directory = Directory(reactor, redis_server.address, Keys("dct"))
        await directory.start()
        await directory.heartbeat(NodeRecord(node_id, "127.0.0.1:1", "127.0.0.1:2", 0.0, 0.0))
        node = nodes[node_id] = TreeNode(node_id, directory, network)
        await directory.listen_control(node_id, node.relay.control)
    return nodes, network


async def subscribe(node, publisher_id: str):
    session = node.session()
    publication = await node.relay.find("app", publisher_id, "chat")
    copy = session.datachannels.subscribe(publication, ChannelPolicy(), 0.0)
    client_open(session.connection, copy)
    pump([session], 0.0)
    return session, copy


async def pumping(nodes, network, seconds: float, condition=lambda: False) -> None:
    """Let the real reactor run the relays' timers, moving frames, until ``condition``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        deliver(network, nodes)
        await sleep(0.02)
    deliver(network, nodes)


async def stop(nodes) -> None:
    for node in nodes.values():
        node.relay.stop()
        if not node.dead:
            await node.directory.stop()


async def tree_of(directory: Directory, session_id: str) -> dict[str, str]:
    raw = await directory.redis.execute("HGETALL",
                                        directory.keys.tree(session_id, tree_name("chat")))
    return {k.decode(): v.decode() for k, v in zip(raw[0::2], raw[1::2]) if k != b"~v"}


def send(publisher, chat, messages, nodes, network) -> None:
    for message in messages:
        publisher.connection.client.send(chat.id, message, 0.0)
    pump([publisher], 0.0)
    deliver(network, nodes)


async def chained_chat(nodes, network):
    """Publish a chat on A, subscribe B and C; wait until A feeds B and B feeds C.
    Return (publisher, chat, (b_session, b_copy), (c_session, c_copy), A's senders)."""
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    publisher, chat = await publish_chat(nodes)
    b_pull = await subscribe(b, publisher.session_id)
    c_pull = await subscribe(c, publisher.session_id)
    fed = a.relay._senders
    await pumping(nodes, network, 5, lambda: fed and next(iter(fed.values())).nodes == {"b"}
                  and b.relay._remote[(publisher.session_id, "chat")].children == {"c"})
    return publisher, chat, b_pull, c_pull, fed


@pytest_twisted.ensureDeferred
async def test_a_chain_relays_every_message_in_order_and_survives_a_killed_middle_node(
        redis_server) -> None:
    nodes, network = await chain(redis_server)
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    try:
        publisher, chat, (b_session, b_copy), (c_session, c_copy), fed = await chained_chat(
            nodes, network)
        assert await tree_of(a.directory, publisher.session_id) == {"b": "a", "c": "b"}
        messages = ["hello", b"\x00\x01", "", b"", "x" * 3000, bytes(range(256)) * 256]
        messages += [str(i) for i in range(50)]
        send(publisher, chat, messages, nodes, network)
        pump([b_session, c_session], 0.0)
        for session, copy in ((b_session, b_copy), (c_session, c_copy)):
            assert session.connection.received[copy.id] == messages   # order and types
        assert a.relay.sent == {"b": len(messages)}         # A sends each message once
        assert b.relay.received == {"a": len(messages)}
        assert c.relay.received == {"b": len(messages)}     # C is fed by B, not by A
        assert set(b.relay.forwarded) == {"c"} and b.relay.forwarded["c"] == b.relay.sealed
        assert c.relay.counters()["parents"] == {f"{publisher.session_id}/chat": "b"}
        # B is killed: its frames stop, its control channel is gone, it stays registered
        b.dead = True
        b.relay.stop()
        await b.directory.stop()
        killed = time.monotonic()
        follow = c.relay._remote[(publisher.session_id, "chat")]
        await pumping(nodes, network, 5, lambda: follow.parent == "a"
                      and "c" in next(iter(fed.values())).nodes)
        moved = time.monotonic() - killed
        assert follow.parent == "a" and c.relay.tree_events["parent-silent"] >= 1
        assert PARENT_SILENCE <= moved < 2.0, moved
        assert await tree_of(a.directory, publisher.session_id) == {"c": "a"}
        after = [f"after {i}" for i in range(20)]
        send(publisher, chat, after, nodes, network)
        pump([c_session], 0.0)
        assert c_session.connection.received[c_copy.id] == messages + after
        assert c.relay.received == {"b": len(messages), "a": len(after)}
        print(f"C moved from the killed B to A {moved:.2f} s after the kill")
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_a_relay_whose_last_subscriber_left_hands_its_child_over_then_stops(
        redis_server) -> None:
    nodes, network = await chain(redis_server)
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    try:
        publisher, chat, (b_session, b_copy), (c_session, c_copy), fed = await chained_chat(
            nodes, network)
        send(publisher, chat, ["one"], nodes, network)
        b_session.datachannels.close(b_copy.id, 0.0)   # B's last subscriber leaves
        follow = c.relay._remote[(publisher.session_id, "chat")]
        await pumping(nodes, network, 5, lambda: follow.parent == "a"
                      and next(iter(fed.values())).nodes == {"c"}
                      and (publisher.session_id, "chat") not in b.relay._remote)
        assert next(iter(fed.values())).nodes == {"c"}           # B unsubscribed from A
        assert await tree_of(a.directory, publisher.session_id) == {"c": "a"}
        send(publisher, chat, ["two", "three"], nodes, network)
        pump([c_session], 0.0)
        assert c_session.connection.received[c_copy.id] == ["one", "two", "three"]
        assert c.relay.counters()["receivers"].get("lost", 0) == 0
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_a_parent_stops_relaying_to_a_killed_child_within_a_second(redis_server) -> None:
    nodes, network = await chain(redis_server)
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    try:
        publisher, chat = await publish_chat(nodes)
        await subscribe(b, publisher.session_id)
        await subscribe(c, publisher.session_id)
        follow_b = b.relay._remote[(publisher.session_id, "chat")]
        await pumping(nodes, network, 5, lambda: follow_b.children == {"c"})
        await pumping(nodes, network, 1.5)      # healthy: C acknowledges, B keeps it
        assert follow_b.children == {"c"} and "child-silent" not in b.relay.tree_events
        c.dead = True                           # killed: still registered, silent
        c.relay.stop()
        await c.directory.stop()
        killed = time.monotonic()
        await pumping(nodes, network, 5, lambda: not follow_b.children)
        cut = time.monotonic() - killed
        assert not follow_b.children and b.relay.tree_events["child-silent"] == 1
        assert cut < CHILD_SILENCE + 2 * KEEPALIVE_INTERVAL, cut
        forwarded = sum(b.relay.forwarded.values())
        send(publisher, chat, ["to b only"], nodes, network)
        assert sum(b.relay.forwarded.values()) == forwarded     # nothing more sent to C
        assert a.relay.sent["b"] >= 1 and "c" not in a.relay.sent
        print(f"B stopped relaying to the killed C {cut:.2f} s after the kill")
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_a_relay_node_answers_its_childs_nacks_and_asks_its_parent_for_its_own(
        redis_server) -> None:
    nodes, network = await chain(redis_server)
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    ab, bc = (ADDRESSES["a"], ADDRESSES["b"]), (ADDRESSES["b"], ADDRESSES["c"])
    seen: Counter = Counter()
    lost: Counter = Counter()

    def lose() -> list:
        """Take the frames sent so far, but one DATACHANNEL frame in 6 from A to B and one
        in 4 from B to C (the frames' clear header says their kind): repairs and probes
        are lost alike."""
        kept = []
        for frame, source, destination in network:
            link = (source, destination)
            if frame[1] == RelayKind.DATACHANNEL and link in (ab, bc):
                seen[link] += 1
                if seen[link] % (6 if link == ab else 4) == 0:
                    lost[link] += 1
                    continue
            kept.append((frame, source, destination))
        network.clear()
        return kept

    try:
        publisher, chat, (b_session, b_copy), (c_session, c_copy), fed = await chained_chat(
            nodes, network)
        messages = [f"m{i}" for i in range(60)] + [bytes(range(256)) * 40, "end"]
        for message in messages:
            publisher.connection.client.send(chat.id, message, 0.0)
        pump([publisher], 0.0)

        def arrived() -> bool:
            while network:              # what the nodes send meanwhile goes round again
                deliver(lose(), nodes)
            pump([b_session, c_session], 0.0)
            return all(s.connection.received.get(copy.id) == messages
                       for s, copy in ((b_session, b_copy), (c_session, c_copy)))

        deadline = time.monotonic() + 5
        while not arrived() and time.monotonic() < deadline:
            await sleep(0.01)
        for session, copy in ((b_session, b_copy), (c_session, c_copy)):
            assert session.connection.received[copy.id] == messages   # all, in order
        assert lost[ab] >= 5 and lost[bc] >= 8
        at_a, at_b, at_c = (n.relay.counters() for n in (a, b, c))
        # B answered C's NACKs from its own buffer; A heard NACKs from B only, for B's gaps
        assert at_c["repair"]["nacksSent"] >= 1 and at_b["repair"]["resent"] >= lost[bc] - 2
        assert at_b["repair"]["nacksSent"] >= 1 and at_a["repair"]["resent"] >= 1
        assert at_a["repair"]["nacksReceived"] == at_b["repair"]["nacksSent"]
        assert at_a["repair"]["resent"] < lost[ab] + 20          # not C's losses too
        assert at_c["receivers"].get("lost", 0) == at_b["receivers"].get("lost", 0) == 0
        print(f"lost A->B {lost[ab]}, B->C {lost[bc]}: A {at_a['repair']}, B {at_b['repair']}, "
              f"C {at_c['repair']}")
    finally:
        await stop(nodes)
