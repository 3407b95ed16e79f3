"""
DataChannels across three nodes without sockets for media: a real redis-server carries the
records and control messages; real :class:`RelayLink` machines seal and open every frame,
moved between them as a list of datagrams; each node's sessions are the SFU's own, their
PeerConnections replaced by the SCTP stand-in of tests/sfu/test_datachannels.py.

A publishes "chat"; B has two subscribers, C one.  Each message crosses to B and to C once
(one seal), B and C deliver it to their own subscribers, in order, with its type.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import pytest_twisted
from twisted.internet import reactor

from realtime.cluster.datachannel_frames import DataChannelFragment
from realtime.cluster.datachannel_repair import RESEND_BURST, DataChannelNack
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.datachannels import DataChannelRelay
from realtime.cluster.directory import Directory
from realtime.cluster.keys import Keys
from realtime.cluster.records import DataChannelRecord
from realtime.cluster.relay import RelayKind, RelayLink
from realtime.sfu.datachannels import ChannelPolicy, RemotePublication
from realtime.sfu.switchboard import Switchboard
from tests.cluster.test_directory import SESSION, sleep
from tests.sfu.test_datachannels import client_open, connect, counting_random, new, pump

SECRET = b"cluster secret of the test suite"
ADDRESSES = {"a": ("10.0.0.1", 7000), "b": ("10.0.0.2", 7000), "c": ("10.0.0.3", 7000)}


class Node:
    """One node: a switchboard, a directory connection, a relay link and the DataChannel relay."""

    def __init__(self, node_id: str, directory: Directory, network: list,
                 drop=lambda frame: False) -> None:
        self.node_id = node_id
        self.board = Switchboard(random=counting_random(ord(node_id)))
        self.directory = directory
        self.link = RelayLink(node_id, SECRET, 1000)
        self.link.set_members(ADDRESSES)
        self.network = network
        self.drop = drop

        self.members = dict(ADDRESSES)   # what this node's registry refresh last saw

        async def refresh():
            return self.members

        self.relay = DataChannelRelay(
            node_id, directory, reactor, self.send, lambda: self.members, refresh,
            self.published, lambda sessions: None)

    def send(self, kind, stream_id, payload, destinations) -> None:
        self.link.send(kind, stream_id, payload, destinations)
        for frame, address in self.link.datagrams_to_send(0.0):
            self.network.append((frame, ADDRESSES[self.node_id], address))

    def published(self, session_id: str, name: str):
        session = self.board.get(session_id)
        return None if session is None else session.datachannels.published(name)

    def session(self):
        session = new(self.board)
        connect(session)
        pump([session], 0.0)
        return session


def deliver(network: list, nodes: dict[str, Node]) -> None:
    """Move every queued relay frame into its destination node."""
    by_address = {ADDRESSES[n]: node for n, node in nodes.items()}
    while network:
        frame, source, destination = network.pop(0)
        node = by_address[destination]
        if node.drop(frame):
            continue
        node.link.receive_datagram(frame, source, 0.0)
        while (packet := node.link.next_event()) is not None:
            node.relay.receive(packet)


async def until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await sleep(0.01)
    raise AssertionError("condition not met in time")


async def three_nodes(redis_server, drop_to_b=lambda frame: False):
    network: list = []
    nodes = {}
    for node_id in "abc":
        directory = Directory(reactor, redis_server.address, Keys("dc"))
        await directory.start()
        node = nodes[node_id] = Node(node_id, directory, network,
                                     drop_to_b if node_id == "b" else lambda frame: False)
        await directory.listen_control(node_id, node.relay.control)
    return nodes, network


async def publish_chat(nodes, policy: ChannelPolicy = ChannelPolicy()):
    a = nodes["a"]
    publisher = a.session()
    chat = publisher.datachannels.publish("chat", policy, 0.0, feeds=(a.relay,))
    await a.relay.published(chat)
    client_open(publisher.connection, chat)
    pump([publisher], 0.0)
    await a.directory.put_session(replace(SESSION, session_id=publisher.session_id,
                                          app_id="app", owner_node="a"))
    return publisher, chat


async def subscribe(node: Node, publisher_id: str):
    session = node.session()
    publication = await node.relay.find("app", publisher_id, "chat")
    assert isinstance(publication, RemotePublication)
    copy = session.datachannels.subscribe(publication, ChannelPolicy(), 0.0)
    client_open(session.connection, copy)
    pump([session], 0.0)
    return session, copy


async def stop(nodes) -> None:
    for node in nodes.values():
        node.relay.stop()
        await node.directory.stop()


@pytest_twisted.ensureDeferred
async def test_each_message_crosses_once_per_node_and_reaches_every_subscriber(
        redis_server) -> None:
    nodes, network = await three_nodes(redis_server)
    try:
        a = nodes["a"]
        publisher, chat = await publish_chat(nodes)
        record = await a.directory.get_datachannel(publisher.session_id, "chat")
        assert record == DataChannelRecord(publisher.session_id, "chat", chat.id, "a", "active")
        subscribers = [await subscribe(nodes[n], publisher.session_id) for n in "bbc"]
        assert subscribers[0][1].publication is subscribers[1][1].publication  # one per node
        fed = a.relay._senders
        await until(lambda: fed and sorted(next(iter(fed.values())).nodes) == ["b", "c"])
        messages = ["hello", b"\x00\x01", "", b"", "x" * 3000, bytes(range(256)) * 256]
        messages += [str(i) for i in range(50)]
        for message in messages:
            publisher.connection.client.send(chat.id, message, 0.0)
        pump([publisher], 0.0)
        deliver(network, nodes)
        pump([s for s, _ in subscribers], 0.0)
        for session, copy in subscribers:
            assert session.connection.received[copy.id] == messages   # order and types kept
        assert a.relay.sent == {"b": len(messages), "c": len(messages)}
        fragments = 1 + 1 + 1 + 1 + 3 + 65536 // 1000 + 1 + 50
        assert fragments - 2 <= a.relay.sealed <= fragments + 2   # sealed once, not per node
        assert a.relay.relayed == len(messages)
        assert nodes["b"].relay.received == {"a": len(messages)}
        assert nodes["b"].relay.delivered == 2 * len(messages)
        assert nodes["c"].relay.delivered == len(messages)
        # B's subscribers leave: the first changes nothing, the last unsubscribes B at A
        b1, b2 = subscribers[0], subscribers[1]
        b1[0].datachannels.close(b1[1].id, 0.0)
        assert nodes["b"].relay.known(publisher.session_id, "chat") is not None
        b2[0].datachannels.close(b2[1].id, 0.0)
        assert nodes["b"].relay.known(publisher.session_id, "chat") is None
        await until(lambda: next(iter(fed.values())).nodes == {"c"})
        publisher.connection.client.send(chat.id, "after", 0.0)
        pump([publisher], 0.0)
        assert [d for _, _, d in network] == [ADDRESSES["c"]]
        deliver(network, nodes)
        # the publisher closes: C's subscription closes too, the record says closed
        c_session, c_copy = subscribers[2]
        publisher.datachannels.close(chat.id, 0.0)
        await until(lambda: c_copy.closed)
        assert (await a.directory.get_datachannel(publisher.session_id, "chat")).status == \
            "closed"
        assert await nodes["c"].relay.find("app", publisher.session_id, "chat") is None
        assert await nodes["c"].relay.find("other-app", publisher.session_id, "chat") is None
    finally:
        await stop(nodes)


async def lossy_feed(redis_server, policy: ChannelPolicy, messages: list):
    """A publishes; B's subscriber follows; every 7th frame towards B is lost (repairs,
    NACKs' answers and tail probes too).  Move frames with the real reactor running the
    relays' timers for up to 3 s or until ``messages`` arrived; return (nodes, received)."""
    lost = iter(range(10_000))
    nodes, network = await three_nodes(
        redis_server, drop_to_b=lambda frame: next(lost) % 7 == 3)
    publisher, chat = await publish_chat(nodes, policy)
    session, copy = await subscribe(nodes["b"], publisher.session_id)
    await until(lambda: nodes["a"].relay._senders)
    for message in messages:
        publisher.connection.client.send(chat.id, message, 0.0)
    pump([publisher], 0.0)

    def arrived():
        deliver(network, nodes)
        pump([session], 0.0)
        return session.connection.received.get(copy.id, []) == messages

    try:
        await until(arrived, 3.0)
    except AssertionError:
        pass
    await sleep(0.3)                      # the last tail probes and late repairs settle
    arrived()
    return nodes, session.connection.received.get(copy.id, [])


