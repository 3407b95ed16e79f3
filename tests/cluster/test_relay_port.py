"""The relay link over real UDP sockets on loopback: three nodes and an outsider."""

from __future__ import annotations

import socket

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from realtime.cluster.relay import RelayKind, RelayLink
from realtime.cluster.relay_port import RelayPort

SECRET = b"cluster secret of the test suite"


def sleep(seconds: float) -> Deferred:
    d = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@pytest_twisted.ensureDeferred
async def test_three_nodes_and_an_outsider_over_udp() -> None:
    received = {"a": [], "b": [], "c": []}
    ports, listening = {}, []
    for node in "abc":
        port = RelayPort(RelayLink(node, SECRET, 1000), reactor, received[node].append)
        listening.append(reactor.listenUDP(0, port, interface="127.0.0.1"))
        ports[node] = port
    members = {node: ("127.0.0.1", p.getHost().port) for node, p in zip("abc", listening)}
    for port in ports.values():
        port.link.set_members(members)
    try:
        ports["a"].send(RelayKind.RTP, 9, b"rtp-packet", [members["b"], members["c"]])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outsider:
            outsider.bind(("127.0.0.1", 0))
            outsider.sendto(b"\xc1garbage", members["b"])
        for _ in range(100):
            if received["b"] and received["c"] and ports["b"].link.dropped:
                break
            await sleep(0.01)
        assert [e.payload for e in received["b"]] == [b"rtp-packet"]
        assert [(e.sender, e.stream_id) for e in received["c"]] == [("a", 9)]
        assert received["a"] == []
        assert ports["a"].link.sealed == 1                     # once, for two nodes
        assert ports["b"].link.dropped == {"non_member": 1}
    finally:
        for port in listening:
            await port.stopListening()
