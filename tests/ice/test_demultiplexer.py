"""SessionDemultiplexer: one media port, many sessions, bindings only after authentication."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError
from realtime.ice.demultiplexer import Routed, SessionDemultiplexer
from realtime.ice.lite import IceLiteAgent
from realtime.stun.attributes import ErrorCode
from realtime.stun.message import StunClass, StunMessage
from tests.ice.checks import (
    ADDR,
    ADDR6,
    LOCAL_PWD,
    LOCAL_UFRAG,
    REMOTE_UFRAG,
    TIEBREAKER,
    check,
)

OTHER_UFRAG = "srvZ"
OTHER_PWD = "otherserverpassword01234"


class Session:
    """The smallest thing with an ``.ice`` attribute."""

    def __init__(self, ufrag: str = LOCAL_UFRAG, pwd: str = LOCAL_PWD, **kwargs) -> None:
        kwargs.setdefault("tiebreaker", TIEBREAKER)
        self.ice = IceLiteAgent(ufrag, pwd, **kwargs)


@pytest.fixture
def port():
    demux = SessionDemultiplexer()
    first, second = Session(remote_ufrag=REMOTE_UFRAG), Session(OTHER_UFRAG, OTHER_PWD)
    demux.register(LOCAL_UFRAG, first)
    demux.register(OTHER_UFRAG, second)
    return demux, first, second


def test_authenticated_check_binds_address(port):
    demux, first, second = port
    assert demux.session_for_address(ADDR) is None
    session, response = demux.route_stun(check(), ADDR, 0.0)
    assert session is first
    assert StunMessage.decode(response).message_class == StunClass.SUCCESS
    assert demux.session_for_address(ADDR) is first
    assert demux.addresses_of(first) == {ADDR} and demux.addresses_of(second) == frozenset()


@pytest.mark.parametrize(
    "request_bytes, answered_by_first",
    [
        (check(key=b"wrong-password-wrong-pw"), True),  # 401 from the named session
        (check(username=f"{LOCAL_UFRAG}:other"), True),  # 401: wrong remote ufrag
        (check(fingerprint=False), False),  # dropped by the agent
        (check(username="nobody:x"), None),  # unknown ufrag: nobody answers
        (check(username=None), None),  # no USERNAME, unbound address
    ],
)
def test_unauthenticated_checks_bind_nothing(port, request_bytes, answered_by_first):
    demux, first, _ = port
    session, response = demux.route_stun(request_bytes, ADDR, 0.0)
    if answered_by_first is None:
        assert (session, response) == (None, None)
    else:
        assert session is first
        assert (response is not None) is answered_by_first
    assert demux.session_for_address(ADDR) is None and len(demux) == 0


def test_check_with_unknown_ufrag_from_bound_address_gets_401(port):
    demux, first, _ = port
    demux.route_stun(check(), ADDR, 0.0)
    session, response = demux.route_stun(check(username="nobody:x"), ADDR, 1.0)
    assert session is first
    assert StunMessage.decode(response).find(ErrorCode).code == 401
    assert demux.session_for_address(ADDR) is first


def test_second_address_ipv6_for_same_session(port):
    demux, first, second = port
    demux.route_stun(check(), ADDR, 0.0)
    demux.route_stun(check(), ADDR6, 0.1)
    assert demux.session_for_address(ADDR6) is first
    assert demux.addresses_of(first) == {ADDR, ADDR6}
    other = check(username=f"{OTHER_UFRAG}:peer", key=OTHER_PWD.encode())
    demux.route_stun(other, ("198.51.100.9", 9), 0.2)
    assert demux.session_for_address(("198.51.100.9", 9)) is second


def test_consent_expiry_unbinds(port):
    demux, first, _ = port
    demux.route_stun(check(use_candidate=True), ADDR, 0.0)
    demux.route_stun(check(), ADDR6, 20.0)
    first.ice.handle_timer(first.ice.get_timer())  # 30.0: ADDR lapses
    assert demux.prune(first) == [ADDR]
    assert demux.session_for_address(ADDR) is None
    assert demux.session_for_address(ADDR6) is first
    first.ice.handle_timer(first.ice.get_timer())
    assert demux.prune(first) == [ADDR6] and len(demux) == 0


def test_eviction_unbinds_at_once():
    demux = SessionDemultiplexer()
    session = Session(max_pairs=2)
    demux.register(LOCAL_UFRAG, session)
    for index in range(5):
        demux.route_stun(check(), ("203.0.113.1", 1000 + index), float(index))
    assert demux.addresses_of(session) == {("203.0.113.1", 1003), ("203.0.113.1", 1004)}
    assert len(demux) == 2 == len(session.ice.valid_addresses)


def test_unregister_forgets_ufrag_and_addresses(port):
    demux, first, _ = port
    demux.route_stun(check(), ADDR, 0.0)
    demux.unregister(first)
    assert demux.session_for_address(ADDR) is None
    assert demux.session_for_ufrag(LOCAL_UFRAG) is None
    assert demux.route_stun(check(), ADDR, 1.0) == Routed(None, None)
    demux.unregister(first)  # twice is harmless


def test_register_again_after_restart(port):
    demux, first, _ = port
    demux.route_stun(check(), ADDR, 0.0)
    first.ice.restart("srvB", "newserverpassword0123456", "brw2")
    demux.register("srvB", first)
    assert demux.session_for_ufrag(LOCAL_UFRAG) is None
    assert demux.session_for_ufrag("srvB") is first
    assert demux.session_for_address(ADDR) is first  # bindings survive
    new = check(username="srvB:brw2", key=b"newserverpassword0123456")
    session, response = demux.route_stun(new, ADDR6, 1.0)
    assert session is first and demux.session_for_address(ADDR6) is first


def test_duplicate_ufrag_is_refused(port):
    demux, _, _ = port
    with pytest.raises(ValueError, match="ice-ufrag 'srvA' is already registered"):
        demux.register(LOCAL_UFRAG, Session())


def test_address_moves_to_the_session_it_authenticates_with(port):
    demux, first, second = port
    demux.route_stun(check(), ADDR, 0.0)
    other = check(username=f"{OTHER_UFRAG}:peer", key=OTHER_PWD.encode())
    demux.route_stun(other, ADDR, 1.0)
    assert demux.session_for_address(ADDR) is second
    assert demux.addresses_of(first) == frozenset()
    assert demux.prune(first) == []  # the first agent's stale pair is not rebound


def test_lookup_is_one_dict_get():
    """The hot path: cost independent of the number of sessions and addresses."""
    demux = SessionDemultiplexer()
    sessions = []
    for index in range(300):
        session = Session(f"u{index:03d}", LOCAL_PWD)
        demux.register(session.ice.local_ufrag, session)
        demux.route_stun(
            check(username=f"u{index:03d}:peer"), ("10.0.0.1", 10000 + index), 0.0
        )
        sessions.append(session)
    assert len(demux) == 300
    assert all(
        demux.session_for_address(("10.0.0.1", 10000 + i)) is sessions[i] for i in range(300)
    )
    # The method is one dict.get: no per-session work can hide in it.
    code = SessionDemultiplexer.session_for_address.__code__
    assert code.co_names == ("_by_address", "get")


def test_garbage_raises_decode_error_only(port):
    demux, _, _ = port
    with pytest.raises(DecodeError):
        demux.route_stun(b"\x00\x01\x00\x00abc", ADDR, 0.0)


_fragments = st.sampled_from(
    [
        check(),
        check(use_candidate=True),
        check(key=b"wrong-password-wrong-pw"),
        check(username=None),
        check(fingerprint=False),
    ]
)


@settings(max_examples=300)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        # Valid-looking STUN with damage: flip a byte, truncate, or extend.
        st.tuples(_fragments, st.integers(0, 200), st.integers(1, 255)).map(
            lambda t: t[0][: t[1] % len(t[0])] + bytes([t[0][t[1] % len(t[0])] ^ t[2]])
            + t[0][t[1] % len(t[0]) + 1 :]
        ),
        st.tuples(_fragments, st.integers(0, 200)).map(lambda t: t[0][: t[1] % len(t[0])]),
    ),
    host=st.sampled_from(["192.0.2.1", "2001:db8::1"]),
)
def test_random_datagrams_never_bind(data, host):
    demux = SessionDemultiplexer()
    first, second = Session(remote_ufrag=REMOTE_UFRAG), Session(OTHER_UFRAG, OTHER_PWD)
    demux.register(LOCAL_UFRAG, first)
    demux.register(OTHER_UFRAG, second)
    try:
        demux.route_stun(data, (host, 5000), 0.0)
    except DecodeError:
        pass
    assert len(demux) == 0
    assert first.ice.valid_addresses == frozenset() == second.ice.valid_addresses


def test_a_cluster_node_drops_an_unknown_ufrag_from_a_bound_address_for_its_lookup():
    """The client's port served an old session here; its new session's ufrag is unknown here."""
    demux = SessionDemultiplexer(bound_answers_unknown=False)
    first = Session(remote_ufrag=REMOTE_UFRAG)
    demux.register(LOCAL_UFRAG, first)
    demux.route_stun(check(), ADDR, 0.0)
    assert demux.route_stun(check(username="nobody:x"), ADDR, 1.0) == (None, None)
    assert demux.session_for_address(ADDR) is first                  # the old binding stays
    session, response = demux.route_stun(check(username=None), ADDR, 1.0)
    assert session is first                     # no USERNAME: still the bound session's
