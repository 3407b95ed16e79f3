"""transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError
from realtime.rtcp import RunLengthChunk, StatusVectorChunk, TransportFeedback, decode_compound
from realtime.rtcp.transport_cc import decode_chunk

TWCC = bytes.fromhex(
    "8f"  # V=2, P=0, FMT=15 (transport-cc)
    "cd"  # PT=205 (RTPFB)
    "0006"  # length 6 words
    "00000001"  # SSRC of packet sender
    "00000002"  # SSRC of media source
    "0064"  # base sequence number 100
    "0004"  # packet status count 4
    "fffffe"  # reference time -2 (x 64 ms, signed 24 bits)
    "07"  # feedback packet count 7
    "d900"  # status vector, 2-bit: 01 10 01 00 00 00 00 -> small, large, small, lost (+ 3 unused)
    "04"  # recv delta of 100: 4 x 250 us (small, 1 byte)
    "fffc"  # recv delta of 101: -4 x 250 us (large, 2 signed bytes)
    "08"  # recv delta of 102: 8 x 250 us
    "0000"  # zero padding to 32 bits
)


def test_annotated() -> None:
    feedback = TransportFeedback.decode(TWCC)
    assert feedback == TransportFeedback(
        1, 2, 100, 4, -2, 7, (StatusVectorChunk(2, (1, 2, 1, 0, 0, 0, 0)),), (4, -4, 8)
    )
    assert feedback.statuses() == [1, 2, 1, 0]
    base = -2 * 64_000
    assert feedback.packet_results() == [
        (100, base + 1000), (101, base), (102, base + 2000), (103, None)
    ]
    assert feedback.encode() == TWCC
    assert TransportFeedback.build(1, 2, 100, -2, 7, [4, -4, 8, None]).encode() == TWCC


def test_chunk_words() -> None:
    assert decode_chunk(0x2005) == RunLengthChunk(1, 5)  # T=0, S=01, run 5
    assert decode_chunk(0xA000) == StatusVectorChunk(1, (1,) + (0,) * 13)  # T=1, S=0
    assert RunLengthChunk(2, 0x1FFF).encode() == 0x5FFF
    assert StatusVectorChunk(1, (0,) * 13 + (1,)).encode() == 0x8001


def test_build_chooses_run_length_and_vectors() -> None:
    deltas = [1] * 20 + [None, 3, 300] + [None] * 3
    feedback = TransportFeedback.build(1, 2, 65530, 0, 0, deltas)
    assert feedback.chunks[0] == RunLengthChunk(1, 20)
    assert isinstance(feedback.chunks[1], StatusVectorChunk) and feedback.chunks[1].symbol_size == 2
    assert [r[0] for r in feedback.packet_results()][-1] == (65530 + 25) & 0xFFFF
    assert TransportFeedback.decode(feedback.encode()) == feedback


def test_janus_seed_with_large_zero_delta(shared) -> None:
    data = (shared / "pcaps/janus-gateway/rtcp_fuzzer/1meetecho/twcc-feedback.rtcp").read_bytes()
    (feedback,) = decode_compound(data)
    assert isinstance(feedback, TransportFeedback)
    assert feedback.base_sequence_number == 0x0A74 and feedback.packet_status_count == 10
    assert feedback.encode() == data


@pytest.mark.parametrize(
    ("fci_hex", "message"),
    [
        ("0064000100000000", "transport-cc packet chunk truncated: need 2 bytes at offset 16, have 0"),
        ("00640001000000002001" "0507", "transport-cc has 1 trailing bytes after the deltas"),
        ("00640001000000002001" "05" "0000000000", "transport-cc has 5 trailing bytes after the deltas"),
        ("00640001000000006001", "transport-cc status symbol 3 is reserved"),
        ("00640002000000004002" "0001", "transport-cc recv delta truncated: need 2 bytes at offset 20, have 0"),
    ],
)
def test_malformed(fci_hex: str, message: str) -> None:
    body = bytes.fromhex("00000001" "00000002" + fci_hex)
    body += bytes(-len(body) % 4)
    data = bytes([0x8F, 205]) + (len(body) // 4).to_bytes(2, "big") + body
    with pytest.raises(DecodeError) as info:
        decode_compound(data)
    assert str(info.value) == message


deltas = st.lists(st.none() | st.integers(0, 255) | st.integers(-0x8000, 0x7FFF), max_size=60)


@settings(max_examples=200)
@given(st.integers(0, 0xFFFF), st.integers(-(1 << 23), (1 << 23) - 1), deltas)
def test_round_trip(base: int, reference: int, per_packet: list[int | None]) -> None:
    feedback = TransportFeedback.build(3, 4, base, reference, 9, per_packet)
    assert TransportFeedback.decode(feedback.encode()) == feedback
    received = [d for d in per_packet if d is not None]
    assert len(feedback.recv_deltas) == len(received)
    assert [r[1] is None for r in feedback.packet_results()] == [d is None for d in per_packet]
