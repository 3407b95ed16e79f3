"""TurnServer: authentication, the four request methods, relaying, lifetimes, limits."""

from __future__ import annotations

import dataclasses

import pytest

from realtime.stun.attributes import (
    IPV4, IPV6, AdditionalAddressFamily, AddressErrorCode, ChannelNumber, Data, EvenPort,
    Lifetime, MessageIntegrity, Nonce, Realm, RequestedAddressFamily, RequestedTransport,
    ReservationToken, Software, UnknownAttributes, Username, XorMappedAddress, XorPeerAddress,
)
from realtime.stun.layout import RawAttribute
from realtime.stun.message import (
    StunClass, StunMessage, StunMethod, check_fingerprint, check_message_integrity,
    encode_message,
)
from realtime.turn.allocation import Limits
from realtime.turn.channel_data import frame_channel_data, split_channel_data
from realtime.turn.credentials import SharedSecretUsers, rest_password
from realtime.turn.policy import PeerPolicy
from realtime.turn.server import AllocationCreated, AllocationDeleted
from tests.turn.client import CLIENT, PEER, REALM, Client, code, make_server, relayed, tid

M = StunMethod


@pytest.fixture
def server():
    return make_server()[0]


@pytest.fixture
def alice(server):
    client = Client(server)
    assert code(client.allocate()) == "success"
    return client


def relay_of(server):
    (allocation,) = server.allocations.values()
    return allocation.relay


# -- authentication ----------------------------------------------------------


def test_unauthenticated_allocate_gets_401_with_realm_and_nonce(server):
    answer = Client(server).request(M.ALLOCATE, [RequestedTransport(17)], sign=False)
    assert code(answer) == 401
    assert answer.find(Realm).value == REALM
    assert len(answer.find(Nonce).value) == 32
    assert answer.find(MessageIntegrity) is None
    assert check_fingerprint(answer.encode())


def test_allocate_success_attributes_and_integrity(server):
    client = Client(server)
    answer = client.allocate()
    assert code(answer) == "success"
    host, port = relayed(answer)
    assert host == "203.0.113.1" and 50000 <= port <= 50009
    assert answer.find(XorMappedAddress).port == 40000
    assert answer.find(Lifetime).seconds == 600
    assert answer.find(Software).value == "realtime"
    assert check_message_integrity(answer.encode(), client.key)
    assert check_fingerprint(answer.encode())
    assert server.next_event() == AllocationCreated(CLIENT, (host, port), "alice", 600.0)


@pytest.mark.parametrize("attributes, expected", [
    ([Username("alice"), Nonce("x")], 400),                 # REALM missing
    ([Realm(REALM), Nonce("x")], 400),                      # USERNAME missing
])
def test_integrity_without_identity_is_400(server, attributes, expected):
    data = encode_message(M.ALLOCATE, StunClass.REQUEST, tid(), attributes, integrity_key=b"k")
    server.receive_datagram(data, CLIENT, 0.0)
    (out, route), = server.datagrams_to_send(0.0)
    assert code(StunMessage.decode(out)) == expected


def test_foreign_or_expired_nonce_is_438(server):
    client = Client(server)
    client.allocate()
    client.nonce = "0" * 32
    assert code(client.request(M.REFRESH, [], 1.0)) == 438
    # the 438 carried a fresh nonce, which works; it expires after 600 s
    assert code(client.request(M.REFRESH, [], 2.0)) == "success"
    assert code(client.request(M.REFRESH, [], 700.0)) == 438


def test_nonce_is_bound_to_the_client_host(server):
    client = Client(server)
    client.allocate()
    other = Client(server, ("udp", ("192.0.2.99", 1)))
    other.nonce = client.nonce
    assert code(other.request(M.ALLOCATE, [RequestedTransport(17)])) == 438


def test_wrong_password_and_unknown_user_get_401(server):
    assert code(Client(server, password="nope").allocate()) == 401
    assert code(Client(server, username="mallory").allocate()) == 401


def test_failed_integrity_401s_are_rate_limited_per_host():
    server, _ = make_server(unauthorized_burst=3, unauthorized_rate=1.0)
    client = Client(server, password="wrong")
    client.request(M.ALLOCATE, [RequestedTransport(17)], 0.0, sign=False)   # the nonce
    answers = [client.request(M.ALLOCATE, [RequestedTransport(17)], 0.0) for _ in range(5)]
    assert [code(a) for a in answers] == [401, 401, 401, None, None]
    assert server.drops["unauthorized-rate-limit"] == 2
    assert code(client.request(M.ALLOCATE, [RequestedTransport(17)], 1.0)) == 401


