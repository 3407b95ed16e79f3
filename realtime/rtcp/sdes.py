"""
Source description packets (RFC 3550 §6.5): CNAME and friends, per SSRC.

::

            0                   1                   2                   3
            0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    header |V=2|P|    SC   |  PT=SDES=202  |             length            |
           +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    chunk  |                          SSRC/CSRC_1                          |
      1    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |     type      |    length     |  text (length octets) ...   |
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |   ... more items ...          | END=0 | 0 0 0 (to 32 bits)    |
           +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    chunk  |                          SSRC/CSRC_2                          |
      2    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |                               ...                             |

Each chunk's item list ends with one to four null octets: the first is the
END item, the rest pad the chunk to a 32-bit boundary (§6.5).  Item values
are kept as bytes (they are UTF-8 text for most types, §6.5); unknown item
types are kept as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from realtime.errors import DecodeError, LocalProtocolError
from realtime.rtcp.packet import RtcpPacket, RtcpPacketType
from realtime.wire import Reader, padding_length


class SdesItemType(IntEnum):
    """IANA "RTP SDES Item Types"."""

    END = 0  #: RFC 3550 §6.5
    CNAME = 1  #: RFC 3550 §6.5.1
    NAME = 2  #: RFC 3550 §6.5.2
    EMAIL = 3  #: RFC 3550 §6.5.3
    PHONE = 4  #: RFC 3550 §6.5.4
    LOC = 5  #: RFC 3550 §6.5.5
    TOOL = 6  #: RFC 3550 §6.5.6
    NOTE = 7  #: RFC 3550 §6.5.7
    PRIV = 8  #: RFC 3550 §6.5.8
    RTP_STREAM_ID = 12  #: RFC 8852 §3.1
    REPAIRED_RTP_STREAM_ID = 13  #: RFC 8852 §3.2
    MID = 15  #: RFC 8843 §15.1


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One item: its type octet and value bytes (at most 255)."""

    type: int
    value: bytes

    @property
    def text(self) -> str:
        """Return the value decoded as UTF-8 (invalid bytes replaced)."""
        return self.value.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items describing one SSRC or CSRC."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def get(self, item_type: int) -> bytes | None:
        """Return the value of the first item of ``item_type``, or None."""
        for item in self.items:
            if item.type == item_type:
                return item.value
        return None

    @classmethod
    def read(cls, reader: Reader) -> "SdesChunk":
        """Read one chunk, END item and null padding included."""
        reader.what = "SDES chunk"
        start = reader.position
        ssrc = reader.u32()
        items = []
        while True:
            reader.what = "SDES chunk"
            item_type = reader.u8()
            if item_type == SdesItemType.END:
                break
            reader.what = "SDES item"
            length = reader.u8()
            items.append(SdesItem(item_type, reader.bytes(length)))
        reader.what = "SDES chunk padding"
        if any(reader.view(padding_length(reader.position - start))):
            raise DecodeError("SDES chunk padding is not zero")
        return cls(ssrc, tuple(items))

    def encode(self) -> bytes:
        """Serialize the chunk with its END item, padded to 32 bits."""
        out = bytearray(self.ssrc.to_bytes(4, "big"))
        for item in self.items:
            if not 1 <= item.type <= 255 or len(item.value) > 255:
                raise LocalProtocolError("SDES item type is 1..255 and value at most 255 bytes")
            out += bytes((item.type, len(item.value))) + item.value
        out.append(0)
        return bytes(out + bytes(padding_length(len(out))))


@dataclass(frozen=True, slots=True)
class SourceDescription(RtcpPacket):
    """An SDES packet: one chunk per source."""

    packet_type = RtcpPacketType.SDES

    chunks: tuple[SdesChunk, ...] = ()
    padding: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "SourceDescription":
        reader = Reader(body, "SDES chunk")
        chunks = tuple(SdesChunk.read(reader) for _ in range(count))
        reader.what = "SDES"
        reader.expect_end()
        return cls(chunks, padding)

    def _body(self) -> tuple[int, bytes]:
        return len(self.chunks), b"".join(chunk.encode() for chunk in self.chunks)

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> "SourceDescription":
        """Build the usual one-chunk SDES carrying a CNAME."""
        return cls((SdesChunk(ssrc, (SdesItem(SdesItemType.CNAME, cname.encode()),)),))
