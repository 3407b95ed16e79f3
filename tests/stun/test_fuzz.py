"""Hypothesis: STUN round trips, and hostile bytes raise only DecodeError."""

from __future__ import annotations

import socket

from hypothesis import given, settings, strategies as st

from realtime.errors import DecodeError
from realtime.stun import attributes as A
from realtime.stun.binding import answer_binding
from realtime.stun.message import (
    MAGIC_COOKIE, StunClass, StunMessage, check_fingerprint, check_message_integrity,
    check_message_integrity_sha256, encode_message,
)
from realtime.stun.stream import StreamFramer

COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
u8, u16, u32, u64 = (st.integers(0, 2**n - 1) for n in (8, 16, 32, 64))
text = st.text(max_size=40)
ipv4 = st.ip_addresses(v=4).map(str)
# The codec returns socket.inet_ntop text ("::ffff:0.0.0.0", not "::ffff:0:0").
ipv6 = st.ip_addresses(v=6).map(lambda a: socket.inet_ntop(socket.AF_INET6, a.packed))


def addresses(cls):
    return st.one_of(
        st.builds(cls, st.just(1), ipv4, u16),
        st.builds(cls, st.just(2), ipv6, u16),
    )


ATTRIBUTES = st.one_of(
    *(addresses(cls) for cls in (
        A.MappedAddress, A.XorMappedAddress, A.XorPeerAddress, A.XorRelayedAddress,
        A.AlternateServer, A.ResponseOrigin, A.OtherAddress, A.ResponseAddress,
        A.ChangedAddress, A.SourceAddress, A.ReflectedFrom,
    )),
    *(st.builds(cls, text) for cls in (A.Username, A.Realm, A.Nonce, A.Software, A.AlternateDomain)),
    st.builds(A.UserHash, st.binary(min_size=32, max_size=32)),
    st.builds(A.MessageIntegrity, st.binary(min_size=20, max_size=20)),
    st.builds(A.MessageIntegritySha256, st.sampled_from([16, 20, 24, 28, 32]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n))),
    st.builds(A.Padding, st.binary(max_size=40)),
    st.builds(A.Password, st.binary(max_size=40)),
    st.builds(A.Data, st.binary(max_size=40)),
    st.builds(A.Fingerprint, u32), st.builds(A.Priority, u32), st.builds(A.UseCandidate),
    st.builds(A.IceControlled, u64), st.builds(A.IceControlling, u64),
    st.builds(A.ChangeRequest, st.booleans(), st.booleans()),
    st.builds(A.ResponsePort, u16), st.builds(A.CacheTimeout, u32),
    st.builds(A.ErrorCode, st.integers(0, 799).filter(lambda c: c % 100 < 100), text),
    st.builds(A.UnknownAttributes, st.lists(u16, max_size=5).map(tuple)),
    st.builds(A.PasswordAlgorithm, u16, st.binary(max_size=9)),
    st.builds(A.PasswordAlgorithms, st.lists(st.tuples(u16, st.binary(max_size=9)), max_size=3).map(tuple)),
    st.builds(A.ChannelNumber, u16), st.builds(A.Lifetime, u32),
    st.builds(A.RequestedAddressFamily, u8), st.builds(A.AdditionalAddressFamily, u8),
    st.builds(A.EvenPort, st.booleans()), st.builds(A.RequestedTransport, u8),
    st.builds(A.DontFragment), st.builds(A.ReservationToken, st.binary(min_size=8, max_size=8)),
    st.builds(A.AddressErrorCode, u8, st.integers(0, 799), text),
    st.builds(A.Icmp, st.integers(0, 127), st.integers(0, 511), u32),
    st.builds(A.ConnectionId, u32),
    st.builds(A.RawAttribute, st.integers(0xC000, 0xFFFF), st.binary(max_size=20)),
)

TRANSACTION_IDS = st.one_of(
    st.binary(min_size=12, max_size=12),
    st.binary(min_size=16, max_size=16).filter(lambda tid: tid[:4] != COOKIE),  # classic
)

MESSAGES = st.builds(
    StunMessage,
    st.integers(0, 0xFFF),
    st.sampled_from(list(StunClass)),
    TRANSACTION_IDS,
    st.lists(ATTRIBUTES, max_size=6).map(tuple),
)


@settings(max_examples=300)
@given(MESSAGES)
def test_message_round_trip(message):
    raw = message.encode()
    assert StunMessage.decode(raw) == message
    assert StunMessage.decode(raw).encode() == raw


def _decode_only_decode_error(data: bytes) -> None:
    """Decoding raises only DecodeError; whatever decodes re-encodes byte for byte."""
    try:
        message = StunMessage.decode(data)
    except DecodeError:
        return
    assert message.encode() == data


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_random_bytes(data):
    _decode_only_decode_error(data)
    assert check_message_integrity(data, b"k") in (True, False)
    assert check_fingerprint(data) in (True, False)


@settings(max_examples=300)
@given(u16, st.binary(min_size=16, max_size=16), st.lists(st.binary(min_size=4, max_size=4), max_size=20))
def test_random_bodies_behind_a_valid_header(message_type, id_part, words):
    """Random attribute areas, so decoding gets past the header checks."""
    body = b"".join(words)
    data = (message_type & 0x3FFF).to_bytes(2, "big") + len(body).to_bytes(2, "big") + id_part + body
    _decode_only_decode_error(data)
    _decode_only_decode_error(data[:4] + COOKIE + data[8:])  # the same with the magic cookie
    try:
        answer_binding(data, ("10.0.0.1", 1))
    except DecodeError:
        pass


@settings(max_examples=200)
@given(MESSAGES, st.data())
def test_mutated_messages(message, data):
    raw = bytearray(encode_message(message.method, message.message_class, message.transaction_id,
                                   message.attributes, integrity_key=b"k", integrity_sha256_key=b"k",
                                   fingerprint=True))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(u8)
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        _decode_only_decode_error(candidate)
        check_message_integrity(candidate, b"k")
        check_message_integrity_sha256(candidate, b"k")
        check_fingerprint(candidate)


@settings(max_examples=200)
@given(st.binary(max_size=200), st.integers(1, 50))
def test_stream_framer_only_decode_error(stream, chunk):
    framer = StreamFramer()
    try:
        for i in range(0, len(stream), chunk):
            for frame in framer.feed(stream[i : i + chunk]):
                assert frame
    except DecodeError:
        pass
