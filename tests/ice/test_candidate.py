"""The SDP candidate attribute (RFC 8839 §5.1), priorities and foundations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError, LocalProtocolError
from realtime.ice.candidate import (
    TYPE_PREFERENCE,
    Candidate,
    candidate_foundation,
    candidate_priority,
)

CHROMIUM_UDP = (
    "candidate:2845882245 1 udp 2122260223 127.0.0.1 36585 typ host"
    " generation 0 network-id 1 network-cost 50"
)
CHROMIUM_TCP = (
    "candidate:1460298513 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active"
    " generation 0 network-id 1 network-cost 50"
)
AIOICE = "candidate:16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 42273 typ host"
SRFLX = (
    "candidate:842163049 1 UDP 1677729535 203.0.113.7 61665 typ srflx"
    " raddr 10.0.0.5 rport 61665 generation 0"
)
RELAY6 = "candidate:3 1 udp 16777215 2001:db8::7 3478 typ relay raddr :: rport 0"
MDNS = "candidate:1 1 udp 2122262783 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54400 typ host"


def test_chromium_udp_fields():
    candidate = Candidate.decode(CHROMIUM_UDP)
    assert candidate == Candidate(
        foundation="2845882245",  # 1*32 ice-char
        component=1,  # RTP (rtcp-mux: the only component)
        transport="udp",
        priority=2122260223,  # 126 << 24 | 0x7f1e << 8 | (256 - 1)
        address="127.0.0.1",
        port=36585,
        type="host",
        extensions=(("generation", "0"), ("network-id", "1"), ("network-cost", "50")),
    )
    assert candidate.priority == candidate_priority(TYPE_PREFERENCE["host"], 0x7F1E, 1)
    assert 256 - (candidate.priority & 0xFF) == candidate.component


def test_tcptype_and_related_address():
    tcp = Candidate.decode(CHROMIUM_TCP)
    assert (tcp.transport, tcp.port, tcp.tcptype) == ("tcp", 9, "active")
    srflx = Candidate.decode(SRFLX)
    assert (srflx.type, srflx.related_address, srflx.related_port) == ("srflx", "10.0.0.5", 61665)
    assert srflx.transport == "UDP"  # spelling kept
    relay = Candidate.decode(RELAY6)
    assert (relay.address, relay.related_address, relay.related_port) == ("2001:db8::7", "::", 0)


@pytest.mark.parametrize("line", [CHROMIUM_UDP, CHROMIUM_TCP, AIOICE, SRFLX, RELAY6, MDNS])
def test_round_trip_of_real_lines(line):
    assert Candidate.decode(line).encode() == line


def test_prefix_is_optional_on_decode():
    assert Candidate.decode(AIOICE[len("candidate:") :]) == Candidate.decode(AIOICE)


def test_late_tcptype_stays_an_extension():
    line = "candidate:1 1 tcp 5 10.0.0.1 9 typ host generation 0 tcptype active"
    candidate = Candidate.decode(line)
    assert candidate.tcptype is None
    assert candidate.extensions == (("generation", "0"), ("tcptype", "active"))
    assert candidate.encode() == line


def test_priority_formula():
    """RFC 8445 §5.1.2.1; a host candidate with one interface is 2130706431."""
    assert candidate_priority(126, 65535, 1) == 2130706431 == Candidate.decode(AIOICE).priority
    assert candidate_priority(100, 65535, 1) == (100 << 24) + (65535 << 8) + 255
    assert candidate_priority(0, 0, 256) == 0
    assert candidate_priority(126, 65535, 2) == 2130706430


@pytest.mark.parametrize(
    "args, message",
    [
        ((127, 0, 1), "type preference 127 is not in 0..126"),
        ((0, 65536, 1), "local preference 65536 is not in 0..65535"),
        ((0, 0, 0), "component 0 is not in 1..256"),
        ((0, 0, 257), "component 257 is not in 1..256"),
    ],
)
def test_priority_out_of_range(args, message):
    with pytest.raises(LocalProtocolError) as raised:
        candidate_priority(*args)
    assert str(raised.value) == message


def test_foundation_is_stable_and_distinguishes_what_rfc_8445_lists():
    base = candidate_foundation("host", "192.0.2.1")
    assert base == candidate_foundation("host", "192.0.2.1", "UDP")
    assert len(base) == 8 and Candidate.decode(f"candidate:{base} 1 udp 1 h 1 typ host")
    others = {
        candidate_foundation("srflx", "192.0.2.1"),
        candidate_foundation("host", "192.0.2.2"),
        candidate_foundation("host", "192.0.2.1", "tcp"),
        candidate_foundation("relay", "192.0.2.1", server="turn.example.org"),
        candidate_foundation("relay", "192.0.2.1", server="turn2.example.org"),
    }
    assert base not in others and len(others) == 5


def test_host_candidate_ipv4_and_ipv6():
    v4 = Candidate.host("192.0.2.1", 443)
    assert v4.encode() == (
        f"candidate:{candidate_foundation('host', '192.0.2.1')} 1 udp 2130706431"
        " 192.0.2.1 443 typ host"
    )
    v6 = Candidate.host("2001:0db8:0000::0001", 3478)
    assert (v6.address, v6.port, v6.type) == ("2001:db8::1", 3478, "host")
    assert v6.foundation != v4.foundation
    assert Candidate.decode(v6.encode()) == v6


@pytest.mark.parametrize(
    "address, port, message",
    [
        ("example.org", 1, "host candidate address 'example.org' is not an IP"),
        ("192.0.2.1", 0, "host candidate port 0 is not in 1..65535"),
        ("192.0.2.1", 65536, "host candidate port 65536 is not in 1..65535"),
    ],
)
def test_host_candidate_misuse(address, port, message):
    with pytest.raises(LocalProtocolError) as raised:
        Candidate.host(address, port)
    assert str(raised.value) == message


MALFORMED = [
    ("candidate:1 1 udp 1 10.0.0.1 9 typ", "candidate has 7 fields, need at least 8"),
    ("candidate:1 1 udp 1 10.0.0.1  9 typ host", "candidate has an empty field"),
    ("candidate:a:b 1 udp 1 h 9 typ host", "candidate foundation 'a:b' is not 1..32 ice-chars"),
    ("candidate:" + "a" * 33 + " 1 udp 1 h 9 typ host",
     f"candidate foundation {'a' * 33!r} is not 1..32 ice-chars"),
    ("candidate:1 x udp 1 h 9 typ host", "candidate component 'x' is not 1..3 digits"),
    ("candidate:1 0 udp 1 h 9 typ host", "candidate component 0 is not in 1..256"),
    ("candidate:1 1000 udp 1 h 9 typ host", "candidate component '1000' is not 1..3 digits"),
    ("candidate:1 1 u(p 1 h 9 typ host", "candidate transport 'u(p' is not a token"),
    ("candidate:1 1 udp 0 h 9 typ host", "candidate priority 0 is not in 1..4294967295"),
    ("candidate:1 1 udp 4294967296 h 9 typ host",
     "candidate priority 4294967296 is not in 1..4294967295"),
    ("candidate:1 1 udp -1 h 9 typ host", "candidate priority '-1' is not 1..10 digits"),
    ("candidate:1 1 udp 1 h\x01 9 typ host", "candidate address 'h\\x01' is not an IP address or FQDN"),
    ("candidate:1 1 udp 1 h 65536 typ host", "candidate port 65536 is not in 0..65535"),
    ("candidate:1 1 udp 1 h ９ typ host", "candidate port '９' is not 1..5 digits"),
    ("candidate:1 1 udp 1 h 9 type host", "candidate has 'type' where 'typ' belongs"),
    ("candidate:1 1 udp 1 h 9 typ h@st", "candidate type 'h@st' is not a token"),
    ("candidate:1 1 udp 1 h 9 typ host raddr", "candidate raddr has no value"),
    ("candidate:1 1 udp 1 h 9 typ host raddr \x7f", "candidate raddr '\\x7f' is not an IP address or FQDN"),
    ("candidate:1 1 udp 1 h 9 typ host rport", "candidate rport has no value"),
    ("candidate:1 1 udp 1 h 9 typ host rport x", "candidate rport 'x' is not 1..5 digits"),
    ("candidate:1 1 udp 1 h 9 typ host tcptype", "candidate tcptype has no value"),
    ("candidate:1 1 udp 1 h 9 typ host tcptype a/b", "candidate tcptype 'a/b' is not a token"),
    ("candidate:1 1 udp 1 h 9 typ host generation", "candidate extension 'generation' has no value"),
    ("candidate:1 1 udp 1 h 9 typ host g(n 0", "candidate extension name 'g(n' is not a token"),
    ("candidate:1 1 udp 1 h 9 typ host gen \t", "candidate extension value '\\t' is not printable"),
]


@pytest.mark.parametrize("line, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed(line, message):
    with pytest.raises(DecodeError) as raised:
        Candidate.decode(line)
    assert str(raised.value) == message


_ice_chars = st.text("abcXYZ0189+/", min_size=1, max_size=32)
_tokens = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12)
_vchars = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
_addresses = st.from_regex(r"[A-Za-z0-9.:\-]{1,20}", fullmatch=True)
_reserved = {"raddr", "rport", "tcptype"}


@st.composite
def candidates(draw) -> Candidate:
    related = draw(st.booleans())
    extensions = draw(
        st.lists(
            st.tuples(_tokens.filter(lambda t: t not in _reserved), _vchars), max_size=3
        )
    )
    return Candidate(
        foundation=draw(_ice_chars),
        component=draw(st.integers(1, 256)),
        transport=draw(_tokens),
        priority=draw(st.integers(1, 0xFFFFFFFF)),
        address=draw(_addresses),
        port=draw(st.integers(0, 0xFFFF)),
        type=draw(_tokens),
        related_address=draw(_addresses) if related else None,
        related_port=draw(st.integers(0, 0xFFFF)) if related else None,
        tcptype=draw(st.none() | _tokens),
        extensions=tuple(extensions),
    )


@settings(max_examples=200)
@given(candidates())
def test_round_trip_property(candidate):
    assert Candidate.decode(candidate.encode()) == candidate


@settings(max_examples=300)
@given(st.text(max_size=120) | st.lists(st.sampled_from(
    ["candidate:1", "1", "udp", "typ", "host", "raddr", "rport", "tcptype", "x", "", "99999"]
), max_size=14).map(" ".join))
def test_only_decode_error(text):
    try:
        candidate = Candidate.decode(text)
    except DecodeError:
        return
    assert Candidate.decode(candidate.encode()) == candidate