def test_a_spoofed_flood_does_not_starve_a_victims_challenges():
    """Issue 10 item 7: 100 unauthenticated requests/s "from" the victim's host (spoofed
    UDP, other ports) used up its 401 budget; its own Allocates got no challenge."""
    server, _ = make_server(unauthorized_burst=64, unauthorized_rate=10.0)
    victim_host = "192.0.2.77"
    spoofed = Client(server, route=("udp", (victim_host, 9999)))
    forged = Client(server, route=("udp", (victim_host, 9998)), password="forged")
    forged.request(M.ALLOCATE, [RequestedTransport(17)], 0.0, sign=False)
    successes, now = 0, 0.0
    for second in range(5):
        for i in range(100):                       # 100 requests/s, half of them forged MI
            now = second + i / 100
            spoofed.request(M.ALLOCATE, [RequestedTransport(17)], now, sign=False)
            forged.request(M.ALLOCATE, [RequestedTransport(17)], now)
            if i % 20 == 0:                        # the victim allocates 5 times a second
                victim = Client(server, route=("udp", (victim_host, 40000 + successes)))
                if code(victim.allocate(now=now)) == "success":
                    successes += 1
                    victim.request(M.REFRESH, [Lifetime(0)], now)
    assert successes == 25
    assert server.drops["unauthorized-rate-limit"] > 0     # the forged ones were limited


@pytest.mark.parametrize("fingerprint, ratio", [(False, 88 / 28), (True, 96 / 36)])
def test_reflection_is_bounded_by_the_401s_size(fingerprint, ratio):
    """The amplification docs/turn.md explains: a 401 to the smallest request that draws
    one (header + REQUESTED-TRANSPORT [+ FINGERPRINT]) with the default realm "realtime"
    is 88 (96) bytes for 28 (36): 3.14x (2.67x); no SOFTWARE in it (it was 100 bytes)."""
    server, _ = make_server()
    server.config = dataclasses.replace(server.config, realm="realtime")
    client = Client(server)
    request = client.raw(M.ALLOCATE, [RequestedTransport(17)], sign=False,
                         fingerprint=fingerprint)
    (answer, _), = client.send(request, 0.0)
    assert code(StunMessage.decode(answer)) == 401
    assert len(answer) / len(request) == pytest.approx(ratio)
    assert StunMessage.decode(answer).find(Software) is None


def test_binding_reflection_is_1_86x():
    server, _ = make_server()
    binding = encode_message(M.BINDING, StunClass.REQUEST, tid(), [], fingerprint=True)
    (reply, _), = Client(server).send(binding, 0.0)
    assert len(reply) / len(binding) == pytest.approx(52 / 28)


def test_other_username_on_the_same_5_tuple_is_441(server, alice):
    bob = Client(server, username="bob", password="builder")
    bob.nonce = alice.nonce
    answer = bob.request(M.REFRESH, [])
    assert code(answer) == 441
    assert check_message_integrity(answer.encode(), bob.key)


def test_unknown_comprehension_required_attribute_is_420(server, alice):
    answer = alice.request(M.REFRESH, [RawAttribute(0x7777, b"\0\0\0\0")])
    assert code(answer) == 420
    assert answer.find(UnknownAttributes).types == (0x7777,)


def test_binding_is_answered_on_the_turn_port(server):
    data = encode_message(M.BINDING, StunClass.REQUEST, tid())
    server.receive_datagram(data, CLIENT, 0.0)
    (out, route), = server.datagrams_to_send(0.0)
    assert route == CLIENT and StunMessage.decode(out).find(XorMappedAddress).port == 40000


# -- Allocate ----------------------------------------------------------------


@pytest.mark.parametrize("attributes, expected", [
    ([], 400),                                                     # no REQUESTED-TRANSPORT
    ([RawAttribute(0x0019, b"\x11\0\0")], 400),                    # malformed one
    ([RequestedTransport(6)], 442),                                # TCP: RFC 6062 not offered
    ([RequestedTransport(17), RequestedAddressFamily(IPV6)], 440),  # no IPv6 relay host
    ([RequestedTransport(17), RequestedAddressFamily(7)], 440),
    ([RequestedTransport(17), ReservationToken(b"12345678"), EvenPort()], 400),
    ([RequestedTransport(17), ReservationToken(b"12345678")], 508),  # unknown token
    ([RequestedTransport(17), RequestedAddressFamily(IPV4), AdditionalAddressFamily(IPV6)], 400),
    ([RequestedTransport(17), AdditionalAddressFamily(IPV4)], 400),
])
def test_allocate_errors(server, attributes, expected):
    assert code(Client(server).allocate(attributes)) == expected
    assert server.allocations == {}


