"""
Which peers a TURN relay may reach (issue 10 item 5): every denied range, and the server's
own listening endpoints (no TURN inside TURN).
"""

from __future__ import annotations

import ipaddress

import pytest

from realtime.stun.attributes import ChannelNumber, Data, XorPeerAddress
from realtime.stun.message import StunClass, StunMethod as M, encode_message
from realtime.turn.policy import DENIED_RANGES, PeerPolicy
from tests.turn.client import Client, code, make_server, tid


def samples(network):
    """The second and the last address of ``network`` (the only one for a /128)."""
    if network.num_addresses == 1:
        return [network.network_address]
    return [network.network_address + 1, network.broadcast_address]


@pytest.mark.parametrize("network, why", DENIED_RANGES, ids=[str(n) for n, _ in DENIED_RANGES])
def test_every_denied_range_is_refused(network, why):
    policy = PeerPolicy()
    for address in samples(network):
        assert not policy.permits(str(address)), (str(address), why)
    # --allow-peer is the one way back in (loopback: --allow-loopback-peers)
    allowed = PeerPolicy(allow=[str(network)], allow_loopback=True)
    assert all(allowed.permits(str(address)) for address in samples(network))


@pytest.mark.parametrize("address, why", [
    ("2002:a00:1::1", "6to4 embedding 10.0.0.1"),
    ("2002:7f00:1::1", "6to4 embedding 127.0.0.1"),
    ("2002:c0a8:101::1", "6to4 embedding 192.168.1.1"),
    ("2002:808:808::1", "6to4 embedding a public address: 6to4 is deprecated as a whole"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo embedding 10.0.0.1 (obfuscated)"),
    ("fec0::1", "site-local"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("3fff::1", "documentation (RFC 9637)"),
    ("5f00::1", "SRv6 SID"),
    ("64:ff9b::a00:1", "NAT64 embedding 10.0.0.1"),
    ("::ffff:10.0.0.1", "IPv4-mapped 10.0.0.1"),
    ("::a00:1", "IPv4-compatible 10.0.0.1"),
])
def test_ranges_python_calls_global_or_that_embed_ipv4_are_refused(address, why):
    """Several of these were allowed before (Python 3.11's ``is_global`` says True)."""
    assert not PeerPolicy().permits(address), why


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
                                     "2a00:1450:4001::1", "9.9.9.9"])
def test_global_unicast_is_allowed(address):
    assert ipaddress.ip_address(address).is_global
    assert PeerPolicy().permits(address)


def test_the_servers_own_listening_endpoints_are_refused_its_relays_are_not():
    """ChannelBind to the server's TURN port is 403 and Send to it is dropped; another
    relayed address of the same server stays reachable (both sides of a call may relay
    through one server)."""
    server, _ = make_server()
    server.policy = PeerPolicy(allow=["203.0.113.0/24"], own_endpoints=[("203.0.113.1", 3478)])
    alice = Client(server)
    assert code(alice.allocate()) == "success"
    own, other_relay = ("203.0.113.1", 3478), ("203.0.113.1", 50009)
    assert code(alice.request(M.CHANNEL_BIND, [ChannelNumber(0x4000),
                                               XorPeerAddress.of(*own)])) == 403
    assert code(alice.request(M.CHANNEL_BIND, [ChannelNumber(0x4001),
                                               XorPeerAddress.of(*other_relay)])) == "success"
    assert code(alice.request(M.CREATE_PERMISSION, [XorPeerAddress.of(own[0], 0)])) == "success"
    relay = next(iter(server.allocations.values())).relay
    for peer, expected in ((own, []), (other_relay, [(b"x", (relay, other_relay))])):
        send = encode_message(M.SEND, StunClass.INDICATION, tid(),
                              [XorPeerAddress.of(*peer), Data(b"x")])
        assert alice.send(send, 1.0) == expected
    assert server.drops["own-endpoint"] == 1
