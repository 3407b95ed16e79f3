"""RTP against captured packets: aiortc fixtures, janus-gateway corpus, str0m pcaps, Chromium simulcast."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from realtime.demux import PacketKind, classify
from realtime.errors import DecodeError
from realtime.rtp.extensions import decode_sdes_text
from realtime.rtp.packet import RtpPacket, find_extension, read_header_fields
from realtime.testing.captures import read_capture


def _tshark_field(lines: list[str], label: str) -> str:
    for line in lines:
        match = re.match(rf"\s*{re.escape(label)}: (.*)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"{label} not in tshark decode")


def test_aiortc_fixtures_against_tshark(shared: Path, vectors) -> None:
    decodes = vectors("fixture_tshark_decodes")["files"]
    paths = sorted((shared / "pcaps" / "aiortc").glob("rtp*.bin"))
    assert len(paths) == 6
    for path in paths:
        data = path.read_bytes()
        packet = RtpPacket.decode(data)
        assert packet.encode() == data, path.name
        lines = decodes[f"aiortc/{path.name}"]["tshark_4.0.17_verbose"]
        assert packet.sequence_number == int(_tshark_field(lines, "Sequence number"))
        assert packet.timestamp == int(_tshark_field(lines, "Timestamp"))
        assert f"0x{packet.ssrc:08x}" in _tshark_field(lines, "Synchronization Source identifier")
        assert f"({packet.payload_type})" in _tshark_field(lines, "Payload type")
        if packet.padding:
            assert packet.padding_size == int(_tshark_field(lines, "Padding count"))


def test_aiortc_csrc_and_mid(shared: Path) -> None:
    mid = RtpPacket.decode((shared / "pcaps/aiortc/rtp_with_sdes_mid.bin").read_bytes())
    assert decode_sdes_text(mid.extension_value(9)) == "0"
    csrc = RtpPacket.decode((shared / "pcaps/aiortc/rtp_with_csrc.bin").read_bytes())
    assert len(csrc.csrc) > 0


def test_janus_rtp_corpus(shared: Path) -> None:
    """Every input decodes and re-encodes byte-exactly or raises DecodeError."""
    paths = sorted(p for p in (shared / "pcaps/janus-gateway/rtp_fuzzer").rglob("*") if p.is_file())
    outcome = {"round_trip": 0, "rejected": 0}
    for path in paths:
        data = path.read_bytes()
        try:
            packet = RtpPacket.decode(data)
            packet.header_extensions
        except DecodeError:
            outcome["rejected"] += 1
            continue
        assert packet.encode() == data, path
        outcome["round_trip"] += 1
    assert outcome == {"round_trip": 7, "rejected": 1}  # rtp-7 has version 3


@pytest.mark.parametrize("name", ["h264.pcap", "vp8.pcap", "vp9.pcap"])
def test_str0m_captures_round_trip(shared: Path, name: str) -> None:
    count = 0
    for record in read_capture(shared / "pcaps/str0m" / name):
        if record.transport != "udp" or classify(record.payload) is not PacketKind.RTP:
            continue
        packet = RtpPacket.decode(record.payload)
        assert packet.encode() == record.payload
        assert packet.extension_profile == 0xBEDE
        for element in packet.header_extensions:
            assert find_extension(record.payload, element.id) == element.value
        assert read_header_fields(record.payload)[1] == packet.sequence_number
        count += 1
    assert count > 50


def test_chromium_simulcast_rid_and_mid(shared: Path) -> None:
    """RID (id 10), repaired RID (id 11) and MID (id 4) read from clear SRTP headers."""
    path = shared / "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.pcap"
    rids: dict[int, set[str]] = defaultdict(set)
    repaired: dict[int, set[str]] = defaultdict(set)
    mids: dict[int, set[str]] = defaultdict(set)
    for record in read_capture(path):
        if record.transport != "udp" or classify(record.payload) is not PacketKind.RTP:
            continue
        data = record.payload
        ssrc = read_header_fields(data)[3]
        for ext_id, table in ((10, rids), (11, repaired), (4, mids)):
            value = find_extension(data, ext_id)
            if value is not None:
                table[ssrc].add(decode_sdes_text(value))
    # The README: rid f = 2103183409, h = 3355126313, q = 2127982897, all on mid 1.
    assert dict(rids) == {2103183409: {"f"}, 3355126313: {"h"}, 2127982897: {"q"}}
    assert sorted(v for values in repaired.values() for v in values) == ["f", "h", "q"]
    assert all(mids[ssrc] == {"1"} for ssrc in rids)
