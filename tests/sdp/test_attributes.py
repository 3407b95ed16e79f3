"""
Tests for the typed attribute values: one row per well-formed example
(parse, fields, back to the same text) and one row per malformed value.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.errors import DecodeError
from realtime.sdp import (
    Candidate, Fingerprint, Fmtp, Group, HeaderExtension, Msid, RtcpFeedback, RtpMap, SdpError,
    SsrcAttribute, SsrcGroup,
)
from realtime.ice.candidate import candidate_foundation, candidate_priority
from realtime.sdp.session import parse_attribute

WELL_FORMED = [
    ("rtpmap:111 opus/48000/2", RtpMap(111, "opus", 48000, 2)),
    ("rtpmap:96 VP8/90000", RtpMap(96, "VP8", 90000)),
    ("fmtp:97 apt=96", Fmtp(97, "apt=96")),
    ("fmtp:101 0-15", Fmtp(101, "0-15")),
    ("rtcp-fb:96 nack pli", RtcpFeedback(96, "nack", "pli")),
    ("rtcp-fb:* transport-cc", RtcpFeedback(None, "transport-cc")),
    ("extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
     HeaderExtension(4, "urn:ietf:params:rtp-hdrext:sdes:mid")),
    ("extmap:6/recvonly http://x/playout-delay", HeaderExtension(6, "http://x/playout-delay",
                                                                 "recvonly")),
    ("extmap:200 urn:x attr1 attr2", HeaderExtension(200, "urn:x", None, "attr1 attr2")),
    ("fingerprint:sha-256 0A:FF", Fingerprint("sha-256", "0A:FF")),
    ("group:BUNDLE 0 1 2", Group("BUNDLE", ("0", "1", "2"))),
    ("group:LS", Group("LS", ())),
    ("msid:stream track", Msid("stream", "track")),
    ("msid:-", Msid("-")),
    ("ssrc:12500962 cname:/A3ikQUdezxx453e", SsrcAttribute(12500962, "cname", "/A3ikQUdezxx453e")),
    ("ssrc:1 msid:a b", SsrcAttribute(1, "msid", "a b")),
    ("ssrc:1 x-flag", SsrcAttribute(1, "x-flag")),
    ("ssrc-group:FID 1327736354 220366198", SsrcGroup("FID", (1327736354, 220366198))),
    ("ssrc-group:SIM 1 2 3", SsrcGroup("SIM", (1, 2, 3))),
    ("candidate:1 1 udp 2130706431 ::1 5000 typ host",
     Candidate("1", 1, "udp", 2130706431, "::1", 5000, "host")),
    ("candidate:2 1 udp 1 203.0.113.5 61000 typ relay raddr 10.0.0.1 rport 4000 generation 0",
     Candidate("2", 1, "udp", 1, "203.0.113.5", 61000, "relay", "10.0.0.1", 4000,
               extensions=(("generation", "0"),))),
]


@pytest.mark.parametrize(("text", "value"), WELL_FORMED)
def test_well_formed(text, value):
    assert parse_attribute(text) == value
    assert value.line() == "a=" + text


def test_fingerprint_digest_and_from_digest():
    fingerprint = Fingerprint.from_digest("sha-256", bytes(range(32)))
    assert fingerprint.fingerprint.startswith("00:01:02:03")
    assert fingerprint.digest == bytes(range(32))
    assert Fingerprint.parse("sha-1 ab:cd").digest == b"\xab\xcd"


def test_host_candidate_priority():
    # RFC 8445 §5.1.2.1: type preference 126, local preference 65535, component 1
    assert candidate_priority(126, 65535, 1) == (126 << 24) + (65535 << 8) + 255 == 2130706431
    host = Candidate.host("2001:db8::1", 3478)
    foundation = candidate_foundation("host", "2001:db8::1", "udp")
    assert host.line() == f"a=candidate:{foundation} 1 udp 2130706431 2001:db8::1 3478 typ host"


MALFORMED = [
    "rtpmap:x VP8/90000",
    "rtpmap:128 VP8/90000",
    "rtpmap:96 VP8",
    "rtpmap:96 VP8/fast",
    "rtpmap:96 VP8/90000/0",
    "fmtp:97",
    "fmtp:x apt=96",
    "rtcp-fb:96",
    "rtcp-fb:+ nack",
    "extmap:0 urn:x",
    "extmap:256 urn:x",
    "extmap:4/both urn:x",
    "extmap:4",
    "fingerprint:sha-256 0G:00",
    "fingerprint:sha-256",
    "group: 0",
    "msid:a b c",
    "msid:a  b",
    "ssrc:4294967296 cname:x",
    "ssrc:1",
    "ssrc-group:FID 1 x",
    "candidate:1 1 udp 1 ::1 5000 host",
    "candidate:1 1 udp 1 ::1 5000 typ",
    "candidate:1 0 udp 1 ::1 5000 typ host",
    "candidate:1 1 udp 1 ::1 70000 typ host",
    "candidate:1 1 udp 1 ::1 5000 typ host raddr",
    "candidate:1 1 udp 1 ::1 5000 typ host rport x",
    "candidate:1 1 udp 1 a/b 5000 typ host",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed(text):
    name, _, value = text.partition(":")
    with pytest.raises(SdpError) as caught:
        parse_attribute(text)
    assert str(caught.value) == f"malformed a={name}: {value!r}"


@settings(max_examples=200)
@given(st.sampled_from(["rtpmap", "fmtp", "rtcp-fb", "extmap", "fingerprint", "group", "msid",
                        "ssrc", "ssrc-group", "candidate", "rid", "simulcast", "setup"]),
       st.text(max_size=60))
def test_random_values_raise_only_decode_error(name, value):
    try:
        parsed = parse_attribute(f"{name}:{value}")
    except DecodeError:
        return
    assert parse_attribute(parsed.line()[2:]) == parsed


@pytest.mark.parametrize("text", ["ice-ufrag:z/Y1", "ice-ufrag:a+b/", "ice-pwd:" + "x/+9" * 6])
def test_ice_credentials_allow_plus_and_slash(text):
    """RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/" (Chromium's ufrags use '/')."""
    name, _, value = text.partition(":")
    assert parse_attribute(text).raw == value


@pytest.mark.parametrize("text", ["ice-ufrag:abc", "ice-ufrag:ab-cd", "ice-pwd:tooshort"])
def test_ice_credentials_malformed(text):
    with pytest.raises(SdpError):
        parse_attribute(text)