def test_second_allocate_is_437_but_a_retransmission_succeeds(server):
    client = Client(server)
    client.request(M.ALLOCATE, [RequestedTransport(17)], sign=False)
    first = client.raw(M.ALLOCATE, [RequestedTransport(17)])
    answers = [StunMessage.decode(d) for d, _ in client.send(first, 0.0)]
    again = [StunMessage.decode(d) for d, _ in client.send(first, 1.0)]
    assert relayed(answers[0]) == relayed(again[0])
    assert again[0].find(Lifetime).seconds == 599
    assert code(client.request(M.ALLOCATE, [RequestedTransport(17)])) == 437


def test_lifetime_is_clamped_between_default_and_maximum(server):
    assert Client(server).allocate([RequestedTransport(17), Lifetime(30)]).find(Lifetime).seconds == 600
    other = Client(server, ("udp", ("192.0.2.10", 2)))
    assert other.allocate([RequestedTransport(17), Lifetime(99999)]).find(Lifetime).seconds == 3600


def test_additional_ipv6_family_gets_ipv4_and_address_error_440(server):
    answer = Client(server).allocate([RequestedTransport(17), AdditionalAddressFamily(IPV6)])
    assert code(answer) == "success"
    assert answer.find(AddressErrorCode) == AddressErrorCode(IPV6, 440, "Address Family not Supported")


def test_even_port_reservation_and_token():
    server, pool = make_server()
    first = Client(server).allocate([RequestedTransport(17), EvenPort(True)])
    host, port = relayed(first)
    assert port % 2 == 0
    token = first.find(ReservationToken).value
    assert (host, port + 1) in pool.in_use
    second = Client(server, ("udp", ("192.0.2.10", 2))).allocate(
        [RequestedTransport(17), ReservationToken(token)])
    assert relayed(second) == (host, port + 1)
    third = Client(server, ("udp", ("192.0.2.10", 3))).allocate(
        [RequestedTransport(17), ReservationToken(token)])
    assert code(third) == 508


def test_reservation_expires_after_30_seconds():
    server, pool = make_server()
    first = Client(server).allocate([RequestedTransport(17), EvenPort(True)])
    host, port = relayed(first)
    assert server.get_timer() == 30.0
    server.handle_timer(30.0)
    assert (host, port + 1) not in pool.in_use and server.reservations == {}


def test_quota_per_username_is_486_and_a_full_pool_is_508():
    server, _ = make_server(max_allocations_per_user=2)
    results = [code(Client(server, ("udp", ("192.0.2.10", p))).allocate()) for p in range(3)]
    assert results == ["success", "success", 486]
    server, _ = make_server()
    results = [code(Client(server, ("udp", ("192.0.2.10", p)), username=u,
                           password=w).allocate())
               for p in range(11) for u, w in [("alice", "wonderland")]]
    assert results[:10] == ["success"] * 10 or results.count("success") <= 10
    assert results[-1] in (486, 508)


def test_pool_exhaustion_is_508():
    server, pool = make_server(max_allocations_per_user=100)
    results = [code(Client(server, ("udp", ("192.0.2.10", p))).allocate()) for p in range(11)]
    assert results == ["success"] * 10 + [508]


# -- Refresh -----------------------------------------------------------------


def test_refresh_extends_and_zero_deletes(server, alice):
    server.next_event()
    assert alice.request(M.REFRESH, [Lifetime(1200)], 100.0).find(Lifetime).seconds == 1200
    assert server.get_timer() <= 1300.0
    relay = relay_of(server)
    assert alice.request(M.REFRESH, [Lifetime(0)], 101.0).find(Lifetime).seconds == 0
    assert server.allocations == {} and server.by_relay == {}
    assert server.next_event() == AllocationDeleted(CLIENT, relay, "alice", "refresh")
    assert code(alice.request(M.REFRESH, [Lifetime(0)], 102.0)) == 437


def test_refresh_with_the_other_family_is_443(server, alice):
    assert code(alice.request(M.REFRESH, [RequestedAddressFamily(IPV6)])) == 443


def test_allocation_expires_and_releases_its_port():
    server, pool = make_server()
    alice = Client(server)
    alice.allocate()                      # a challenge opens no 401 budget (failures do)
    assert server.get_timer() == 600.0
    server.handle_timer(599.0)
    assert len(server.allocations) == 1
    server.handle_timer(600.0)
    assert server.allocations == {} and pool.in_use == set()
    assert server.get_timer() is None or server.get_timer() > 600.0


