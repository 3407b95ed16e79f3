"""Dual allocations: ADDITIONAL-ADDRESS-FAMILY gives one IPv4 and one IPv6 relay (RFC 8656 §7.2)."""

from __future__ import annotations

import pytest

from realtime.stun.attributes import (
    IPV4, IPV6, AdditionalAddressFamily, AddressErrorCode, ChannelNumber, Data, Lifetime,
    RequestedAddressFamily, RequestedTransport, XorPeerAddress, XorRelayedAddress,
)
from realtime.stun.message import StunClass, StunMessage, StunMethod as M, encode_message
from realtime.turn.allocation import RelayPortPool
from realtime.turn.channel_data import frame_channel_data, split_channel_data
from realtime.turn.server import TurnServer
from tests.turn.client import Client, code, make_server, tid

V4_HOST, V6_HOST = "203.0.113.1", "2001:db8::1"
PEER4, PEER6 = ("9.9.9.9", 5000), ("2606:4700::1111", 6000)  # global addresses
DUAL = [RequestedTransport(17), AdditionalAddressFamily(IPV6)]


def dual_server(v6_ports: int = 10) -> tuple[TurnServer, RelayPortPool]:
    return make_server({IPV4: V4_HOST, IPV6: V6_HOST}, high=50000 + v6_ports - 1)


def relays(answer: StunMessage) -> list[tuple[str, int]]:
    return [(a.address, a.port) for a in answer.attributes if isinstance(a, XorRelayedAddress)]


@pytest.fixture
def dual():
    server, pool = dual_server()
    client = Client(server)
    answer = client.allocate(DUAL)
    assert code(answer) == "success"
    return server, pool, client, relays(answer)


def test_additional_family_gives_one_relay_of_each_family(dual):
    server, pool, _client, (v4, v6) = dual
    assert v4[0] == V4_HOST and v6[0] == V6_HOST
    assert set(server.by_relay) == {v4, v6} == pool.in_use
    assert server.by_relay[v4] is server.by_relay[v6]


def test_no_address_error_code_when_both_families_were_allocated():
    server, _pool = dual_server()
    answer = Client(server).allocate(DUAL)
    assert answer.find(AddressErrorCode) is None
    assert len(relays(answer)) == 2


def test_ipv6_pool_exhausted_gives_ipv4_relay_and_address_error_508():
    server, pool = dual_server(v6_ports=2)
    pool.in_use |= {(V6_HOST, 50000), (V6_HOST, 50001)}  # every IPv6 relay port taken
    answer = Client(server).allocate(DUAL)
    assert code(answer) == "success"
    assert [host for host, _ in relays(answer)] == [V4_HOST]
    assert answer.find(AddressErrorCode).code == 508


def test_send_leaves_by_the_relay_of_the_peer_family(dual):
    server, _pool, client, (v4, v6) = dual
    assert code(client.request(M.CREATE_PERMISSION,
                               [XorPeerAddress.of(*PEER4), XorPeerAddress.of(*PEER6)])) == "success"
    for peer, relay in ((PEER4, v4), (PEER6, v6)):
        send = encode_message(M.SEND, StunClass.INDICATION, tid(),
                              [XorPeerAddress.of(*peer), Data(b"hello")])
        assert client.send(send, 1.0) == [(b"hello", (relay, peer))]


def test_channel_to_an_ipv6_peer_both_ways(dual):
    server, _pool, client, (_v4, v6) = dual
    assert code(client.request(M.CHANNEL_BIND,
                               [ChannelNumber(0x4001), XorPeerAddress.of(*PEER6)])) == "success"
    assert client.send(frame_channel_data(0x4001, b"to-v6"), 1.0) == [(b"to-v6", (v6, PEER6))]
    server.receive_datagram(b"from-v6", (v6, PEER6), 2.0)
    [(data, route)] = server.datagrams_to_send(2.0)
    assert route == client.route and split_channel_data(data) == (0x4001, b"from-v6")


def test_peer_data_to_the_ipv6_relay_reaches_the_client(dual):
    server, _pool, client, (_v4, v6) = dual
    client.request(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEER6)])
    server.receive_datagram(b"pong", (v6, PEER6), 1.0)
    [(data, route)] = server.datagrams_to_send(1.0)
    indication = StunMessage.decode(data)
    assert route == client.route and indication.find(Data).value == b"pong"
    assert indication.find(XorPeerAddress).address == PEER6[0]


def test_refresh_zero_with_a_family_drops_that_relay_only(dual):
    server, pool, client, (v4, v6) = dual
    client.request(M.CHANNEL_BIND, [ChannelNumber(0x4002), XorPeerAddress.of(*PEER6)])
    answer = client.request(M.REFRESH, [Lifetime(0), RequestedAddressFamily(IPV6)])
    assert code(answer) == "success"
    assert set(server.by_relay) == {v4} == pool.in_use
    allocation = server.by_relay[v4]
    assert allocation.relays == (v4,) and allocation.channels == {}
    assert code(client.request(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEER6)])) == 443
    assert code(client.request(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEER4)])) == "success"
    assert code(client.request(M.REFRESH, [Lifetime(0), RequestedAddressFamily(IPV6)])) == 443


def test_refresh_zero_without_family_frees_both_relays(dual):
    server, pool, client, _ = dual
    assert code(client.request(M.REFRESH, [Lifetime(0)])) == "success"
    assert server.allocations == {} and server.by_relay == {} and pool.in_use == set()


def test_expiry_frees_both_relays(dual):
    server, pool, _client, _ = dual
    now = 0.0
    while server.get_timer() is not None and server.get_timer() <= 10_000.0:
        now = server.get_timer()
        server.handle_timer(now)
    assert server.allocations == {} and pool.in_use == set()


def test_ipv6_only_allocation_refuses_ipv4_peers():
    server, _pool = dual_server()
    client = Client(server)
    answer = client.allocate([RequestedTransport(17), RequestedAddressFamily(IPV6)])
    assert [host for host, _ in relays(answer)] == [V6_HOST]
    assert code(client.request(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEER4)])) == 443
    assert code(client.request(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEER6)])) == "success"
