"""RTCP compound decoding, annotated packets and malformed input (RFC 3550 §6, RFC 4585, RFC 5104)."""

from __future__ import annotations

import pytest

from realtime.errors import DecodeError, LocalProtocolError
from realtime.rtcp import (
    FirEntry,
    FullIntraRequest,
    GenericNack,
    Goodbye,
    NackItem,
    PictureLossIndication,
    RawRtcpPacket,
    ReceiverEstimatedMaxBitrate,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SdesItem,
    SdesItemType,
    SenderReport,
    SourceDescription,
    decode_compound,
    encode_compound,
    is_reduced_size,
    nack_items,
)

SR = bytes.fromhex(
    "81"  # V=2, P=0, RC=1
    "c8"  # PT=200 (SR)
    "000c"  # length 12 words (52 bytes)
    "6d2453ea"  # SSRC of sender
    "de46475b"  # NTP timestamp, most significant word
    "151a005c"  # NTP timestamp, least significant word
    "66a8dd3e"  # RTP timestamp 1722342718
    "0000010d"  # sender's packet count 269
    "000034f5"  # sender's octet count 13557
    "8ef891ed"  # report block 1: SSRC_1
    "00"  # fraction lost 0
    "000000"  # cumulative lost 0
    "000000f6"  # extended highest sequence 246
    "0000007f"  # interarrival jitter 127
    "00000000"  # LSR
    "00000000"  # DLSR
)


def test_sender_report_annotated() -> None:
    assert SenderReport.decode(SR) == SenderReport(
        ssrc=0x6D2453EA,
        ntp_timestamp=0xDE46475B151A005C,
        rtp_timestamp=1722342718,
        packet_count=269,
        octet_count=13557,
        reports=(ReportBlock(0x8EF891ED, 0, 0, 246, 127, 0, 0),),
    )
    assert SenderReport.decode(SR).encode() == SR


def test_negative_cumulative_loss() -> None:
    block = ReportBlock(1, 0, -1, 0, 0, 0, 0)
    assert block.encode()[5:8] == b"\xff\xff\xff"
    rr = ReceiverReport(9, (block,))
    assert ReceiverReport.decode(rr.encode()) == rr
    with pytest.raises(LocalProtocolError):
        ReportBlock(1, 0, 1 << 23, 0, 0, 0, 0).encode()


NACK = bytes.fromhex(
    "81"  # V=2, P=0, FMT=1 (generic NACK)
    "cd"  # PT=205 (RTPFB)
    "0003"  # length 3 words
    "00000001"  # SSRC of packet sender
    "00000002"  # SSRC of media source
    "fffe"  # PID 65534
    "0005"  # BLP bits 0 and 2: 65535 and 1 lost too
)


def test_generic_nack_annotated() -> None:
    nack = GenericNack.decode(NACK)
    assert nack == GenericNack(1, 2, (NackItem(0xFFFE, 0b101),))
    assert nack.lost_sequence_numbers() == [65534, 65535, 1]
    assert GenericNack.from_lost(1, 2, [65534, 65535, 1]).encode() == NACK


def test_nack_items_minimal() -> None:
    assert nack_items([]) == ()
    assert nack_items([5, 6, 21, 23, 5]) == (NackItem(5, 1 | 1 << 15), NackItem(23, 0))
    assert nack_items([65535, 0]) == (NackItem(65535, 1),)  # across the wrap
    seqs = [100, 101, 150, 151, 152, 200]
    items = nack_items(seqs)
    assert [s for item in items for s in item.sequence_numbers()] == seqs
    assert len(items) == 3


PLI = bytes.fromhex(
    "81"  # V=2, P=0, FMT=1 (PLI)
    "ce"  # PT=206 (PSFB)
    "0002"  # length 2 words
    "54506265"  # SSRC of packet sender
    "23013fb9"  # SSRC of media source
)


