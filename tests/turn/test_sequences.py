"""Hypothesis: random request/data sequences never raise and never leak state."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings, strategies as st

from realtime.errors import DecodeError
from realtime.stun.attributes import (
    IPV4, IPV6, AdditionalAddressFamily, ChannelNumber, Data, EvenPort, Lifetime,
    RequestedAddressFamily, RequestedTransport, ReservationToken, XorPeerAddress,
)
from realtime.stun.message import StunClass, StunMethod, encode_message
from realtime.turn.channel_data import frame_channel_data
from tests.turn.client import Client, code, make_server, tid

M = StunMethod
ROUTES = [("udp", ("192.0.2.10", 1)), ("udp", ("192.0.2.10", 2)), ("tcp#1", ("192.0.2.11", 3))]
USERS = [("alice", "wonderland"), ("bob", "builder")]
PEERS = [("9.9.9.9", 1000), ("9.9.9.9", 1001), ("2606:4700::1111", 53), ("10.0.0.1", 1)]

SEEN: set[str] = set()

operation = st.one_of(
    st.tuples(st.just("allocate"), st.integers(0, 2), st.integers(0, 1),
              st.sampled_from(["plain", "even", "reserve", "token", "ipv6", "dual", "lifetime"])),
    st.tuples(st.just("refresh"), st.integers(0, 2), st.sampled_from([0, 1, 600, 5000]),
              st.sampled_from([None, 1, 2])),
    st.tuples(st.just("permission"), st.integers(0, 2), st.integers(0, 3)),
    st.tuples(st.just("bind"), st.integers(0, 2), st.integers(0x3FFF, 0x4003), st.integers(0, 3)),
    st.tuples(st.just("send"), st.integers(0, 2), st.integers(0, 3)),
    st.tuples(st.just("channel"), st.integers(0, 2), st.integers(0x4000, 0x4003)),
    st.tuples(st.just("peer"), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("garbage"), st.integers(0, 2), st.binary(max_size=40)),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 10.0, 61.0, 299.0, 301.0, 700.0])),
    st.tuples(st.just("revoke"), st.integers(0, 1)),
    st.tuples(st.just("close"), st.integers(0, 2)),
)


def check_invariants(server, pool) -> None:
    relays = {relay for a in server.allocations.values() for relay in a.relays}
    assert set(server.by_relay) == relays
    assert all(server.by_relay[relay] is a for a in server.allocations.values()
               for relay in a.relays)
    assert all(b.relay in a.relays for a in server.allocations.values()
               for b in a.channels.values())
    reserved = {address for address, _ in server.reservations.values()}
    assert pool.in_use == relays | reserved
    counts = {}
    for allocation in server.allocations.values():
        counts[allocation.credential.username] = counts.get(allocation.credential.username, 0) + 1
    assert dict(server.per_user) == counts


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=40))
@example([("allocate", 0, 0, "plain"), ("refresh", 0, 0, None), ("allocate", 1, 0, "lifetime"),
          ("advance", 700.0)])
@example([("allocate", 0, 0, "dual"), ("bind", 0, 0x4000, 2), ("channel", 0, 0x4000),
          ("peer", 1, 2), ("refresh", 0, 0, 2), ("channel", 0, 0x4000), ("peer", 1, 2),
          ("refresh", 0, 600, 1), ("advance", 700.0)])
def test_random_sequences(operations):
    server, pool = make_server({IPV4: "203.0.113.1", IPV6: "2001:db8::1"},  # dual-stack relays
                               max_allocations_per_user=3)
    clients = {}
    tokens = []
    now = 0.0
    seen = SEEN

    def client(index):
        if index not in clients:
            user, password = USERS[index % 2]
            clients[index] = Client(server, ROUTES[index], user, password)
        return clients[index]

    for op in operations:
        kind = op[0]
        try:
            if kind == "allocate":
                c = client(op[1])
                attributes = [RequestedTransport(17)]
                extra = {"even": [EvenPort(False)], "reserve": [EvenPort(True)],
                         "token": [ReservationToken(tokens[-1] if tokens else b"00000000")],
                         "ipv6": [RequestedAddressFamily(2)], "lifetime": [Lifetime(1)],
                         "dual": [AdditionalAddressFamily(IPV6)]}
                attributes += extra.get(op[3], [])
                answer = c.request(M.ALLOCATE, attributes, now, sign=bool(op[2] or c.nonce))
                if code(answer) == 401 and not op[2]:
                    answer = c.request(M.ALLOCATE, attributes, now)
                token = answer.find(ReservationToken) if answer else None
                if token is not None:
                    tokens.append(token.value)
            elif kind == "refresh":
                family = [RequestedAddressFamily(op[3])] if op[3] else []
                client(op[1]).request(M.REFRESH, [Lifetime(op[2]), *family], now)
            elif kind == "permission":
                client(op[1]).request(M.CREATE_PERMISSION, [XorPeerAddress.of(*PEERS[op[2]])], now)
            elif kind == "bind":
                client(op[1]).request(M.CHANNEL_BIND, [ChannelNumber(op[2]),
                                                       XorPeerAddress.of(*PEERS[op[3]])], now)
            elif kind == "send":
                data = encode_message(M.SEND, StunClass.INDICATION, tid(),
                                      [XorPeerAddress.of(*PEERS[op[2]]), Data(b"x" * 10)])
                client(op[1]).send(data, now)
            elif kind == "channel":
                client(op[1]).send(frame_channel_data(op[2], b"y" * 7), now)
            elif kind == "peer":
                relays = sorted(server.by_relay) + [("203.0.113.1", 50009)]
                server.receive_datagram(b"z" * 5, (relays[op[1] % len(relays)], PEERS[op[2]]), now)
            elif kind == "garbage":
                client(op[1]).send(op[2], now)
            elif kind == "advance":
                end = now + op[1]
                while server.get_timer() is not None and server.get_timer() <= end:
                    now = max(now, server.get_timer())
                    server.handle_timer(now)
                now = end
            elif kind == "revoke":
                server.revoke(USERS[op[1]][0], now)
            elif kind == "close":
                server.close_client(ROUTES[op[1]], now)
        except DecodeError:
            pass
        server.datagrams_to_send(now)
        check_invariants(server, pool)
        seen.update(type(e).__name__ for e in iter(server.next_event, None))

    end = now + 10_000.0
    steps = 0
    while server.get_timer() is not None and server.get_timer() <= end:
        now = max(now, server.get_timer())
        server.handle_timer(now)
        steps += 1
        assert steps < 1000
    seen.update(type(e).__name__ for e in iter(server.next_event, None))
    assert server.allocations == {} and server.by_relay == {} and server.reservations == {}
    assert pool.in_use == set() and not server.per_user


def test_sequences_reached_allocations():
    """Guard: the random sequences above did create and delete allocations."""
    if not SEEN:
        pytest.skip("test_random_sequences did not run in this session")
    assert {"AllocationCreated", "AllocationDeleted"} <= SEEN
