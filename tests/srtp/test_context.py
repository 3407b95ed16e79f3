"""Inbound/outbound SRTP contexts: round trips, ROC, replay, bounds and hostile input."""

from __future__ import annotations

import struct

import pylibsrtp
import pytest
from hypothesis import given, settings, strategies as st

from realtime.errors import DecodeError, LocalProtocolError
from realtime.srtp.context import (
    InboundSrtpContext,
    MAX_RTP_SIZE,
    OutboundSrtpContext,
    SrtpError,
    SrtpReplayError,
    SrtpSession,
    _rejected,
    from_dtls_keying,
)
from realtime.srtp.profiles import SrtpProtectionProfile as P

PROFILES = list(P)


def keying(profile: P, seed: int) -> tuple[bytes, bytes]:
    """Return a deterministic (key, salt) for ``profile``."""
    return bytes([seed]) * profile.key_length, bytes([seed + 1]) * profile.salt_length


def pair(profile: P = P.SRTP_AES128_CM_HMAC_SHA1_80, **options):
    """Return (outbound, inbound) contexts sharing one master key."""
    key, salt = keying(profile, 7)
    inbound = InboundSrtpContext(profile, key, salt, **options)
    return OutboundSrtpContext(profile, key, salt), inbound


def rtp(seq: int, ssrc: int = 0xCAFEBABE, payload: bytes = b"\xab" * 20, ts: int = 0) -> bytes:
    """Return an RTP packet: V=2, PT 111, no CSRC, no extension."""
    return struct.pack("!BBHII", 0x80, 111, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def index_word(profile: P, srtcp: bytes) -> bytes:
    """Return the E|SRTCP index word: before the tag (RFC 3711 §3.4), after it with GCM (§17)."""
    if profile.parameters.aead:
        return srtcp[-4:]
    tag = profile.parameters.srtcp_tag_length
    return srtcp[-tag - 4 : -tag]


def rtcp_rr(ssrc: int = 0xCAFEBABE) -> bytes:
    """Return an empty Receiver Report: V=2, RC=0, PT=201, length 1."""
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_round_trip_every_profile(profile):
    out, inb = pair(profile)
    packet = rtp(1)
    protected = out.protect(packet)
    assert protected[:12] == packet[:12]  # header in the clear (RFC 3711 §3.1)
    assert protected[12:32] != packet[12:]  # payload encrypted
    assert len(protected) == len(packet) + profile.srtp_overhead
    assert inb.unprotect(protected) == packet
    report = rtcp_rr()
    sealed = out.protect_rtcp(report)
    assert len(sealed) == len(report) + profile.srtcp_overhead
    assert index_word(profile, sealed) == b"\x80\x00\x00\x01"  # E=1, libsrtp starts at index 1
    assert inb.unprotect_rtcp(sealed) == report


@settings(max_examples=200, deadline=None)
@given(
    profile=st.sampled_from(PROFILES),
    seq=st.integers(0, 0xFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=MAX_RTP_SIZE - 12),
)
def test_round_trip_property(profile, seq, ssrc, payload):
    out, inb = pair(profile)
    packet = rtp(seq, ssrc, payload)
    assert inb.unprotect(out.protect(packet)) == packet


def test_roc_follows_70000_packets_across_the_wrap():
    """The rollover counter increments at 65535 -> 0 (RFC 3711 §3.3.1) on both sides."""
    out, inb = pair()
    start = 65535 - 1000
    for index in range(start, start + 70000):
        packet = rtp(index, payload=index.to_bytes(4, "big"))
        assert inb.unprotect(out.protect(packet)) == packet


def test_roc_mismatch_is_detected():
    """A receiver that starts after the wrap (ROC 0) cannot authenticate a ROC 1 packet."""
    out, _ = pair()
    for seq in range(65530, 65536 + 5):
        last = out.protect(rtp(seq))
    _, late = pair()
    with pytest.raises(SrtpError, match="authentication failed"):
        late.unprotect(last)


def test_replayed_packet_is_rejected_and_context_survives():
    out, inb = pair()
    first = out.protect(rtp(10))
    inb.unprotect(first)
    with pytest.raises(SrtpReplayError) as info:
        inb.unprotect(first)
    assert str(info.value) == "SRTP packet rejected: replayed packet"
    assert inb.unprotect(out.protect(rtp(11))) == rtp(11)


def test_reordering_inside_the_window_is_accepted():
    out, inb = pair()
    packets = [out.protect(rtp(seq)) for seq in range(100)]
    inb.unprotect(packets[-1])  # newest first, then the older ones late
    for seq in range(98, 98 - 60, -1):
        assert inb.unprotect(packets[seq]) == rtp(seq)


def test_replay_window_size_is_configurable():
    out, inb = pair(replay_window=64)
    packets = [out.protect(rtp(seq)) for seq in range(200)]
    inb.unprotect(packets[199])
    inb.unprotect(packets[199 - 63])  # just inside 64
    with pytest.raises(SrtpReplayError, match="index older than the replay window"):
        inb.unprotect(packets[199 - 64])


def test_replayed_srtcp_is_rejected():
    out, inb = pair()
    sealed = out.protect_rtcp(rtcp_rr())
    inb.unprotect_rtcp(sealed)
    with pytest.raises(SrtpReplayError, match="^SRTCP packet rejected: replayed packet$"):
        inb.unprotect_rtcp(sealed)


def test_outbound_may_protect_a_sequence_number_twice():
    """An answered NACK resends the same packet (allow_repeat_tx)."""
    out, _ = pair()
    assert out.protect(rtp(5)) == out.protect(rtp(5))
    cm80 = P.SRTP_AES128_CM_HMAC_SHA1_80
    strict = OutboundSrtpContext(cm80, *keying(cm80, 7), allow_repeat_tx=False)
    strict.protect(rtp(5))
    with pytest.raises(LocalProtocolError, match="replay check failed"):
        strict.protect(rtp(5))


def _tampered(out: OutboundSrtpContext, seq: int, offset: int) -> bytes:
    data = bytearray(out.protect(rtp(seq)))
    data[offset] ^= 0x01
    return bytes(data)


def _malformed_header(out: OutboundSrtpContext) -> bytes:
    data = bytearray(out.protect(rtp(1)))
    data[0] = 0x8F  # CC = 15: 60 octets of CSRC that are not there
    return bytes(data)


def _e_flag_clear(out: OutboundSrtpContext) -> bytes:
    data = bytearray(out.protect_rtcp(rtcp_rr()))
    data[-14] &= 0x7F  # E|index word sits before the 10-octet tag
    return bytes(data)


# One row per message the inbound context can give.
REJECTIONS = [
    ("unprotect", lambda out: _tampered(out, 1, 20), SrtpError,
     "SRTP packet rejected: authentication failed"),
    ("unprotect", lambda out: _tampered(out, 1, 33), SrtpError,  # the tag itself
     "SRTP packet rejected: authentication failed"),
    ("unprotect", _malformed_header, SrtpError, "SRTP packet rejected: malformed header"),
    ("unprotect", lambda out: b"\x80" * 21, SrtpError,
     "SRTP packet rejected: 21 bytes, shorter than 22"),
    ("unprotect", lambda out: b"\x80" * 1501, SrtpError,
     "SRTP packet rejected: 1501 bytes, longer than 1500"),
    ("unprotect_rtcp", lambda out: out.protect_rtcp(rtcp_rr())[:-1] + b"\0", SrtpError,
     "SRTCP packet rejected: authentication failed"),
    ("unprotect_rtcp", _e_flag_clear, SrtpError,
     "SRTCP packet rejected: E flag clear on an encrypted session"),
    ("unprotect_rtcp", lambda out: b"\x80\xc9\x00\x01" + bytes(17), SrtpError,
     "SRTCP packet rejected: 21 bytes, shorter than 22"),
    ("unprotect_rtcp", lambda out: b"\x80\xc9" + bytes(1499), SrtpError,
     "SRTCP packet rejected: 1501 bytes, longer than 1500"),
]


@pytest.mark.parametrize("method,make,error,message", REJECTIONS)
def test_rejections(method, make, error, message):
    out, inb = pair()
    with pytest.raises(error) as info:
        getattr(inb, method)(make(out))
    assert str(info.value) == message
    assert isinstance(info.value, DecodeError)


def test_replay_rejection_messages():
    out, inb = pair(replay_window=64)
    old = out.protect(rtp(1))
    inb.unprotect(out.protect(rtp(500)))
    with pytest.raises(SrtpReplayError) as info:
        inb.unprotect(old)
    assert str(info.value) == "SRTP packet rejected: index older than the replay window"


def test_unknown_libsrtp_reason_is_still_a_decode_error():
    error = _rejected("SRTP", bytes(40), 22, pylibsrtp.Error("nonce check failed"))
    assert type(error) is SrtpError
    assert str(error) == "SRTP packet rejected: libsrtp says nonce check failed"


@settings(max_examples=300, deadline=None)
@given(profile=st.sampled_from(PROFILES), data=st.binary(max_size=1600), rtcp=st.booleans())
def test_hostile_bytes_raise_only_decode_error(profile, data, rtcp):
    _, inb = pair(profile)
    try:
        (inb.unprotect_rtcp if rtcp else inb.unprotect)(data)
    except DecodeError:
        pass
    assert inb.stream_count == 0  # nothing authenticated, nothing remembered


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=13, max_size=200), flip=st.integers(0, 10_000))
def test_bit_flips_in_real_packets_never_authenticate(data, flip):
    out, inb = pair()
    packet = bytearray(out.protect(rtp(3, payload=data)))
    position = flip % (len(packet) * 8)
    packet[position // 8] ^= 1 << (position % 8)
    with pytest.raises(DecodeError):
        inb.unprotect(bytes(packet))


def test_garbage_from_a_new_ssrc_creates_no_stream():
    """libsrtp clones the template only after authentication: forged SSRCs cost nothing."""
    out, inb = pair()
    forged = bytearray(out.protect(rtp(1, ssrc=0x11111111)))
    forged[-1] ^= 0xFF
    with pytest.raises(SrtpError):
        inb.unprotect(bytes(forged))
    assert inb.stream_count == 0
    assert inb.remove_stream(0x11111111) is False  # libsrtp has no stream either


def test_inbound_streams_are_bounded_least_recent_first():
    out, inb = pair(max_streams=3)
    for ssrc in (1, 2, 3):
        inb.unprotect(out.protect(rtp(1, ssrc)))
    inb.unprotect(out.protect(rtp(2, 1)))  # 1 is now the most recent; 2 the least
    inb.unprotect(out.protect(rtp(1, 4)))
    assert inb.stream_count == 3
    assert inb.remove_stream(2) is False  # evicted already
    assert inb.remove_stream(1) is True
    assert inb.remove_stream(1) is False
    # RTCP counts too (its sender SSRC shares the stream).
    inb.unprotect_rtcp(out.protect_rtcp(rtcp_rr(9)))
    assert inb.stream_count == 3


def test_outbound_remove_stream_restarts_the_srtcp_index():
    out, _ = pair()
    out.protect_rtcp(rtcp_rr())
    second = out.protect_rtcp(rtcp_rr())
    assert second[-14:-10] == b"\x80\x00\x00\x02"
    assert out.remove_stream(0xCAFEBABE) is True
    assert out.remove_stream(0xCAFEBABE) is False
    assert out.protect_rtcp(rtcp_rr())[-14:-10] == b"\x80\x00\x00\x01"


@pytest.mark.parametrize(
    "packet,message",
    [
        (b"\x80", "cannot protect RTP packet of 1 bytes: unsupported parameter"),
        (
            rtp(1, payload=bytes(MAX_RTP_SIZE - 11)),
            f"cannot protect RTP packet of {MAX_RTP_SIZE + 1} bytes: packet is too long",
        ),
    ],
)
def test_protect_misuse_is_local_error(packet, message):
    out, _ = pair()
    with pytest.raises(LocalProtocolError) as info:
        out.protect(packet)
    assert str(info.value) == message


def test_protect_rtcp_misuse_is_local_error():
    out, _ = pair()
    with pytest.raises(LocalProtocolError, match="^cannot protect RTCP packet of 2 bytes: "):
        out.protect_rtcp(b"\x80\xc9")


@pytest.mark.parametrize(
    "key,salt,message",
    [
        (bytes(15), bytes(14), "SRTP_AES128_CM_HMAC_SHA1_80 needs a 16-octet key"
         " and a 14-octet salt, got 15 and 14"),
        (bytes(16), bytes(12), "SRTP_AES128_CM_HMAC_SHA1_80 needs a 16-octet key"
         " and a 14-octet salt, got 16 and 12"),
    ],
)
def test_wrong_key_sizes(key, salt, message):
    with pytest.raises(LocalProtocolError) as info:
        InboundSrtpContext(P.SRTP_AES128_CM_HMAC_SHA1_80, key, salt)
    assert str(info.value) == message


def test_replay_window_bounds():
    with pytest.raises(LocalProtocolError, match="replay window 32 is outside 64..32767"):
        pair(replay_window=32)


def test_session_profiles_must_agree():
    inbound = InboundSrtpContext(P.SRTP_AEAD_AES_128_GCM, *keying(P.SRTP_AEAD_AES_128_GCM, 1))
    cm80 = P.SRTP_AES128_CM_HMAC_SHA1_80
    outbound = OutboundSrtpContext(cm80, *keying(cm80, 1))
    with pytest.raises(LocalProtocolError):
        SrtpSession(inbound, outbound)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_from_dtls_keying_builds_mirrored_sessions(profile):
    """Client's outbound is keyed like the server's inbound and vice versa (RFC 5764 §4.2)."""
    client_write, server_write = keying(profile, 1), keying(profile, 100)
    client = from_dtls_keying(profile.openssl_name.encode(), client_write, server_write)
    server = from_dtls_keying(int(profile), server_write, client_write)
    assert client.profile is server.profile is profile
    assert server.unprotect(client.protect(rtp(1))) == rtp(1)
    assert client.unprotect(server.protect(rtp(1))) == rtp(1)
    assert server.unprotect_rtcp(client.protect_rtcp(rtcp_rr())) == rtcp_rr()
    assert client.unprotect_rtcp(server.protect_rtcp(rtcp_rr())) == rtcp_rr()
    with pytest.raises(SrtpError):  # a session cannot read what it sent itself
        client.unprotect(client.protect(rtp(2)))
