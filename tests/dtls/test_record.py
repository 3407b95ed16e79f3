"""Tests for realtime.dtls.record: RFC 6347 §4.1 record and §4.2.2 handshake headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.demux import PacketKind, classify
from realtime.dtls.record import (
    CiphertextRecord,
    ContentType,
    HandshakeFragment,
    HandshakeType,
    Record,
    encode_records,
    is_client_hello,
    pack_datagrams,
    parse_handshake,
    parse_records,
)
from realtime.errors import DecodeError, LocalProtocolError, Truncated
from realtime.testing.captures import read_capture

# A HelloVerifyRequest datagram as a DTLS 1.2 server sends it (RFC 6347 §4.2.1).
HELLO_VERIFY_REQUEST = bytes.fromhex(
    "16"  # content type: handshake (22)
    "feff"  # record version: DTLS 1.0, as RFC 6347 §4.2.1 recommends for HVR
    "0000"  # epoch 0
    "000000000000"  # sequence number 0 (48 bits)
    "0017"  # length 23
    "03"  # msg_type: hello_verify_request
    "00000b"  # length 11
    "0000"  # message_seq 0
    "000000"  # fragment_offset 0
    "00000b"  # fragment_length 11
    "fefd"  # server_version: DTLS 1.2
    "08"  # cookie length 8
    "0102030405060708"  # cookie
)


def test_hello_verify_request_fields():
    (record,) = parse_records(HELLO_VERIFY_REQUEST)
    assert record == Record(ContentType.HANDSHAKE, 0xFEFF, 0, 0, HELLO_VERIFY_REQUEST[13:])
    (message,) = record.handshake_fragments()
    assert message.msg_type == HandshakeType.HELLO_VERIFY_REQUEST
    assert (message.length, message.message_seq, message.fragment_offset) == (11, 0, 0)
    assert message.fragment_length == 11 and message.is_complete
    assert message.body == bytes.fromhex("fefd080102030405060708")
    assert record.encode() == HELLO_VERIFY_REQUEST
    assert not is_client_hello(HELLO_VERIFY_REQUEST)


def test_two_records_in_one_datagram_and_large_sequence_number():
    second = Record(ContentType.APPLICATION_DATA, 0xFEFD, 1, 0x0000_1234_5678_9ABC, b"x" * 5)
    encoded = second.encode()
    assert encoded[:13] == bytes.fromhex(
        "17"  # application_data
        "fefd"  # DTLS 1.2
        "0001"  # epoch 1
        "123456789abc"  # sequence number
        "0005"  # length
    )
    datagram = HELLO_VERIFY_REQUEST + encoded
    records = parse_records(datagram)
    assert records[1] == second
    assert encode_records(records) == datagram


def test_fragmented_certificate_message():
    fragment = HandshakeFragment(HandshakeType.CERTIFICATE, 1000, 2, 400, b"\xaa" * 300)
    assert not fragment.is_complete
    assert fragment.encode()[:12] == bytes.fromhex("0b0003e8" "0002" "000190" "00012c")
    assert HandshakeFragment.decode(fragment.encode()) == fragment


def test_client_hello_quick_check():
    hello = Record(22, 0xFEFD, 0, 0, HandshakeFragment(1, 2, 0, 0, b"\xfe\xfd").encode())
    assert is_client_hello(hello.encode())
    assert not is_client_hello(Record(22, 0xFEFD, 1, 0, hello.fragment).encode())
    assert not is_client_hello(b"\x16")


def test_unified_header_records():
    # RFC 9147 §4: 0b001_0_1_1_10 = no CID, 16-bit seq, length present, epoch bits 2
    short = bytes([0x2E]) + b"\x12\x34" + b"\x00\x03" + b"abc"
    with_cid = bytes([0x30]) + b"anything goes here"
    records = parse_records(short + with_cid)
    assert records == (
        CiphertextRecord(short[:5], b"abc"),
        CiphertextRecord(b"\x30", b"anything goes here"),
    )
    assert records[0].flags == 0x2E
    # No length bit: the record runs to the end of the datagram.
    assert parse_records(b"\x20\x07zz") == (CiphertextRecord(b"\x20\x07", b"zz"),)


@pytest.mark.parametrize(
    "data, error, message",
    [
        (b"", DecodeError, "DTLS datagram is empty"),
        (b"\x16\xfe\xfd", Truncated, "DTLS record truncated: need 2 bytes at offset 3, have 0"),
        (
            HELLO_VERIFY_REQUEST[:-1],
            Truncated,
            "DTLS record truncated: need 23 bytes at offset 13, have 22",
        ),
        (b"\x40" + bytes(12), DecodeError, "DTLS record content type 64 is not in 20..31"),
        (
            b"\x17\xfe\xfd" + bytes(8) + b"\x48\x01",
            DecodeError,
            "DTLS record length 18433 exceeds 18432",
        ),
        (  # 0x2c = 001 0 1 1 00: 16-bit sequence number, length present
            b"\x2c\x00\x00\x00\x05",
            Truncated,
            "DTLS record truncated: need 5 bytes at offset 5, have 0",
        ),
    ],
)
def test_malformed_records(data, error, message):
    with pytest.raises(error) as caught:
        parse_records(data)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "data, message",
    [
        (
            bytes.fromhex("01000010" "0000" "000008" "000009"),
            "DTLS handshake fragment 8+9 overruns message length 16",
        ),
        (
            bytes.fromhex("01000010" "0000" "000000" "000004") + b"ab",
            "DTLS handshake truncated: need 4 bytes at offset 12, have 2",
        ),
        (bytes.fromhex("0100"), "DTLS handshake truncated: need 3 bytes at offset 1, have 1"),
    ],
)
def test_malformed_handshake(data, message):
    with pytest.raises(DecodeError) as caught:
        parse_handshake(data)
    assert str(caught.value) == message


def test_handshake_fragments_only_in_plaintext_handshake_records():
    with pytest.raises(DecodeError, match="content type 23 is not a handshake"):
        Record(23, 0xFEFD, 0, 0, b"").handshake_fragments()
    with pytest.raises(DecodeError, match="in epoch 1 is encrypted"):
        Record(22, 0xFEFD, 1, 0, b"").handshake_fragments()
    with pytest.raises(DecodeError, match="has 1 trailing bytes"):
        Record.decode(HELLO_VERIFY_REQUEST + b"\x00")
    with pytest.raises(LocalProtocolError):
        Record(23, 0xFEFD, 0, 0, bytes(2**14 + 2049)).encode()


def test_pack_datagrams_keeps_records_whole():
    records = [Record(23, 0xFEFD, 1, n, bytes(500)).encode() for n in range(5)]
    datagrams = pack_datagrams(b"".join(records), 1200)
    assert [len(d) for d in datagrams] == [1026, 1026, 513]
    assert b"".join(datagrams) == b"".join(records)
    assert pack_datagrams(records[0], 100) == [records[0]]  # too big: alone


records_strategy = st.builds(
    Record,
    content_type=st.integers(20, 31),
    version=st.integers(0, 0xFFFF),
    epoch=st.integers(0, 0xFFFF),
    sequence_number=st.integers(0, 2**48 - 1),
    fragment=st.binary(max_size=64),
)
fragments_strategy = st.builds(
    lambda t, seq, off, body, extra: HandshakeFragment(t, off + len(body) + extra, seq, off, body),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 1000),
    st.binary(max_size=64),
    st.integers(0, 1000),
)


@given(st.lists(records_strategy, min_size=1, max_size=4))
def test_records_round_trip(records):
    assert parse_records(encode_records(records)) == tuple(records)


@given(fragments_strategy)
def test_handshake_round_trip(fragment):
    assert HandshakeFragment.decode(fragment.encode()) == fragment


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_only_decode_error(data):
    try:
        records = parse_records(data)
    except DecodeError:
        return
    assert encode_records(records) == data
    for record in records:
        if isinstance(record, Record) and record.content_type == 22 and record.epoch == 0:
            try:
                record.handshake_fragments()
            except DecodeError:
                pass


CAPTURES = [
    "pion-dtls/capture-chrome-Chromium_123.0.6312.0_.pcap",
    "pion-dtls/capture-firefox-Mozilla_Firefox_125.0.pcap",
    "ndpi/dtls.pcap",
    "ndpi/dtls2.pcap",
    "ndpi/dtls_certificate.pcapng",
    "ndpi/dtls_certificate_fragments.pcap",
    "ndpi/dtls_mid_sessions.pcapng",
    "ndpi/dtls_old_version.pcapng",
    "ndpi/dtls_session_id_and_coockie_both.pcap",
    "ndpi/stun_dtls_rtp.pcapng",
    "ndpi/stun_dtls_unidirectional_client.pcap",
    "ndpi/stun_dtls_unidirectional_server.pcap",
    "zeek/dtls1_2.pcap",
    "wireshark/dtls12-aes128ccm8.pcap",
]

# capture -> (DTLS datagrams, plaintext handshake records), counted once by hand with tshark
EXPECTED_COUNTS = {
    "pion-dtls/capture-chrome-Chromium_123.0.6312.0_.pcap": (5, 11),
    "pion-dtls/capture-firefox-Mozilla_Firefox_125.0.pcap": (4, 9),
    "ndpi/dtls_certificate_fragments.pcap": (26, 30),
}


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_records_parse_and_round_trip(shared: Path, name: str):
    datagrams = handshakes = 0
    for capture in read_capture(shared / "pcaps" / name):
        if capture.transport != "udp" or classify(capture.payload) is not PacketKind.DTLS:
            continue
        datagrams += 1
        records = parse_records(capture.payload)
        assert encode_records(records) == capture.payload
        for record in records:
            if isinstance(record, Record) and record.content_type == 22 and record.epoch == 0:
                fragments = record.handshake_fragments()
                assert b"".join(f.encode() for f in fragments) == record.fragment
                handshakes += 1
    assert datagrams > 0
    if name in EXPECTED_COUNTS:
        assert (datagrams, handshakes) == EXPECTED_COUNTS[name]


def test_browser_client_hellos_offer_use_srtp(shared: Path):
    """Chrome and Firefox ClientHellos carry use_srtp (extension 14, RFC 5764 §4.1.1)."""
    for name in CAPTURES[:2]:
        hellos = []
        for capture in read_capture(shared / "pcaps" / name):
            if is_client_hello(capture.payload):
                (record, *_) = parse_records(capture.payload)
                hellos += [f for f in record.handshake_fragments() if f.is_complete]
        assert hellos, name
        assert all(b"\x00\x0e" in hello.body for hello in hellos)
