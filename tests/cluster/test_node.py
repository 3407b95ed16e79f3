"""Two cluster nodes in one process over a real redis-server: registry-driven relay membership."""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from realtime.cluster.node import ClusterNodeService
from realtime.cluster.options import ClusterOptions
from realtime.cluster.relay import RelayKind

SECRET = b"cluster secret of the test suite"


def sleep(seconds: float) -> Deferred:
    d = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def until(condition, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await sleep(0.02)
    raise AssertionError("condition not met")


@pytest_twisted.ensureDeferred
async def test_nodes_find_each_other_and_relay(redis_server) -> None:
    got = []
    nodes = {
        name: ClusterNodeService(
            reactor, ClusterOptions(redis_server.address, name, "127.0.0.1", 0, SECRET),
            lambda: "127.0.0.1:10000", on_relay=got.append, ttl=1.5)
        for name in ("a", "b")
    }
    for node in nodes.values():
        node.privilegedStartService()
        node.startService()
    try:
        await nodes["a"].started
        await nodes["b"].started
        a, b = nodes["a"], nodes["b"]
        b_address = ("127.0.0.1", b.relay_listener.getHost().port)
        # Each learns the other's bound relay port from the registry.
        await until(lambda: b_address in a.relay.link._by_address
                    and len(b.relay.link._by_address) == 1)
        records = {n.node_id: n.relay_address for n in await a.directory.live_nodes()}
        assert records == {"a": a.relay_address, "b": b.relay_address}
        assert not a.relay_address.endswith(":0")
        a.relay.send(RelayKind.RTCP, 3, b"rtcp", [b_address])
        await until(lambda: got)
        assert [(p.sender, p.kind, p.stream_id, p.payload) for p in got] == [
            ("a", RelayKind.RTCP, 3, b"rtcp")]
        # b stops: it leaves the registry and a forgets it at its next refresh.
        await b.stopService()
        del nodes["b"]
        await until(lambda: b_address not in a.relay.link._by_address)
    finally:
        for node in nodes.values():
            await node.stopService()


def test_relay_port_in_use_is_one_line_naming_the_option(redis_server) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        node = ClusterNodeService(
            reactor, ClusterOptions(redis_server.address, "a", "127.0.0.1", port, SECRET),
            lambda: "127.0.0.1:10000")
        with pytest.raises(SystemExit, match=f"^realtime: --relay-address 127.0.0.1:{port}: "):
            node.privilegedStartService()


@pytest_twisted.ensureDeferred
async def test_nodes_measure_their_rtt_and_drop_hostile_link_frames(redis_server) -> None:
    nodes = {
        name: ClusterNodeService(
            reactor, ClusterOptions(redis_server.address, name, "127.0.0.1", 0, SECRET),
            lambda: "127.0.0.1:10000", ttl=1.5)
        for name in ("a", "b")
    }
    for node in nodes.values():
        node.privilegedStartService()
        node.startService()
    try:
        a, b = nodes["a"], nodes["b"]
        await a.started
        await b.started
        records: dict = {}

        async def measured() -> bool:
            records.update({n.node_id: n for n in await a.directory.live_nodes()})
            return set(records.get("a", a.record()).rtts) == {"b"} and set(
                records.get("b", b.record()).rtts) == {"a"}

        for _ in range(160):        # probed 1 s after learnt (TTL/3 + 0.5), rounds every 2 s
            if await measured():
                break
            await sleep(0.05)
        assert 0 < records["a"].rtts["b"] < 50 and 0 < records["b"].rtts["a"] < 50, records
        assert a.relay_stats()["rtt"]["rtt_ms"].keys() == {"b"}
        # hostile link frames from a member: counted, never raised
        a_address = ("127.0.0.1", a.relay_listener.getHost().port)
        # no PING reached a link that did not know its sender yet (non_member)
        assert a.relay.link.dropped == {} and b.relay.link.dropped == {}
        for kind, payload in ((RelayKind.PONG, b"short"), (RelayKind.PONG, b"12345678"),
                              (RelayKind.PING, b""), (20, b"what is this")):
            b.relay.send(kind, 0, payload, [a_address])
        await until(lambda: a.unknown_link_frames == 1)
        assert a.rtt.dropped == {"malformed": 2, "unknown": 1}
        assert a.relay.link.dropped == {}           # authenticated: the link took them
        # a member whose address sendto refuses does not stop the probes
        a.members = {**a.members, "x": ("127.0.0.1", 0)}
        a._learnt["x"] = 0.0
        a._probe_round()
        assert a.link_send_errors == 1 and a._probes.running
    finally:
        for node in nodes.values():
            await node.stopService()
