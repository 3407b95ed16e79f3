"""
RTP header extensions: the general mechanism of RFC 8285 and the values WebRTC puts in it.

An RTP packet with the X bit set carries, after its CSRC list, one extension
block (RFC 3550 §5.3.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      defined by profile       |           length              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  header extension (length x 32 bits)          |
    |                             ....                              |

RFC 8285 fills that block with *elements*, each naming a local identifier
that SDP ``a=extmap`` binds to a URI.  Two forms exist.

One-byte form (§4.2), profile ``0xBEDE``; ``L`` is the data length minus one,
id 0 is a single padding byte, id 15 stops parsing::

     0                   1                   2                   3
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |       0xBE    |    0xDE       |           length=3            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  ID   | L=0   |     data      |  ID   |  L=1  |   data...
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
          ...data   |    0 (pad)    |    0 (pad)    |  ID   | L=3   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                          data                                 |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Two-byte form (§4.3), profile ``0x100`` followed by 4 "appbits"; ``L`` is the
data length (zero allowed), id 0 is a single padding byte::

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         0x100         |appbits|           length=3            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      ID       |     L=0       |     ID        |     L=1       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |       data    |    0 (pad)    |       ID      |      L=4      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                          data                                 |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The :class:`~realtime.rtp.packet.RtpPacket` keeps the block raw (so every
packet re-encodes byte for byte); :func:`decode_extensions` turns it into
:class:`HeaderExtension` values and :func:`encode_extensions` builds one.
The typed value codecs at the bottom read the URIs WebRTC negotiates.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.errors import DecodeError, LocalProtocolError
from realtime.wire import padding_length

ONE_BYTE_PROFILE = 0xBEDE
"""RFC 8285 §4.2: "defined by profile" value of the one-byte form."""
TWO_BYTE_PROFILE = 0x1000
"""RFC 8285 §4.3: the two-byte form is ``0x1000 | appbits``."""


class ExtensionUri:
    """The header-extension URIs an ``a=extmap`` line may bind (IANA "RTP Compact Header Extensions")."""

    MID = "urn:ietf:params:rtp-hdrext:sdes:mid"  #: RFC 8843 §15.2 / RFC 7941
    RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"  #: RFC 8852 §3.1
    REPAIRED_RTP_STREAM_ID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"  #: RFC 8852 §3.2
    SSRC_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"  #: RFC 6464
    TOFFSET = "urn:ietf:params:rtp-hdrext:toffset"  #: RFC 5450
    ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    TRANSPORT_WIDE_CC = (
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    )
    VIDEO_ORIENTATION = "urn:3gpp:video-orientation"  #: 3GPP TS 26.114 §7.4.5

    ALL = (
        MID,
        RTP_STREAM_ID,
        REPAIRED_RTP_STREAM_ID,
        SSRC_AUDIO_LEVEL,
        TOFFSET,
        ABS_SEND_TIME,
        TRANSPORT_WIDE_CC,
        VIDEO_ORIENTATION,
    )


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """One RFC 8285 element: a local identifier and its data bytes."""

    id: int
    value: bytes


def is_one_byte(profile: int) -> bool:
    """Return True if ``profile`` announces the RFC 8285 one-byte form."""
    return profile == ONE_BYTE_PROFILE


def is_two_byte(profile: int) -> bool:
    """Return True if ``profile`` announces the RFC 8285 two-byte form (any appbits)."""
    return profile & 0xFFF0 == TWO_BYTE_PROFILE


def decode_extensions(profile: int, data: bytes) -> tuple[HeaderExtension, ...]:
    """Parse an extension block's data into elements, skipping padding bytes.

    Blocks of other profiles (not RFC 8285) yield no elements.  An element
    running past the block raises :class:`DecodeError`; a one-byte id 15
    ends parsing (RFC 8285 §4.2).
    """
    if profile == ONE_BYTE_PROFILE:
        return _decode_one_byte(data)
    if profile & 0xFFF0 == TWO_BYTE_PROFILE:
        return _decode_two_byte(data)
    return ()


def _decode_one_byte(data: bytes) -> tuple[HeaderExtension, ...]:
    out = []
    pos, end = 0, len(data)
    while pos < end:
        byte = data[pos]
        if byte == 0:
            pos += 1
            continue
        ext_id = byte >> 4
        if ext_id == 15:
            break
        size = (byte & 0x0F) + 1
        if pos + 1 + size > end:
            raise DecodeError(f"one-byte header extension {ext_id} overruns the block")
        out.append(HeaderExtension(ext_id, bytes(data[pos + 1 : pos + 1 + size])))
        pos += 1 + size
    return tuple(out)


def _decode_two_byte(data: bytes) -> tuple[HeaderExtension, ...]:
    out = []
    pos, end = 0, len(data)
    while pos < end:
        ext_id = data[pos]
        if ext_id == 0:
            pos += 1
            continue
        if pos + 2 > end:
            raise DecodeError(f"two-byte header extension {ext_id} has no length")
        size = data[pos + 1]
        if pos + 2 + size > end:
            raise DecodeError(f"two-byte header extension {ext_id} overruns the block")
        out.append(HeaderExtension(ext_id, bytes(data[pos + 2 : pos + 2 + size])))
        pos += 2 + size
    return tuple(out)


def encode_extensions(
    extensions: tuple[HeaderExtension, ...] | list[HeaderExtension],
    two_byte: bool | None = None,
    appbits: int = 0,
) -> tuple[int, bytes]:
    """Return ``(profile, data)`` for an extension block holding ``extensions``.

    The one-byte form is chosen when every id is 1..14 and every value 1..16
    bytes long (or forced with ``two_byte``); data is zero-padded to 32 bits.
    """
    fits_one = all(1 <= e.id <= 14 and 1 <= len(e.value) <= 16 for e in extensions)
    if two_byte is None:
        two_byte = not fits_one
    out = bytearray()
    if not two_byte:
        if not fits_one:
            raise LocalProtocolError("one-byte form needs ids 1..14 and 1..16 data bytes")
        for e in extensions:
            out.append(e.id << 4 | (len(e.value) - 1))
            out += e.value
        profile = ONE_BYTE_PROFILE
    else:
        for e in extensions:
            if not 1 <= e.id <= 255 or len(e.value) > 255:
                raise LocalProtocolError("two-byte form needs ids 1..255 and <= 255 data bytes")
            out += bytes((e.id, len(e.value)))
            out += e.value
        profile = TWO_BYTE_PROFILE | (appbits & 0x0F)
    out += bytes(padding_length(len(out)))
    return profile, bytes(out)


def write_extension_block(out: bytearray, elements: list[tuple[int, bytes | bytearray]]) -> None:
    """Append a whole extension block (profile, length, elements, padding) to ``out``.

    The hot-path twin of :func:`encode_extensions` for ``(id, value)`` pairs
    whose ids the caller has already checked: the one-byte form when every
    element fits it (§4.2), else the two-byte form (§4.3); the block's
    length field counts 32-bit words after zero padding.
    """
    start = len(out)
    if all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elements):
        out += b"\xbe\xde\x00\x00"
        for ext_id, value in elements:
            out.append(ext_id << 4 | (len(value) - 1))
            out += value
    else:
        out += b"\x10\x00\x00\x00"
        for ext_id, value in elements:
            out.append(ext_id)
            out.append(len(value))
            out += value
    size = len(out) - start - 4
    pad = -size % 4
    out += bytes(pad)
    out[start + 2 : start + 4] = ((size + pad) // 4).to_bytes(2, "big")

# --- typed values of the registered URIs -------------------------------------------------


def decode_sdes_text(value: bytes) -> str:
    """Decode a mid / rid / repaired-rid value (RFC 8852 §3: US-ASCII alphanumerics).

    Non-ASCII bytes raise :class:`DecodeError`.
    """
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("SDES header extension value is not ASCII") from None


def encode_sdes_text(text: str) -> bytes:
    """Encode a mid / rid value as the ASCII bytes of the element."""
    return text.encode("ascii")


def decode_abs_send_time(value: bytes) -> float:
    """Return the abs-send-time in seconds: 24 bits, 6.18 fixed point (wraps every 64 s)."""
    if len(value) != 3:
        raise DecodeError(f"abs-send-time needs 3 bytes, got {len(value)}")
    return int.from_bytes(value, "big") / (1 << 18)


def encode_abs_send_time(seconds: float) -> bytes:
    """Encode ``seconds`` (modulo 64) as the 3-byte 6.18 fixed-point abs-send-time."""
    return (int(seconds * (1 << 18)) & 0xFFFFFF).to_bytes(3, "big")


def decode_transport_sequence_number(value: bytes) -> int:
    """Return the 16-bit transport-wide sequence number (draft-holmer-...-01 §2)."""
    if len(value) != 2:
        raise DecodeError(f"transport-wide-cc needs 2 bytes, got {len(value)}")
    return value[0] << 8 | value[1]


def encode_transport_sequence_number(seq: int) -> bytes:
    """Encode a transport-wide sequence number as 2 big-endian bytes."""
    return (seq & 0xFFFF).to_bytes(2, "big")


def decode_audio_level(value: bytes) -> tuple[bool, int]:
    """Return ``(voice_activity, level)`` of RFC 6464 §3: V bit, then -dBov in 7 bits."""
    if len(value) < 1:
        raise DecodeError("ssrc-audio-level needs 1 byte")
    return bool(value[0] & 0x80), value[0] & 0x7F


def encode_audio_level(voice_activity: bool, level: int) -> bytes:
    """Encode an RFC 6464 audio level (0 loudest .. 127 silence) and V bit."""
    if not 0 <= level <= 127:
        raise LocalProtocolError("audio level is 0..127 (-dBov)")
    return bytes(((0x80 if voice_activity else 0) | level,))


def decode_toffset(value: bytes) -> int:
    """Return the RFC 5450 transmission time offset: a signed 24-bit RTP-clock delta."""
    if len(value) != 3:
        raise DecodeError(f"toffset needs 3 bytes, got {len(value)}")
    return int.from_bytes(value, "big", signed=True)


def encode_toffset(offset: int) -> bytes:
    """Encode a transmission time offset as 3 signed big-endian bytes."""
    return offset.to_bytes(3, "big", signed=True)


def decode_video_orientation(value: bytes) -> tuple[bool, bool, int]:
    """Return ``(back_camera, flip, rotation_degrees)`` of the CVO byte ``0000CFRR``."""
    if len(value) < 1:
        raise DecodeError("video-orientation needs 1 byte")
    b = value[0]
    return bool(b & 0x08), bool(b & 0x04), (b & 0x03) * 90


def encode_video_orientation(back_camera: bool, flip: bool, rotation: int) -> bytes:
    """Encode a CVO byte; ``rotation`` is 0, 90, 180 or 270 degrees."""
    if rotation not in (0, 90, 180, 270):
        raise LocalProtocolError("rotation is 0, 90, 180 or 270")
    return bytes(((0x08 if back_camera else 0) | (0x04 if flip else 0) | rotation // 90,))