@pytest_twisted.ensureDeferred
async def test_frames_lost_between_nodes_are_resent_and_every_message_arrives_in_order(
        redis_server) -> None:
    messages = [str(i) for i in range(70)] + ["x" * 5000, b"\x00" * 3000, "last"]
    nodes, got = await lossy_feed(redis_server, ChannelPolicy(), messages)
    try:
        assert got == messages                          # every message, in order
        a, b = nodes["a"].relay.counters(), nodes["b"].relay.counters()
        assert b["receivers"].get("lost", 0) == 0 and b["receivers"]["recovered"] >= 10
        assert b["repair"]["nacksSent"] >= 1 and a["repair"]["nacksReceived"] >= 1
        assert a["repair"]["resent"] >= 10
        print(f"72 messages over a link losing 1 frame in 7: A {a['repair']}, "
              f"B {b['repair']}, B's receiver {b['receivers']}")
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_an_unreliable_publication_is_not_resent_its_losses_counted_order_kept(
        redis_server) -> None:
    messages = [str(i) for i in range(70)]
    nodes, got = await lossy_feed(redis_server, ChannelPolicy(max_retransmits=0), messages)
    try:
        numbers = [int(m) for m in got]
        assert numbers == sorted(numbers) and len(numbers) < 70   # holes, in order
        b = nodes["b"].relay.counters()
        assert b["receivers"]["lost"] >= 70 - len(numbers) - 1
        assert "nacksSent" not in b["repair"] and "resent" not in nodes["a"].relay.repair
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_unknown_publications_and_hostile_frames_are_dropped(redis_server) -> None:
    nodes, network = await three_nodes(redis_server)
    try:
        b = nodes["b"]
        assert await b.relay.find("app", "nobody", "chat") is None
        nodes["a"].send(3, 0, b"\xff\x00", [ADDRESSES["b"]])   # sealed, but not a payload
        nodes["a"].send(3, 0, DataChannelFragment("s", "n", 0, 0, 1, False, b"").encode(),
                        [ADDRESSES["b"]])                  # a publication B never asked for
        deliver(network, nodes)
        assert b.relay.dropped == {"malformed": 1, "not-subscribed": 1}
        await b.directory.stop()                 # Redis away: the API turns this into its 503
        with pytest.raises(DirectoryUnavailable):
            await b.relay.find("app", "nobody", "chat")
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_a_gone_node_is_pruned_and_a_silent_owner_refused(redis_server) -> None:
    nodes, network = await three_nodes(redis_server)
    try:
        a = nodes["a"]
        publisher, chat = await publish_chat(nodes)
        for n in "bc":
            await subscribe(nodes[n], publisher.session_id)
        await until(lambda: a.relay._senders and
                    next(iter(a.relay._senders.values())).nodes == {"b", "c"})
        del a.members["c"]                      # C's heartbeat expired
        publisher.connection.client.send(chat.id, "one", 0.0)
        pump([publisher], 0.0)
        assert [d for _, _, d in network] == [ADDRESSES["b"]]
        assert a.relay.dropped["node-gone"] == 1
        assert next(iter(a.relay._senders.values())).nodes == {"b"}
        # a record whose owner no longer listens for control messages: refused, counted
        await a.directory.put_session(replace(SESSION, session_id="gone", app_id="app"))
        await a.directory.put_datachannel(DataChannelRecord("gone", "chat", 1, "d", "active"))
        assert await nodes["b"].relay.find("app", "gone", "chat") is None
        assert nodes["b"].relay.dropped["owner-not-listening"] == 1
        assert nodes["b"].relay.known("gone", "chat") is None
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_a_late_wait_for_ack_subscriber_ends_without_starving_the_next(
        redis_server) -> None:
    nodes, network = await three_nodes(redis_server)
    try:
        b = nodes["b"]
        publisher, chat = await publish_chat(nodes)
        gated = b.session()
        publication = await b.relay.find("app", publisher.session_id, "chat")
        held = gated.datachannels.subscribe(publication, ChannelPolicy(), 0.0, wait_for_ack=True)
        session, copy = await subscribe(b, publisher.session_id)   # after the gated one
        await until(lambda: nodes["a"].relay._senders)
        publisher.connection.client.send(chat.id, "hello", 0.0)    # relayed long after 30 s
        pump([publisher], 0.0)
        deliver(network, nodes)
        pump([session, gated], 0.0)
        assert held.closed and gated.datachannels.drops["awaiting-ack"] == 1
        assert session.connection.received[copy.id] == ["hello"]
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_can_reply_crosses_nodes_and_stays_one_per_publication(redis_server) -> None:
    nodes, network = await three_nodes(redis_server)
    try:
        a = nodes["a"]
        publisher, chat = await publish_chat(nodes)
        local = a.session()
        local_copy = local.datachannels.subscribe(chat, ChannelPolicy(), 0.0, can_reply=True)
        client_open(local.connection, local_copy)
        pump([local], 0.0)
        (b, b_copy), (c, c_copy) = [await subscribe(nodes[n], publisher.session_id)
                                    for n in "bc"]
        sender = None

        def fed():
            nonlocal sender
            sender = next(iter(a.relay._senders.values()), None)
            return sender is not None and sender.nodes == {"b", "c"}

        await until(fed)
        everyone = [publisher, local, b, c]

        async def reply(session, copy, text):
            session.connection.client.send(copy.id, text, 0.0)
            pump(everyone, 0.0)
            deliver(network, nodes)
            pump(everyone, 0.0)

        # B's subscriber takes canReply: A's local replier loses it; B's reply reaches A
        b.datachannels.grant_reply(b_copy, True)
        await until(lambda: sender.replier_node == "b")
        assert not local_copy.can_reply and chat.replier is None
        await reply(b, b_copy, "from b")
        assert publisher.connection.received == {chat.id: ["from b"]}
        # then C's: B's is revoked by A; B's next message goes nowhere
        c.datachannels.grant_reply(c_copy, True)
        await until(lambda: sender.replier_node == "c" and not b_copy.can_reply)
        await reply(b, b_copy, "b again")
        await reply(c, c_copy, "from c")
        assert publisher.connection.received == {chat.id: ["from b", "from c"]}
        assert b.datachannels.drops["one-way"] == 1
        # a local grant at A takes it back from C
        local.datachannels.grant_reply(local_copy, True)
        await until(lambda: not c_copy.can_reply)
        assert sender.replier_node is None
        await reply(c, c_copy, "c again")
        await reply(local, local_copy, "from a")
        assert publisher.connection.received == {chat.id: ["from b", "from c", "from a"]}
        assert a.relay.replies_delivered == 2 and a.relay.dropped == {}
        assert nodes["b"].relay.replies_sent == 1 and nodes["c"].relay.replies_sent == 1
        # a reply from a node that does not hold canReply is dropped and counted
        nodes["b"].relay.replies_sent = 0
        forged = nodes["b"].relay
        forged.reply(b_copy.publication, "forged", 0.0)
        deliver(network, nodes)
        assert a.relay.dropped == {"reply-not-allowed": 1}
        assert publisher.connection.received[chat.id][-1] == "from a"
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_another_apps_session_never_follows_a_publication(redis_server) -> None:
    nodes, network = await three_nodes(redis_server)
    try:
        publisher, chat = await publish_chat(nodes)
        await subscribe(nodes["b"], publisher.session_id)       # B follows it for "app"
        assert await nodes["b"].relay.find("other-app", publisher.session_id, "chat") is None
        assert await nodes["c"].relay.find("other-app", publisher.session_id, "chat") is None
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_hostile_nacks_are_dropped_counted_and_bounded(redis_server) -> None:
    nodes, network = await three_nodes(redis_server)
    try:
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        publisher, chat = await publish_chat(nodes)
        await subscribe(b, publisher.session_id)
        await until(lambda: a.relay._senders)
        for i in range(20):
            publisher.connection.client.send(chat.id, str(i), 0.0)
        pump([publisher], 0.0)
        deliver(network, nodes)
        whole = DataChannelNack(publisher.session_id, "chat", ((0, 2**32 - 1, 0, 0xFFFF),) * 32)
        c.send(RelayKind.DATACHANNEL_NACK, 0, b"\x00junk", [ADDRESSES["a"]])
        c.send(RelayKind.DATACHANNEL_NACK, 0, whole.encode(), [ADDRESSES["a"]])  # not fed
        deliver(network, nodes)
        assert a.relay.repair == {"nack-malformed": 1, "nacksReceived": 1, "nack-not-child": 1}
        assert network == []
        for _ in range(100):                     # B (fed) floods: one burst of resends at most
            b.send(RelayKind.DATACHANNEL_NACK, 0, whole.encode(), [ADDRESSES["a"]])
        resent = []
        while network:
            frame, source, destination = network.pop(0)
            a.link.receive_datagram(frame, source, 0.0)
            while (packet := a.link.next_event()) is not None:
                a.relay.receive(packet)
            resent += [f for f in network if f[2] == ADDRESSES["b"]]
            network[:] = [f for f in network if f[2] != ADDRESSES["b"]]
        assert len(resent) == a.relay.repair["resent"] <= RESEND_BURST + 100
        assert a.relay.repair["over-budget"] >= 1 and a.relay.repair["range-cut"] >= 32
        assert a.relay.repair["lookups-cut"] >= 1
    finally:
        await stop(nodes)


