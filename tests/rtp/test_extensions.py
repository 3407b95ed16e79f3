"""RFC 8285 header extensions and the typed values of the registered URIs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError, LocalProtocolError
from realtime.rtp.extensions import (
    ExtensionUri,
    HeaderExtension,
    decode_abs_send_time,
    decode_audio_level,
    decode_extensions,
    decode_sdes_text,
    decode_toffset,
    decode_transport_sequence_number,
    decode_video_orientation,
    encode_abs_send_time,
    encode_audio_level,
    encode_extensions,
    encode_sdes_text,
    encode_toffset,
    encode_transport_sequence_number,
    encode_video_orientation,
    is_one_byte,
    is_two_byte,
)
from realtime.rtp.packet import RtpPacket, find_extension


def test_rfc8285_real_examples(vectors) -> None:
    data = vectors("rfc8285_header_extensions")
    assert data["real_examples"]
    for example in data["real_examples"]:
        header = bytes.fromhex(example["rtp_header_hex"])
        block = bytes.fromhex(example["extension_block_hex"])
        profile = int(example["profile"], 16)
        expected = tuple(HeaderExtension(e["id"], bytes.fromhex(e["data"])) for e in example["elements"])
        assert decode_extensions(profile, block) == expected, example["source_file"]
        assert len(block) == 4 * example["length_words"]
        # The header alone is a whole RTP packet once the P bit is cleared
        # (its padding was cut off with the payload).
        header = bytes([header[0] & ~0x20]) + header[1:]
        packet = RtpPacket.decode(header)
        assert packet.extension_data == block and packet.header_extensions == expected
        for element in expected:
            assert find_extension(header, element.id) == element.value


def test_audio_level_of_the_vector(vectors) -> None:
    example = vectors("rfc8285_header_extensions")["real_examples"][0]
    level = bytes.fromhex(example["elements"][0]["data"])
    assert decode_audio_level(level) == (True, 0x4C)  # V=1, -76 dBov


# RFC 8285 §4.3 layout with concrete values: ids 1 (L=0), 2 (L=1), pad, 3 (L=4).
TWO_BYTE_BLOCK = bytes.fromhex(
    "01"  # id 1
    "00"  # L=0: no data
    "02"  # id 2
    "01"  # L=1
    "aa"  # data
    "00"  # padding octet
    "03"  # id 3
    "04"  # L=4
    "01020304"  # data
    "0000"  # zero padding to 32 bits (3 words in all)
)


def test_two_byte_annotated() -> None:
    elements = decode_extensions(0x1000, TWO_BYTE_BLOCK)
    assert elements == (
        HeaderExtension(1, b""),
        HeaderExtension(2, b"\xaa"),
        HeaderExtension(3, b"\x01\x02\x03\x04"),
    )
    assert decode_extensions(0x100F, TWO_BYTE_BLOCK) == elements  # appbits 0xF
    # The encoder writes no padding octet between elements.
    profile, data = encode_extensions(elements)
    assert profile == 0x1000
    assert data == bytes.fromhex("0100" "0201aa" "030401020304" "00")


def test_one_byte_annotated() -> None:
    # RFC 8285 §4.2 layout: ids 1 (L=0), 2 (L=1), two pads, 3 (L=3).
    block = bytes.fromhex("10" "aa" "21" "bbbb" "0000" "33" "01020304" "0000")
    assert decode_extensions(0xBEDE, block) == (
        HeaderExtension(1, b"\xaa"), HeaderExtension(2, b"\xbb\xbb"), HeaderExtension(3, bytes([1, 2, 3, 4])),
    )


def test_one_byte_id_15_stops_parsing() -> None:
    assert decode_extensions(0xBEDE, bytes.fromhex("10aa" "f0" "21bbbb00")) == (HeaderExtension(1, b"\xaa"),)


def test_profile_predicates_and_other_profiles() -> None:
    assert is_one_byte(0xBEDE) and not is_one_byte(0x1000)
    assert is_two_byte(0x1000) and is_two_byte(0x100A) and not is_two_byte(0x1010)
    assert decode_extensions(0xABCD, b"\x01\x02\x03\x04") == ()


def test_form_selection() -> None:
    assert encode_extensions([HeaderExtension(1, b"x")])[0] == 0xBEDE
    assert encode_extensions([HeaderExtension(15, b"x")])[0] == 0x1000
    assert encode_extensions([HeaderExtension(1, b"")])[0] == 0x1000
    assert encode_extensions([HeaderExtension(1, b"x" * 17)])[0] == 0x1000
    assert encode_extensions([HeaderExtension(1, b"x")], two_byte=True, appbits=3)[0] == 0x1003
    with pytest.raises(LocalProtocolError):
        encode_extensions([HeaderExtension(15, b"x")], two_byte=False)
    with pytest.raises(LocalProtocolError):
        encode_extensions([HeaderExtension(1, b"x" * 256)])


def test_typed_values() -> None:
    assert decode_sdes_text(encode_sdes_text("f")) == "f"
    assert decode_abs_send_time(bytes.fromhex("169eb8")) == 0x169EB8 / 2**18
    assert decode_abs_send_time(encode_abs_send_time(65.5)) == 1.5  # wraps every 64 s
    assert decode_transport_sequence_number(encode_transport_sequence_number(0x1_0002)) == 2
    assert encode_audio_level(False, 127) == b"\x7f"
    assert decode_toffset(encode_toffset(-5)) == -5
    assert encode_video_orientation(True, False, 270) == b"\x0b"
    assert decode_video_orientation(b"\x0b") == (True, False, 270)
    assert ExtensionUri.MID in ExtensionUri.ALL and len(set(ExtensionUri.ALL)) == 8


@pytest.mark.parametrize(
    ("decode", "data", "message"),
    [
        (decode_sdes_text, b"\xff", "SDES header extension value is not ASCII"),
        (decode_abs_send_time, b"\x00", "abs-send-time needs 3 bytes, got 1"),
        (decode_transport_sequence_number, b"\x00", "transport-wide-cc needs 2 bytes, got 1"),
        (decode_audio_level, b"", "ssrc-audio-level needs 1 byte"),
        (decode_toffset, b"\x00\x00", "toffset needs 3 bytes, got 2"),
        (decode_video_orientation, b"", "video-orientation needs 1 byte"),
    ],
)
def test_typed_value_errors(decode, data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert str(info.value) == message


elements = st.lists(
    st.builds(HeaderExtension, st.integers(1, 255), st.binary(max_size=20)), max_size=6
)


@settings(max_examples=200)
@given(elements, st.integers(0, 15))
def test_round_trip(exts: list[HeaderExtension], appbits: int) -> None:
    profile, data = encode_extensions(exts, appbits=appbits)
    assert len(data) % 4 == 0
    assert decode_extensions(profile, data) == tuple(exts)


@settings(max_examples=300)
@given(st.sampled_from([0xBEDE, 0x1000, 0x1005]), st.binary(max_size=40))
def test_hostile_blocks_raise_only_decode_error(profile: int, data: bytes) -> None:
    try:
        decode_extensions(profile, data)
    except DecodeError:
        pass