# -- permissions and channels ------------------------------------------------


@pytest.mark.parametrize("peer, expected", [
    (("10.0.0.1", 1), 403), (("127.0.0.1", 1), 403), (("192.168.1.1", 1), 403),
    (("169.254.0.1", 1), 403), (("224.0.0.1", 1), 403), (("0.0.0.0", 1), 403),
    (("100.64.0.1", 1), 403), (("2001:db8::1", 1), 443), (PEER, "success"),
])
def test_create_permission_policy(server, alice, peer, expected):
    assert code(alice.request(M.CREATE_PERMISSION, [XorPeerAddress.of(*peer)])) == expected


def test_create_permission_needs_a_peer_and_is_all_or_nothing(server, alice):
    assert code(alice.request(M.CREATE_PERMISSION, [])) == 400
    both = [XorPeerAddress.of(*PEER), XorPeerAddress.of("10.0.0.1", 1)]
    assert code(alice.request(M.CREATE_PERMISSION, both)) == 403
    (allocation,) = server.allocations.values()
    assert allocation.permissions == {}


def test_requests_without_allocation_are_437(server):
    client = Client(server)
    client.request(M.REFRESH, [], sign=False)
    for method, attributes in [(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEER)]),
                               (M.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress.of(*PEER)]),
                               (M.REFRESH, [])]:
        assert code(client.request(method, attributes)) == 437


@pytest.mark.parametrize("number, expected", [
    (0x3FFF, 400), (0x4000, "success"), (0x4FFF, "success"), (0x7FFF, "success"), (0x8000, 400),
])
def test_channel_number_range(server, alice, number, expected):
    answer = alice.request(M.CHANNEL_BIND, [ChannelNumber(number), XorPeerAddress.of(*PEER)])
    assert code(answer) == expected


def test_channel_conflicts_are_400(server, alice):
    bind = lambda n, p: code(alice.request(M.CHANNEL_BIND, [ChannelNumber(n), XorPeerAddress.of(*p)]))
    assert bind(0x4000, PEER) == "success"
    assert bind(0x4000, PEER) == "success"               # a refresh
    assert bind(0x4000, (PEER[0], 5001)) == 400          # channel taken by another peer
    assert bind(0x4001, PEER) == 400                     # peer taken by another channel
    assert code(alice.request(M.CHANNEL_BIND, [XorPeerAddress.of(*PEER)])) == 400


def _bound(server, alice, stream=False):
    alice.request(M.CHANNEL_BIND, [ChannelNumber(0x4001), XorPeerAddress.of(*PEER)])
    return relay_of(server)


def test_channel_data_both_ways(server, alice):
    relay = _bound(server, alice)
    out = alice.send(frame_channel_data(0x4001, b"hello") + b"\0\0\0", 1.0)
    assert out == [(b"hello", (relay, PEER))]
    server.receive_datagram(b"world", (relay, PEER), 2.0)
    (data, route), = server.datagrams_to_send(2.0)
    assert route == CLIENT and split_channel_data(data) == (0x4001, b"world") and len(data) == 9


def test_channel_data_is_padded_on_streams():
    server, _ = make_server()
    route = ("tcp#7", ("192.0.2.10", 40000))
    alice = Client(server, route)
    alice.allocate()
    relay = _bound(server, alice)
    server.receive_datagram(b"world", (relay, PEER), 2.0)
    (data, _), = server.datagrams_to_send(2.0)
    assert data == frame_channel_data(0x4001, b"world") + b"\0\0\0"
    server.close_client(route, 3.0)
    assert server.allocations == {}


def test_peer_data_without_channel_is_a_data_indication(server, alice):
    alice.request(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEER)])
    relay = relay_of(server)
    server.receive_datagram(b"abc", (relay, (PEER[0], 9)), 1.0)
    (data, route), = server.datagrams_to_send(1.0)
    message = StunMessage.decode(data)
    assert (message.method, message.message_class) == (M.DATA, StunClass.INDICATION)
    assert message.find(XorPeerAddress).port == 9 and message.find(Data).value == b"abc"
    assert check_fingerprint(data)


def test_send_indication_relays_only_with_permission(server, alice):
    send = encode_message(M.SEND, StunClass.INDICATION, tid(),
                          [XorPeerAddress.of(*PEER), Data(b"x")])
    assert alice.send(send, 1.0) == []
    assert server.drops["no-permission"] == 1
    alice.request(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEER)], 1.0)
    assert alice.send(send, 2.0) == [(b"x", (relay_of(server), PEER))]


