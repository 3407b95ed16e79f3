"""SCTP packet codec: annotated bytes, captures byte for byte, malformed input, Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.errors import DecodeError
from realtime.sctp.chunks import (
    AbortChunk, CookieEchoChunk, DataChunk, ErrorChunk, ForwardTsnChunk, HeartbeatChunk,
    InitChunk, ReconfigChunk, SackChunk, ShutdownAckChunk, ShutdownChunk,
)
from realtime.sctp.crc32c import sctp_checksum
from realtime.sctp.packet import ChecksumMismatch, SctpPacket, decode_chunks
from realtime.sctp.parameters import (
    AddOutgoingStreamsRequest, CauseCode, ErrorCause, ForwardTsnSupported, HeartbeatInfo,
    OutgoingSsnResetRequest, RawParameter, ReconfigurationResponse, SupportedExtensions,
)
from realtime.testing.captures import read_capture
from tests.sctp.strategies import chunks

DATA_PACKET = bytes.fromhex(
    "1388"      # source port 5000
    "1388"      # destination port 5000
    "0fc0f8a1"  # verification tag
    "3f30fe9c"  # CRC-32C, least significant byte first
    "00"        # chunk type 0: DATA
    "03"        # flags: U=0 B=1 E=1 (a whole, ordered message)
    "0014"      # chunk length 20 = 16 header + 4 user data
    "9a0f13fd"  # TSN
    "0001"      # stream identifier 1
    "0001"      # stream sequence number 1
    "00000033"  # PPID 51: WebRTC String
    "70696e67"  # user data "ping"
)


def test_annotated_data_packet():
    packet = SctpPacket.decode(DATA_PACKET)
    assert packet == SctpPacket(5000, 5000, 0x0FC0F8A1, (
        DataChunk(0x9A0F13FD, 1, 1, 51, b"ping"),))
    assert packet.encode() == DATA_PACKET


INIT_PACKET = bytes.fromhex(
    "13881388" "00000000"  # ports 5000/5000, verification tag 0 (INIT)
    "ae5f854d"             # CRC-32C
    "01" "00" "0056"       # INIT, no flags, length 86 (excludes final padding)
    "24521703"             # initiate tag
    "00020000"             # a_rwnd 131072
    "0100" "0800"          # outbound streams 256, inbound streams 2048
    "3092614b"             # initial TSN
    "c000" "0004"          # Forward-TSN-Supported (RFC 3758), no value
    "8008" "0009" "c00fc18082" "000000"  # Supported Extensions, 5 types + 3 padding
    "8002" "0024" "89992738156ca469abf5a11ac89dc274af07e51ab3fa38045017da1e3390f177"  # RANDOM
    "8004" "0006" "0001" "0000"  # Requested HMAC Algorithm: SHA-1, padded
    "8003" "0006" "80c1"         # Chunk List, the last parameter ...
    "0000"                       # ... whose padding is the chunk's
)


def test_annotated_init_packet_last_parameter_padding():
    packet = SctpPacket.decode(INIT_PACKET)
    (init,) = packet.chunks
    assert isinstance(init, InitChunk) and not init.length_includes_padding
    assert (init.initiate_tag, init.a_rwnd, init.outbound_streams, init.inbound_streams,
            init.initial_tsn) == (0x24521703, 131072, 256, 2048, 0x3092614B)
    assert init.parameters[0] == ForwardTsnSupported()
    assert init.parameters[1] == SupportedExtensions((0xC0, 0x0F, 0xC1, 0x80, 0x82))
    assert init.parameters[4] == RawParameter(0x8003, b"\x80\xc1")
    assert packet.encode() == INIT_PACKET


AIORTC_EXPECTED = {
    "sctp_abort.bin": AbortChunk((ErrorCause(
        CauseCode.PROTOCOL_VIOLATION, b"Expected B-bit for TSN=4ce1f17f, SID=0001, SSN=0000"),)),
    "sctp_cookie_echo.bin": CookieEchoChunk(b"12345678"),
    "sctp_data_padding.bin": DataChunk(0x9A0F13FD, 1, 1, 51, b"M"),
    "sctp_error.bin": ErrorChunk((ErrorCause(CauseCode.INVALID_STREAM_IDENTIFIER,
                                             b"\x30\x39\x00\x00"),)),
    "sctp_forward_tsn.bin": ForwardTsnChunk(1234, ((12, 34),)),
    "sctp_heartbeat.bin": HeartbeatChunk,
    "sctp_reconfig_add_out.bin": ReconfigChunk((AddOutgoingStreamsRequest(0xCA02F630, 16),)),
    "sctp_reconfig_reset_out.bin": ReconfigChunk((OutgoingSsnResetRequest(
        0x8BD80A5B, 0xE48BEC73, 0x8BD80A5E, (1,)),)),
    "sctp_reconfig_response.bin": ReconfigChunk((ReconfigurationResponse(0x91531F54, 1),)),
    "sctp_sack.bin": SackChunk(0x847F5B9D, 128160, ((2, 2), (4, 4)), (0x847F5BA1,)),
    "sctp_shutdown.bin": ShutdownChunk(0xA0B834D8),
    "sctp_shutdown_ack.bin": ShutdownAckChunk(),
}


@pytest.mark.parametrize("name", sorted(AIORTC_EXPECTED))
def test_aiortc_fixtures_decode_and_reencode(shared, name):
    data = (shared / "pcaps" / "aiortc" / name).read_bytes()
    packet = SctpPacket.decode(data)
    expected = AIORTC_EXPECTED[name]
    if isinstance(expected, type):
        assert isinstance(packet.chunks[0], expected)
        assert isinstance(packet.chunks[0].parameters[0], HeartbeatInfo)
    else:
        assert packet.chunks == (expected,)
    assert packet.encode() == data


@pytest.mark.parametrize("name, message", [
    ("sctp_data_truncated.bin", "SCTP chunk truncated: need 4 bytes at offset 4, have 0"),
    ("sctp_data_zero_length.bin", "SCTP chunk length 0 is shorter than its 4-byte header"),
])
def test_aiortc_invalid_fixtures_are_rejected(shared, name, message):
    data = (shared / "pcaps" / "aiortc" / name).read_bytes()
    with pytest.raises(DecodeError) as info:
        SctpPacket.decode(data)
    assert str(info.value) == message


def test_every_capture_packet_round_trips(shared):
    counts = {}
    for name in ("zeek/sctp.pcap", "tcpdump/forces1.pcap"):
        records = [r for r in read_capture(shared / "pcaps" / name) if r.transport == "sctp"]
        for record in records:
            assert SctpPacket.decode(record.payload).encode() == record.payload
        counts[name] = len(records)
    for path in sorted((shared / "pcaps" / "aiortc").glob("sctp_*.bin")):
        data = path.read_bytes()
        if "truncated" in path.name or "zero_length" in path.name:
            continue
        assert SctpPacket.decode(data).encode() == data, path.name
    assert counts == {"zeek/sctp.pcap": 74, "tcpdump/forces1.pcap": 20}


def test_rfc4960_style_init_padding_is_kept(shared):
    """The zeek capture's INIT counts its last parameter's padding in the chunk length."""
    first = next(r for r in read_capture(shared / "pcaps" / "zeek/sctp.pcap"))
    (init,) = SctpPacket.decode(first.payload).chunks
    assert init.length_includes_padding
    assert init.parameters[-1] == RawParameter(12, b"\x00\x05")


def test_adler32_capture_is_rejected_naming_the_checksum(shared):
    records = [r for r in read_capture(shared / "pcaps" / "ndpi/sctp.cap") if r.transport == "sctp"]
    assert len(records) == 4
    for record in records:
        with pytest.raises(ChecksumMismatch, match=r"^SCTP CRC-32C checksum mismatch: "):
            SctpPacket.decode(record.payload)
        SctpPacket.decode(record.payload, verify_checksum=False)  # otherwise well formed


def _seal(body: bytes) -> bytes:
    """Put a correct CRC-32C into a hand-made packet."""
    return body[:8] + sctp_checksum(body) + body[12:]


HEADER = bytes.fromhex("13881388" "00000001" "00000000")

MALFORMED = [
    (b"\x13\x88\x13\x88\0\0\0\0\0\0\0",
     "SCTP packet of 11 bytes is shorter than its 12-byte common header"),
    (HEADER, "SCTP packet has no chunks"),
    (HEADER + bytes.fromhex("0003000c" "00000001"),
     "SCTP chunk truncated: need 8 bytes at offset 4, have 4"),
    (HEADER + bytes.fromhex("00030002"), "SCTP chunk length 2 is shorter than its 4-byte header"),
    (HEADER + bytes.fromhex("0003000c" "00000001" "00010000"),
     "DATA chunk value of 8 bytes is shorter than 12"),
    (HEADER + bytes.fromhex("01000010" "00000001" "00000000" "00010001"),
     "INIT chunk value of 12 bytes is shorter than 16"),
    (HEADER + bytes.fromhex("01000018" "00000001" "00000000" "00010001" "00000000" "c0000002"),
     "INIT parameter length 2 is shorter than its 4-byte header"),
    (HEADER + bytes.fromhex("0200001c" "00000001" "00000000" "00010001" "00000000"
                            "c0000008" "00000000"),
     "Forward-TSN-Supported has a 4-byte value"),
    (HEADER + bytes.fromhex("0300000c" "00000001" "00000000"),
     "SACK chunk value of 8 bytes is shorter than 12"),
    (HEADER + bytes.fromhex("03000010" "00000001" "00000000" "00010000"),
     "SACK chunk value of 12 bytes does not hold 1 gap blocks and 0 duplicate TSNs"),
    (HEADER + bytes.fromhex("0700000c" "00000001" "00000000"),
     "SHUTDOWN chunk value of 8 bytes is not 4"),
    (HEADER + bytes.fromhex("08000008" "00000000"), "SHUTDOWN ACK chunk value of 4 bytes is not 0"),
    (HEADER + bytes.fromhex("0b000008" "00000000"), "COOKIE ACK chunk value of 4 bytes is not 0"),
    (HEADER + bytes.fromhex("0e000008" "00000000"),
     "SHUTDOWN COMPLETE chunk value of 4 bytes is not 0"),
    (HEADER + bytes.fromhex("c000000a" "00000001" "0001"),
     "FORWARD TSN chunk value of 6 bytes is not 4 + 4n"),
    (HEADER + bytes.fromhex("06000008" "000d0010"),
     "SCTP error cause truncated: need 12 bytes at offset 4, have 0"),
    (HEADER + bytes.fromhex("82000010" "000d000c" "00000001" "00000002"),
     "Outgoing SSN Reset Request value of 8 bytes is too short"),
    (HEADER + bytes.fromhex("82000017" "000d0013" "00000001" "00000002" "00000003" "000100"
                            "00"),
     "Outgoing SSN Reset Request has an odd-length stream list"),
    (HEADER + bytes.fromhex("8200000a" "000e0006" "0000" "0000"),
     "Incoming SSN Reset Request value of 2 bytes is too short"),
    (HEADER + bytes.fromhex("82000014" "00100010" "00000001" "00000001" "00000000"),
     "Re-configuration Response value of 12 bytes is not 8 or 16"),
    (HEADER + bytes.fromhex("8200000e" "0011000a" "00000001" "0001" "0000"),
     "Add Streams Request value of 6 bytes is not 8"),
]


@pytest.mark.parametrize("data, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_packets(data, message):
    with pytest.raises(DecodeError) as info:
        SctpPacket.decode(_seal(data) if len(data) >= 12 else data)
    assert str(info.value) == message


def test_bad_checksum_message():
    data = bytearray(DATA_PACKET)
    data[-1] ^= 1
    with pytest.raises(ChecksumMismatch) as info:
        SctpPacket.decode(bytes(data))
    assert str(info.value).startswith("SCTP CRC-32C checksum mismatch: packet says 3f30fe9c, ")


def test_missing_final_chunk_padding_is_tolerated():
    body = HEADER + bytes.fromhex("00030011" "00000001" "00010000" "00000035") + b"M"
    packet = SctpPacket.decode(_seal(body))
    assert packet.chunks == (DataChunk(1, 1, 0, 53, b"M"),)
    assert packet.encode() == _seal(body + b"\0\0\0")


@settings(max_examples=300)
@given(st.lists(chunks, min_size=1, max_size=4), st.integers(0, 0xFFFFFFFF))
def test_round_trip(chunk_list, tag):
    packet = SctpPacket(5000, 5000, tag, tuple(chunk_list))
    data = packet.encode()
    assert SctpPacket.decode(data) == packet
    assert SctpPacket.decode(data).encode() == data


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_hostile_bytes_raise_only_decode_error(data):
    try:
        SctpPacket.decode(data, verify_checksum=False)
    except DecodeError:
        pass
    try:
        decode_chunks(data)
    except DecodeError:
        pass


@settings(max_examples=300)
@given(st.lists(chunks, min_size=1, max_size=3), st.data())
def test_mutated_packets_raise_only_decode_error(chunk_list, data):
    raw = bytearray(SctpPacket(1, 2, 3, tuple(chunk_list)).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(12, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(12, len(raw)))
    try:
        SctpPacket.decode(bytes(raw[:cut]), verify_checksum=False)
    except DecodeError:
        pass
