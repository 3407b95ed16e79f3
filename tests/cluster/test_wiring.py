"""The cluster's composition (realtime/cluster/wiring.py): one order, late parts bound once."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from realtime.cluster.address import RedisAddress
from realtime.cluster.options import ClusterOptions
from realtime.cluster.wiring import Late, build_cluster
from realtime.cluster.workers import load_dtls_certificate
from realtime.net.router import BindingRouter
from realtime.sfu.switchboard import Switchboard
from realtime.storage import ServerConfig

SECRET = b"s" * 32


def build():
    reactor = MemoryReactorClock()
    options = ClusterOptions(RedisAddress("127.0.0.1", 9), "node-a", "127.0.0.1", 0, SECRET)
    board, fallback = Switchboard(), BindingRouter()
    certificate = load_dtls_certificate(None, reactor.seconds())
    parts = build_cluster(reactor, options, board=board, fallback=fallback,
                          certificate=certificate,
                          config=ServerConfig(public_ip="127.0.0.1", media_port=10000,
                                              turn_port=3478, turns_port=5349))
    return reactor, options, parts, fallback


def test_a_late_part_is_bound_once_and_never_read_unbound() -> None:
    """A Late collaborator raises, naming itself, if read before the composition root binds
    it, and refuses a second binding."""
    late: Late[str] = Late("the thing")
    with pytest.raises(RuntimeError, match="the thing used before it was built"):
        late.get()
    assert late.bind("first") == "first" and late.get() == "first"
    with pytest.raises(RuntimeError, match="bound already"):
        late.bind("second")


def test_build_cluster_composes_the_parts_around_one_node() -> None:
    """The parts share the node's directory; JustInTime wraps the media port's fallback and
    rebuilds SFU sessions through the take-over; the PeerHost and API are bound later, once."""
    reactor, options, parts, fallback = build()
    assert parts.jit.inner is fallback and parts.jit.restore_sfu is parts.takeover
    assert parts.sessions.remote is parts.remote
    assert parts.remote.directory is parts.node.directory is parts.jit.directory
    for late in (parts.peers, parts.api, parts.private_api):
        with pytest.raises(RuntimeError):
            late.get()
    with pytest.raises(RuntimeError, match="the RealtimeAPI used before it was built"):
        parts.node.media_address()