def test_pli_annotated() -> None:
    assert PictureLossIndication.decode(PLI) == PictureLossIndication(0x54506265, 0x23013FB9)
    assert PictureLossIndication(0x54506265, 0x23013FB9).encode() == PLI


FIR = bytes.fromhex(
    "84"  # V=2, P=0, FMT=4 (FIR)
    "ce"  # PT=206 (PSFB)
    "0004"  # length 4 words
    "8c08a05d"  # SSRC of packet sender
    "f310a866"  # SSRC of media source (unused by FIR)
    "f310a866"  # FCI: SSRC to refresh
    "0a"  # command sequence number 10
    "000000"  # reserved
)


def test_fir_annotated() -> None:
    fir = FullIntraRequest.decode(FIR)
    assert fir == FullIntraRequest(0x8C08A05D, 0xF310A866, (FirEntry(0xF310A866, 10),))
    assert fir.encode() == FIR


REMB = bytes.fromhex(
    "8f"  # V=2, P=0, FMT=15 (application layer feedback)
    "ce"  # PT=206 (PSFB)
    "0005"  # length 5 words
    "8c08a05d"  # SSRC of packet sender
    "00000000"  # SSRC of media source, always 0
    "52454d42"  # unique identifier "REMB"
    "01"  # Num SSRC = 1
    "01f400"  # BR Exp = 0 (6 bits), BR Mantissa = 0x1f400 = 128000
    "f310a866"  # SSRC feedback
)


def test_remb_annotated() -> None:
    remb = ReceiverEstimatedMaxBitrate.decode(REMB)
    assert remb == ReceiverEstimatedMaxBitrate(0x8C08A05D, 0, 128000, (0xF310A866,))
    assert remb.bitrate == 128000
    assert ReceiverEstimatedMaxBitrate.from_bitrate(0x8C08A05D, 128000, [0xF310A866]).encode() == REMB
    big = ReceiverEstimatedMaxBitrate.from_bitrate(1, 10_000_000, [])
    assert big.bitrate_mantissa <= 0x3FFFF and abs(big.bitrate - 10_000_000) < 1 << big.bitrate_exponent


def test_other_afb_and_unknown_types_kept_raw() -> None:
    afb = bytes.fromhex("8fce0003" "00000001" "00000000" "41424344")  # not "REMB"
    xr = bytes.fromhex("80cf0001" "12345678")
    app = bytes.fromhex("a1cc0003" "12345678" "6e616d65" "00000004")  # APP with padding
    packets = decode_compound(afb + xr + app)
    assert packets == (
        RawRtcpPacket(206, 15, afb[4:]),
        RawRtcpPacket(207, 0, xr[4:]),
        RawRtcpPacket(204, 1, app[4:12], b"\x00\x00\x00\x04"),
    )
    assert encode_compound(packets) == afb + xr + app


def test_compound_sr_sdes_bye() -> None:
    sdes = SourceDescription.with_cname(0x6D2453EA, "user@host")
    bye = Goodbye((0x6D2453EA,), b"done")
    data = encode_compound([SenderReport.decode(SR), sdes, bye])
    packets = RtcpPacket.decode_compound(data)
    assert packets[1] == sdes and packets[2] == bye
    assert packets[1].chunks[0].get(SdesItemType.CNAME) == b"user@host"
    assert not is_reduced_size(packets)
    assert is_reduced_size(decode_compound(PLI))
    assert encode_compound(packets) == data


def test_sdes_annotated() -> None:
    data = bytes.fromhex(
        "81"  # V=2, P=0, SC=1
        "ca"  # PT=202 (SDES)
        "0004"  # length 4 words
        "12345678"  # chunk 1: SSRC
        "02" "03" "616263"  # item NAME, length 3, "abc"
        "01" "02" "6465"  # item CNAME, length 2, "de"
        "00"  # END
        "0000"  # null padding to 32 bits
    )
    sdes = SourceDescription.decode(data)
    assert sdes == SourceDescription((SdesChunk(0x12345678, (SdesItem(2, b"abc"), SdesItem(1, b"de"))),))
    assert sdes.chunks[0].items[1].text == "de"
    assert sdes.encode() == data