@pytest_twisted.ensureDeferred
async def test_replies_lost_on_the_way_to_the_publishers_node_are_resent(redis_server) -> None:
    nodes, network = await three_nodes(redis_server)
    lost = iter(range(10_000))
    nodes["a"].drop = lambda frame: frame[1] == RelayKind.DATACHANNEL and next(lost) % 3 == 1
    try:
        a, c = nodes["a"], nodes["c"]
        publisher, chat = await publish_chat(nodes)
        session, copy = await subscribe(c, publisher.session_id)
        session.datachannels.grant_reply(copy, True)
        sender = None

        def granted():
            nonlocal sender
            sender = next(iter(a.relay._senders.values()), None)
            return sender is not None and sender.replier_node == "c"

        await until(granted)
        replies = [f"reply {i}" for i in range(20)]
        for reply in replies:
            session.connection.client.send(copy.id, reply, 0.0)
        pump([session], 0.0)

        def arrived():
            deliver(network, nodes)
            pump([publisher], 0.0)
            return publisher.connection.received.get(chat.id) == replies

        await until(arrived, 3.0)
        assert a.relay.repair["nacksSent"] >= 1 and c.relay.repair["resent"] >= 1
        assert a.relay.replies_delivered == 20
    finally:
        await stop(nodes)
