"""Capture tests, tiers 1 and 2, over every capture in ../shared/pcaps.

Tier 1: every UDP payload is classified (RFC 7983); the counts per kind are
pinned and printed.  Tier 2: every STUN message in the captures decodes and
re-encodes byte for byte -- UDP payloads, messages framed in TCP streams
(TURN over TCP, RFC 6062), messages carried inside TURN ChannelData and
Send/Data indications, and the aioice ``*.bin`` files.

A UDP payload whose first byte says STUN but whose header length does not
frame the datagram (relayed application data, RTP on odd ports) is not a
STUN message; those are counted too, so a decoder that starts rejecting
real messages cannot hide among them.
"""

from __future__ import annotations

from collections import Counter

import pytest

from realtime.demux import PacketKind, classify
from realtime.errors import DecodeError
from realtime.stun.attributes import Data
from realtime.stun.message import StunMessage, is_stun
from realtime.stun.stream import split_stream
from realtime.testing.captures import capture_files, read_capture, tcp_streams

UDP_KINDS = {
    "CHANNEL_DATA": 7665, "RTP": 7201, "STUN": 2106, "DTLS": 871,
    "UNKNOWN": 342, "RTCP": 307, "ZRTP": 113,
}
STUN_COUNTS = {
    "udp": 1848,            # UDP payloads that frame as one STUN message
    "udp_not_stun": 258,    # first byte 0-3 but the length does not frame the datagram
    "tcp": 412,             # messages framed in TCP streams
    "channel_data": 568,    # STUN inside ChannelData, UDP and TCP (ICE through TURN)
    "data_attribute": 235,  # STUN inside the DATA attribute of Send/Data indications
    "aioice_bin": 4,
}


@pytest.fixture(scope="module")
def captures(shared):
    files = capture_files(shared / "pcaps")
    assert len(files) >= 70
    return {path: list(read_capture(path)) for path in files}


def round_trip(payload: bytes) -> StunMessage:
    message = StunMessage.decode(payload)
    assert message.encode() == payload
    return message


def inner_stun(message: StunMessage, counts: Counter) -> None:
    for attribute in message.attributes:
        if isinstance(attribute, Data) and is_stun(attribute.value):
            round_trip(attribute.value)
            counts["data_attribute"] += 1


def channel_data_stun(payload: bytes, counts: Counter) -> None:
    inner = payload[4 : 4 + int.from_bytes(payload[2:4], "big")]
    if is_stun(inner):
        round_trip(inner)
        counts["channel_data"] += 1


def test_tier1_every_udp_payload_is_classified(captures):
    kinds = Counter()
    for records in captures.values():
        for record in records:
            if record.transport == "udp":
                kinds[classify(record.payload).name] += 1
    print("\nUDP payloads per kind:", dict(kinds.most_common()))
    assert dict(kinds) == UDP_KINDS


def test_tier2_every_stun_message_round_trips(captures, shared):
    counts = Counter()
    for records in captures.values():
        for record in records:
            payload = record.payload
            if record.transport != "udp":
                continue
            kind = classify(payload)
            if kind is PacketKind.STUN:
                if int.from_bytes(payload[2:4], "big") != len(payload) - 20:
                    counts["udp_not_stun"] += 1
                    with pytest.raises(DecodeError):
                        StunMessage.decode(payload)
                    continue
                inner_stun(round_trip(payload), counts)
                counts["udp"] += 1
            elif kind is PacketKind.CHANNEL_DATA:
                channel_data_stun(payload, counts)
        for stream in tcp_streams(records).values():
            if not is_stun(stream[: 20 + int.from_bytes(stream[2:4], "big")]):
                continue
            frames, _ = split_stream(stream)
            for frame in frames:
                if classify(frame) is PacketKind.STUN and is_stun(frame):
                    inner_stun(round_trip(frame), counts)
                    counts["tcp"] += 1
                elif 0x40 <= frame[0] <= 0x7F:
                    channel_data_stun(frame, counts)
    for path in sorted((shared / "pcaps" / "aioice").glob("*.bin")):
        round_trip(path.read_bytes())
        counts["aioice_bin"] += 1
    print("\nSTUN messages round-tripped:", dict(counts))
    assert dict(counts) == STUN_COUNTS