def test_bye_annotated() -> None:
    data = bytes.fromhex(
        "81"  # V=2, P=0, SC=1
        "cb"  # PT=203 (BYE)
        "0002"  # length 2 words
        "ae528b43"  # SSRC
        "03"  # reason length 3
        "627965"  # "bye" (ends on a 32-bit boundary: no null padding)
    )
    assert Goodbye.decode(data) == Goodbye((0xAE528B43,), b"bye")
    assert Goodbye((0xAE528B43,), b"bye").encode() == data
    assert Goodbye((1,), b"").encode().hex() == "81cb00020000000100000000"


def test_padding_kept() -> None:
    pli = PictureLossIndication(1, 2, padding=b"\x00\x00\x00\x04")
    data = pli.encode()
    assert data[0] == 0xA1 and data[2:4] == b"\x00\x03"  # P bit, length includes padding
    assert PictureLossIndication.decode(data) == pli
    with pytest.raises(LocalProtocolError):
        PictureLossIndication(1, 2, padding=b"\x00\x00\x00\x03").encode()


def test_decode_expects_one_packet_of_the_class() -> None:
    with pytest.raises(DecodeError) as info:
        SenderReport.decode(PLI)
    assert str(info.value) == "expected one SenderReport, got 1 RTCP packets"


@pytest.mark.parametrize(
    ("hexdata", "message"),
    [
        ("", "RTCP datagram is empty"),
        ("81c9", "RTCP header truncated: need 4 bytes, have 2"),
        ("41c90001ae528b43", "RTCP version must be 2, got 1"),
        ("81c90002ae528b43", "RTCP length of 2 words overruns the datagram (4 bytes left)"),
        ("a0c90000", "RTCP padding bit set on an empty packet"),
        ("a0c9000112345600", "RTCP padding count is zero"),
        ("a0c9000112345609", "RTCP padding count 9 exceeds the 4-byte body"),
        ("81c80001ae528b43", "SR sender info truncated: need 24 bytes at offset 0, have 4"),
        ("81c90001ae528b43", "report block truncated: need 24 bytes at offset 4, have 0"),
        ("81ca00009000001b", "SDES chunk truncated: need 4 bytes at offset 0, have 0"),
        ("81ca000112345678", "SDES chunk truncated: need 1 bytes at offset 4, have 0"),
        ("81ca00021234567801056162", "SDES item truncated: need 5 bytes at offset 6, have 2"),
        ("81ca00021234567800000100", "SDES chunk padding is not zero"),
        ("80ca000112345678", "SDES has 4 trailing bytes"),
        ("91cb0001ae528b43", "BYE truncated: need 4 bytes at offset 4, have 0"),
        ("80cb00010a616263", "BYE reason truncated: need 10 bytes at offset 1, have 3"),
        ("80cb000101610001", "BYE reason is followed by 2 bytes that are not its padding"),
        ("80cb00020161000000000000", "BYE reason is followed by 6 bytes that are not its padding"),
        ("81cd0001ae528b43", "NACK truncated: need 8 bytes at offset 0, have 4"),
        ("81ce0001ae528b43", "PLI truncated: need 8 bytes at offset 0, have 4"),
        ("81ce00031234567800000000abcdef01", "PLI has 4 trailing bytes"),
        ("84ce00031234567800000000abcdef01", "FIR FCI of 4 bytes is not whole entries"),
        ("8fce0003123456780000000052454d42", "REMB truncated: need 1 bytes at offset 12, have 0"),
        ("8fce000512345678000000005245" "4d420200000112345678", "REMB truncated: need 4 bytes at offset 20, have 0"),
        ("8fce000512345678000000005245" "4d4200000001abcdef01", "REMB has 4 trailing bytes"),
    ],
)
def test_malformed(hexdata: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_compound(bytes.fromhex(hexdata))
    assert str(info.value) == message
