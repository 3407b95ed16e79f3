"""RTCP against captured packets: aiortc fixtures (checked with Wireshark's decodes) and the janus-gateway corpus."""

from __future__ import annotations

from pathlib import Path

from realtime.errors import DecodeError
from realtime.rtcp import (
    GenericNack,
    Goodbye,
    PictureLossIndication,
    RawRtcpPacket,
    ReceiverEstimatedMaxBitrate,
    ReceiverReport,
    SdesItemType,
    SenderReport,
    SourceDescription,
    TransportFeedback,
    decode_compound,
    encode_compound,
)


def _fixture(shared: Path, name: str) -> bytes:
    return (shared / "pcaps/aiortc" / name).read_bytes()


def test_aiortc_fixtures_split_valid_and_invalid(shared: Path, vectors) -> None:
    decodes = vectors("fixture_tshark_decodes")["files"]
    paths = sorted((shared / "pcaps/aiortc").glob("rtcp*.bin"))
    assert len(paths) == 15
    for path in paths:
        data = path.read_bytes()
        assert decodes[f"aiortc/{path.name}"]["hex"] == data.hex()
        if "invalid" in path.name or "truncated" in path.name:
            try:
                decode_compound(data)
            except DecodeError:
                continue
            raise AssertionError(f"{path.name} decoded")
        assert encode_compound(decode_compound(data)) == data, path.name


def test_aiortc_fields_match_wireshark(shared: Path) -> None:
    (sr,) = decode_compound(_fixture(shared, "rtcp_sr.bin"))
    assert isinstance(sr, SenderReport)
    # Wireshark: MSW 3729147739, LSW 354025564, RTP ts 1722342718, 269 packets, 13557 octets
    assert sr.ntp_timestamp == 3729147739 << 32 | 354025564
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (1722342718, 269, 13557)
    assert (sr.reports[0].ssrc, sr.reports[0].highest_sequence, sr.reports[0].jitter) == (0x8EF891ED, 246, 127)

    (rr,) = decode_compound(_fixture(shared, "rtcp_rr.bin"))
    assert isinstance(rr, ReceiverReport) and rr.ssrc == 0x30B68407
    assert (rr.reports[0].ssrc, rr.reports[0].highest_sequence, rr.reports[0].jitter) == (0x479437AF, 630, 1906)

    (sdes,) = decode_compound(_fixture(shared, "rtcp_sdes.bin"))
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].ssrc == 0x6D2453EA
    assert sdes.chunks[0].get(SdesItemType.CNAME) == b"{63f459ea-41fe-4474-9d33-9707c9ee79d1}"

    (bye,) = decode_compound(_fixture(shared, "rtcp_bye.bin"))
    assert bye == Goodbye((0xAE528B43,))
    assert decode_compound(_fixture(shared, "rtcp_bye_no_sources.bin")) == (Goodbye(),)
    (padded,) = decode_compound(_fixture(shared, "rtcp_bye_padding.bin"))
    assert padded == Goodbye(padding=b"\x04\x04\x04\x04")

    (pli,) = decode_compound(_fixture(shared, "rtcp_psfb_pli.bin"))
    assert pli == PictureLossIndication(0x54506265, 0x23013FB9)

    (nack,) = decode_compound(_fixture(shared, "rtcp_rtpfb.bin"))
    assert isinstance(nack, GenericNack)
    assert (nack.sender_ssrc, nack.media_ssrc) == (0x8B4477BB, 0xF71DEEE4)
    # Wireshark: PID 12 BLP 0; PID 32 BLP 0x0040 (39 also lost); ...; PID 110 BLP 0x1000 (123)
    assert nack.lost_sequence_numbers()[:5] == [12, 32, 39, 54, 76]
    assert 123 in nack.lost_sequence_numbers()


def test_janus_rtcp_corpus(shared: Path) -> None:
    """Each seed decodes and re-encodes byte-exactly or raises DecodeError -- never anything else."""
    root = shared / "pcaps/janus-gateway/rtcp_fuzzer"
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "LICENSE")
    round_trip, rejected = 0, 0
    kinds: set[str] = set()
    for path in paths:
        data = path.read_bytes()
        try:
            packets = decode_compound(data)
        except DecodeError:
            rejected += 1
            continue
        assert encode_compound(packets) == data, path
        kinds.update(type(p).__name__ for p in packets)
        round_trip += 1
    assert (round_trip, rejected) == (64, 13)
    for cls in (SenderReport, ReceiverReport, SourceDescription, Goodbye, GenericNack,
                PictureLossIndication, ReceiverEstimatedMaxBitrate, TransportFeedback, RawRtcpPacket):
        assert cls.__name__ in kinds


def test_janus_named_seeds(shared: Path) -> None:
    root = shared / "pcaps/janus-gateway/rtcp_fuzzer/1meetecho"
    rr, remb = decode_compound((root / "rr-remb.rtcp").read_bytes())
    assert isinstance(rr, ReceiverReport) and isinstance(remb, ReceiverEstimatedMaxBitrate)
    assert remb.ssrcs == (0xF2892C59,) and remb.bitrate == 174484 << 4  # word 0x12a994: exp 4, mantissa 0x2a994
    types = [type(p) for p in decode_compound((root / "rr-sdes-bye.rtcp").read_bytes())]
    assert types == [ReceiverReport, SourceDescription, Goodbye]