def test_unpermitted_peer_and_unbound_channel_are_dropped(server, alice):
    relay = relay_of(server)
    server.receive_datagram(b"abc", (relay, PEER), 1.0)
    alice.send(frame_channel_data(0x4005, b"x"), 1.0)
    assert server.datagrams_to_send(1.0) == []
    assert server.drops["no-permission"] == 1 and server.drops["unbound-channel"] == 1


def test_permission_expires_after_300_seconds_channel_after_600(server, alice):
    relay = _bound(server, alice)
    server.handle_timer(60.0)
    server.handle_timer(120.0)
    assert server.get_timer() == 300.0
    server.handle_timer(300.0)
    (allocation,) = server.allocations.values()
    assert allocation.permissions == {} and 0x4001 in allocation.channels
    server.receive_datagram(b"abc", (relay, PEER), 301.0)
    assert server.datagrams_to_send(301.0) == []
    alice.request(M.REFRESH, [Lifetime(3600)], 302.0)
    server.handle_timer(600.0)
    assert allocation.channels == {} and allocation.channel_by_peer == {}


# -- limits, credentials, usage ----------------------------------------------


def test_packet_rate_limit_drops_and_counts():
    server, _ = make_server(limits=Limits(packets_per_second=3))
    alice = Client(server)
    alice.allocate()
    _bound(server, alice)
    sent = [alice.send(frame_channel_data(0x4001, b"x"), 1.0) for _ in range(5)]
    assert [len(s) for s in sent] == [1, 1, 1, 0, 0]
    assert server.drops["rate-limit"] == 2
    assert len(alice.send(frame_channel_data(0x4001, b"x"), 2.0)) == 1


def test_new_peer_rate_limit_is_508():
    server, _ = make_server(limits=Limits(peers_per_second=1))
    alice = Client(server)
    alice.allocate()
    peers = [XorPeerAddress.of(f"9.9.9.{i}", 1) for i in range(1, 4)]
    assert code(alice.request(M.CREATE_PERMISSION, peers)) == 508
    assert code(alice.request(M.CREATE_PERMISSION, peers[:2])) == "success"


def test_expired_credential_stops_relaying_then_deletes():
    server, pool = make_server(credential_grace=10.0)
    username = "100:carol"
    server.authenticator = SharedSecretUsers("s3cret")
    carol = Client(server, username=username, password=rest_password("s3cret", username))
    assert code(carol.allocate(now=50.0)) == "success"
    relay = _bound(server, carol)
    assert server.get_timer() == 100.0
    server.handle_timer(100.0)
    server.receive_datagram(b"abc", (relay, PEER), 101.0)
    assert server.datagrams_to_send(101.0) == [] and server.drops["credential"] == 1
    server.handle_timer(server.get_timer())
    assert server.allocations == {} and pool.in_use == set()


def test_revoke_suspends_then_deletes(server, alice):
    relay = _bound(server, alice)
    assert server.revoke("alice", 5.0) == 1
    assert alice.send(frame_channel_data(0x4001, b"x"), 6.0) == []
    server.handle_timer(server.get_timer())
    assert server.allocations == {}
    events = [server.next_event() for _ in range(2)]
    assert events[1].reason == "credential" and events[1].relay == relay


def test_usage_counts_authenticated_bytes_both_ways(server, alice):
    _bound(server, alice)
    usage = server.drain_usage()
    assert [(c.username, i > 0, e > 0) for c, i, e in usage] == [("alice", True, True)]
    message = frame_channel_data(0x4001, b"12345")
    alice.send(message, 1.0)
    server.receive_datagram(b"abc", (relay_of(server), PEER), 1.0)
    server.datagrams_to_send(1.0)
    (credential, ingress, egress), = server.drain_usage()
    assert (ingress, egress) == (len(message), 4 + 3)
    assert server.drain_usage() == []
    alice.request(M.REFRESH, [Lifetime(0)], 2.0)
    (credential, ingress, egress), = server.drain_usage()
    assert ingress > 0 and egress > 0


def test_policy_switches():
    assert PeerPolicy(allow_loopback=True).permits("127.0.0.1")
    assert PeerPolicy(allow_loopback=True).permits("::1")
    assert not PeerPolicy(allow_loopback=True).permits("10.0.0.1")
    assert PeerPolicy(allow=["10.0.0.0/8"]).permits("10.2.3.4")
    assert not PeerPolicy(deny=["9.9.9.0/24"]).permits(PEER[0])
    assert not PeerPolicy().permits("::ffff:127.0.0.1")
    assert not PeerPolicy().permits("fe80::1%eth0")
    assert not PeerPolicy().permits("not an address")
    assert PeerPolicy().permits("8.8.8.8")
