"""
The fast SRTP protect (realtime/srtp/fast.py) against the reference and RFC 3711.

``SrtpSession.protect`` (the SFU's per-packet path) goes through
:class:`~realtime.srtp.fast.FastProtect`; ``OutboundSrtpContext.protect`` is
the reference.  For the same input both must give the same octets, and
those octets must be what RFC 3711 prescribes under the B.3 keys (the
independent ``cryptography`` oracle of test_vectors.py).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from realtime.errors import LocalProtocolError
from realtime.srtp.context import MAX_RTP_SIZE, OutboundSrtpContext, from_dtls_keying
from realtime.srtp.fast import FastProtect
from realtime.srtp.profiles import SrtpProtectionProfile as P
from tests.srtp.test_vectors import check_cm_srtp, h

PROFILES = [
    P.SRTP_AES128_CM_HMAC_SHA1_80,
    P.SRTP_AES128_CM_HMAC_SHA1_32,
    P.SRTP_AEAD_AES_128_GCM,
    P.SRTP_AEAD_AES_256_GCM,
]


def keys(profile: P) -> tuple[bytes, bytes]:
    return bytes(range(1, profile.key_length + 1)), bytes(range(0x40, 0x40 + profile.salt_length))


def rtp(seq: int, ssrc: int, csrcs: int, extension: bytes | None, payload: bytes) -> bytes:
    first = 0x80 | csrcs | (0x10 if extension is not None else 0)
    header = struct.pack("!BBHII", first, 96, seq, 0x1234, ssrc) + bytes(range(4 * csrcs))
    if extension is not None:
        words = (len(extension) + 3) // 4
        header += struct.pack("!HH", 0xBEDE, words) + extension.ljust(4 * words, b"\0")
    return header + payload


packets = st.builds(
    rtp,
    seq=st.integers(0, 0xFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    csrcs=st.integers(0, 4),
    extension=st.none() | st.binary(min_size=1, max_size=16),
    payload=st.binary(max_size=1200),
)


@settings(max_examples=200, deadline=None)
@given(profile=st.sampled_from(PROFILES), batch=st.lists(packets, min_size=1, max_size=6),
       as_bytearray=st.booleans())
def test_fast_protect_is_byte_identical_to_the_reference(profile, batch, as_bytearray):
    """Same keys, same packets in the same order: the same SRTP octets, packet by packet.

    Random sequence numbers jump back past libsrtp's window at times: then
    both refuse (``index too old``), and both stay usable.
    """
    key, salt = keys(profile)
    reference = OutboundSrtpContext(profile, key, salt)
    fast = FastProtect(OutboundSrtpContext(profile, key, salt))
    for plain in batch:
        try:
            expected = reference.protect(plain)
        except LocalProtocolError:
            with pytest.raises(LocalProtocolError):
                fast(plain)
            continue
        got = fast(bytearray(plain) if as_bytearray else plain)
        assert type(got) is bytes
        assert got == expected


def test_srtp_session_protect_uses_the_fast_path_and_matches():
    """The SFU's call, ``SrtpSession.protect``, gives the reference's octets."""
    profile = P.SRTP_AES128_CM_HMAC_SHA1_80
    key, salt = keys(profile)
    session = from_dtls_keying(profile, (key, salt), (key, salt))
    assert isinstance(session._protect, FastProtect)
    reference = OutboundSrtpContext(profile, key, salt)
    for seq in (7, 8, 9):
        plain = rtp(seq, 0xCAFE, 1, b"\x10\x01", bytes(1100))
        assert session.protect(plain) == reference.protect(plain)


@settings(max_examples=100, deadline=None)
@given(seq=st.integers(0, 0xFFFF), ssrc=st.integers(0, 0xFFFFFFFF),
       csrcs=st.integers(0, 3), payload=st.binary(max_size=1300))
def test_fast_protect_matches_rfc3711_b3_keys(vectors, seq, ssrc, csrcs, payload):
    """RFC 3711 §4.1.1 keystream and §4.2 tag under the B.3 session keys, through the fast path."""
    kd = vectors("rfc3711_srtp_aes_cm")["key_derivation"]
    b3 = {"cipher": h(kd["cipher_key"]["value"]), "salt": h(kd["cipher_salt"]["value"]),
          "auth": h(kd["auth_key"]["value_first_20_octets_used_by_HMAC_SHA1"])}
    fast = FastProtect(OutboundSrtpContext(P.SRTP_AES128_CM_HMAC_SHA1_80,
                                           h(kd["master_key"]), h(kd["master_salt"])))
    plain = rtp(seq, ssrc, csrcs, None, payload)
    check_cm_srtp(b3, plain, fast(plain), roc=0)


@pytest.mark.parametrize("name,profile,salt_field", [
    ("aes_cm_128_hmac_sha1_80", P.SRTP_AES128_CM_HMAC_SHA1_80, "master_salt"),
    ("aead_aes_128_gcm", P.SRTP_AEAD_AES_128_GCM, "master_salt_12"),
])
def test_fast_protect_gives_libsrtps_known_answers(vectors, name, profile, salt_field):
    case = vectors("libsrtp_known_answer")[name]
    fast = FastProtect(OutboundSrtpContext(profile, h(case["master_key"]), h(case[salt_field])))
    assert fast(h(case["rtp_plain"])) == h(case["srtp"])


def test_fast_and_reference_share_one_context_across_the_rollover():
    """Interleaved on one context, they continue one stream: the ROC (RFC 3711 §3.3.1) is shared."""
    profile = P.SRTP_AES128_CM_HMAC_SHA1_80
    key, salt = keys(profile)
    mixed = OutboundSrtpContext(profile, key, salt)
    fast = FastProtect(mixed)
    alone = OutboundSrtpContext(profile, key, salt)
    for i, seq in enumerate((65533, 65534, 65535, 0, 1, 2)):
        plain = rtp(seq, 0xDECAFBAD, 0, None, b"payload %d" % i)
        got = fast(plain) if i % 2 else mixed.protect(plain)
        assert got == alone.protect(plain)


def test_fast_protect_refuses_what_the_reference_refuses():
    profile = P.SRTP_AES128_CM_HMAC_SHA1_80
    key, salt = keys(profile)
    fast = FastProtect(OutboundSrtpContext(profile, key, salt))
    reference = OutboundSrtpContext(profile, key, salt)
    largest = rtp(1, 5, 0, None, bytes(MAX_RTP_SIZE - 12))
    assert fast(largest) == reference.protect(largest)
    too_long = rtp(2, 5, 0, None, bytes(MAX_RTP_SIZE - 11))
    for protect in (fast, reference.protect):
        with pytest.raises(LocalProtocolError):
            protect(too_long)
    # 15 CSRCs announced, none present: libsrtp cannot parse it; neither path returns octets
    truncated = bytes([0x8F, 96, 0, 3]) + bytes(8)
    for protect in (fast, reference.protect):
        with pytest.raises(LocalProtocolError):
            protect(truncated)
