"""
SCTP chunks: the units an SCTP packet bundles (RFC 9260 §3.2, §3.3).

Every chunk starts with the same 4-byte header and is padded to 4 bytes; the
length counts the header and value but not the padding::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Chunk Type  | Chunk  Flags  |        Chunk Length           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    \\                          Chunk Value                          \\
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

DATA (§3.3.1), the chunk of the hot path, with flags I(mmediate),
U(nordered), B(eginning) and E(nding) of a fragmented message::

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Type = 0    |  Res  |I|U|B|E|           Length              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                              TSN                              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      Stream Identifier S      |   Stream Sequence Number n    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  Payload Protocol Identifier                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    \\                 User Data (seq n of Stream S)                 \\

SACK (§3.3.4): Cumulative TSN Ack, a_rwnd, then gap ack blocks as offsets
from the cumulative TSN and duplicate TSNs.  FORWARD TSN (RFC 3758 §3.2):
a new cumulative TSN and (stream, SSN) pairs.  Chunks with no fields of
their own (COOKIE ACK, SHUTDOWN ACK) are empty; chunk types this module does
not know are kept as :class:`UnknownChunk`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, ClassVar, Union

from realtime.errors import DecodeError
from realtime.wire import padding_length
from realtime.sctp.parameters import (
    ErrorCause, Parameter, decode_cause, decode_parameter, decode_tlvs, encode_tlvs,
)


class ChunkType(IntEnum):
    """IANA "Chunk Types" (RFC 9260 §3.2 unless noted)."""

    DATA = 0
    INIT = 1
    INIT_ACK = 2
    SACK = 3
    HEARTBEAT = 4
    HEARTBEAT_ACK = 5
    ABORT = 6
    SHUTDOWN = 7
    SHUTDOWN_ACK = 8
    ERROR = 9
    COOKIE_ECHO = 10
    COOKIE_ACK = 11
    ECNE = 12
    CWR = 13
    SHUTDOWN_COMPLETE = 14
    AUTH = 15  #: RFC 4895
    I_DATA = 64  #: RFC 8260
    ASCONF_ACK = 0x80  #: RFC 5061
    RE_CONFIG = 0x82  #: RFC 6525
    PAD = 0x84  #: RFC 4820
    FORWARD_TSN = 0xC0  #: RFC 3758
    ASCONF = 0xC1  #: RFC 5061
    I_FORWARD_TSN = 0xC2  #: RFC 8260


_HEADER = struct.Struct("!BBH")
_DATA = struct.Struct("!BBHIHHI")
_INIT = struct.Struct("!BBHIIHHI")
_SACK = struct.Struct("!BBHIIHH")
_U32 = struct.Struct("!I")

FLAG_T = 0x01
"""ABORT / SHUTDOWN COMPLETE: the verification tag is the sender's own (reflected)."""


@dataclass(frozen=True, slots=True)
class DataChunk:
    """A piece of one user message on one stream (RFC 9260 §3.3.1)."""

    tsn: int
    stream_id: int
    stream_seq: int
    ppid: int
    user_data: bytes
    unordered: bool = False
    beginning: bool = True
    ending: bool = True
    immediate: bool = False  #: RFC 7053 I bit: SACK this at once

    def encode(self) -> bytes:
        """Return the chunk bytes (header and value, no padding)."""
        flags = (self.immediate << 3) | (self.unordered << 2) | (self.beginning << 1) | self.ending
        return _DATA.pack(ChunkType.DATA, flags, 16 + len(self.user_data), self.tsn,
                          self.stream_id, self.stream_seq, self.ppid) + self.user_data


def _decode_data(flags: int, value: bytes) -> DataChunk:
    if len(value) < 12:
        raise DecodeError(f"DATA chunk value of {len(value)} bytes is shorter than 12")
    tsn, sid, ssn, ppid = struct.unpack_from("!IHHI", value)
    return DataChunk(tsn, sid, ssn, ppid, value[12:], bool(flags & 4), bool(flags & 2),
                     bool(flags & 1), bool(flags & 8))


@dataclass(frozen=True, slots=True)
class InitChunk:
    """Start an association: our tag, window, streams and first TSN (§3.3.2)."""

    initiate_tag: int
    a_rwnd: int
    outbound_streams: int
    inbound_streams: int
    initial_tsn: int
    parameters: tuple[Parameter, ...] = ()
    #: The sender counted the last parameter's padding in the chunk length
    #: (as RFC 4960-era stacks did); kept so the chunk re-encodes byte for byte.
    length_includes_padding: bool = False

    chunk_type = ChunkType.INIT

    def encode(self) -> bytes:
        """Return the chunk bytes (header and value, no final padding)."""
        params = encode_tlvs(self.parameters)
        if self.length_includes_padding:
            params += bytes(padding_length(len(params)))
        return _INIT.pack(self.chunk_type, 0, 20 + len(params), self.initiate_tag, self.a_rwnd,
                          self.outbound_streams, self.inbound_streams, self.initial_tsn) + params

    @classmethod
    def from_value(cls, flags: int, value: bytes) -> "InitChunk":
        """Decode the fixed fields and the parameters."""
        if len(value) < 16:
            raise DecodeError(f"{cls.chunk_type.name} chunk value of {len(value)} bytes "
                              "is shorter than 16")
        tag, a_rwnd, outbound, inbound, initial_tsn = struct.unpack_from("!IIHHI", value)
        params = decode_tlvs(memoryview(value)[16:], decode_parameter,
                             f"{cls.chunk_type.name} parameter")
        padded = bool(params) and len(value) % 4 == 0 and len(params[-1].encode_value()) % 4 != 0
        return cls(tag, a_rwnd, outbound, inbound, initial_tsn, params, padded)


@dataclass(frozen=True, slots=True)
class InitAckChunk(InitChunk):
    """Answer an INIT; the parameters carry the State Cookie (§3.3.3)."""

    chunk_type = ChunkType.INIT_ACK


@dataclass(frozen=True, slots=True)
class SackChunk:
    """Acknowledge DATA: cumulative TSN, window, gap blocks, duplicates (§3.3.4)."""

    cumulative_tsn_ack: int
    a_rwnd: int
    gap_blocks: tuple[tuple[int, int], ...] = ()
    duplicate_tsns: tuple[int, ...] = ()

    def encode(self) -> bytes:
        """Return the chunk bytes."""
        gaps, dups = len(self.gap_blocks), len(self.duplicate_tsns)
        flat = [v for block in self.gap_blocks for v in block]
        return (_SACK.pack(ChunkType.SACK, 0, 16 + 4 * (gaps + dups), self.cumulative_tsn_ack,
                           self.a_rwnd, gaps, dups)
                + struct.pack(f"!{2 * gaps}H{dups}I", *flat, *self.duplicate_tsns))


def _decode_sack(flags: int, value: bytes) -> SackChunk:
    if len(value) < 12:
        raise DecodeError(f"SACK chunk value of {len(value)} bytes is shorter than 12")
    cum, rwnd, gaps, dups = struct.unpack_from("!IIHH", value)
    if len(value) != 12 + 4 * (gaps + dups):
        raise DecodeError(f"SACK chunk value of {len(value)} bytes does not hold "
                          f"{gaps} gap blocks and {dups} duplicate TSNs")
    flat = struct.unpack_from(f"!{2 * gaps}H{dups}I", value, 12)
    blocks = tuple(zip(flat[0:2 * gaps:2], flat[1:2 * gaps:2]))
    return SackChunk(cum, rwnd, blocks, tuple(flat[2 * gaps:]))


@dataclass(frozen=True, slots=True)
class HeartbeatChunk:
    """Probe the peer; carries a Heartbeat Info parameter (§3.3.5)."""

    parameters: tuple[Parameter, ...] = ()

    CHUNK_TYPE: ClassVar[int] = ChunkType.HEARTBEAT

    def encode(self) -> bytes:
        """Return the chunk bytes (header and parameters, no final padding)."""
        params = encode_tlvs(self.parameters)
        return _HEADER.pack(self.CHUNK_TYPE, 0, 4 + len(params)) + params


@dataclass(frozen=True, slots=True)
class HeartbeatAckChunk(HeartbeatChunk):
    """Answer a HEARTBEAT by echoing its Heartbeat Info (§3.3.6)."""

    CHUNK_TYPE: ClassVar[int] = ChunkType.HEARTBEAT_ACK


@dataclass(frozen=True, slots=True)
class ReconfigChunk(HeartbeatChunk):
    """Carry stream re-configuration requests and responses (RFC 6525 §3.1)."""

    CHUNK_TYPE: ClassVar[int] = ChunkType.RE_CONFIG


@dataclass(frozen=True, slots=True)
class AbortChunk:
    """Close the association at once, saying why in error causes (§3.3.7)."""

    causes: tuple[ErrorCause, ...] = ()
    reflected: bool = False  #: T bit: the tag is the sender's own

    def encode(self) -> bytes:
        """Return the chunk bytes (no final padding)."""
        causes = encode_tlvs(self.causes)
        return _HEADER.pack(ChunkType.ABORT, int(self.reflected), 4 + len(causes)) + causes


@dataclass(frozen=True, slots=True)
class ErrorChunk:
    """Report a non-fatal error (§3.3.10)."""

    causes: tuple[ErrorCause, ...] = ()

    def encode(self) -> bytes:
        """Return the chunk bytes (no final padding)."""
        causes = encode_tlvs(self.causes)
        return _HEADER.pack(ChunkType.ERROR, 0, 4 + len(causes)) + causes


@dataclass(frozen=True, slots=True)
class ShutdownChunk:
    """Begin a graceful close, acknowledging up to a TSN (§3.3.8)."""

    cumulative_tsn_ack: int

    def encode(self) -> bytes:
        """Return the 8 chunk bytes."""
        return _HEADER.pack(ChunkType.SHUTDOWN, 0, 8) + _U32.pack(self.cumulative_tsn_ack)


@dataclass(frozen=True, slots=True)
class ShutdownAckChunk:
    """Acknowledge a SHUTDOWN once all our data is acknowledged (§3.3.9)."""

    def encode(self) -> bytes:
        """Return the 4 chunk bytes."""
        return _HEADER.pack(ChunkType.SHUTDOWN_ACK, 0, 4)


@dataclass(frozen=True, slots=True)
class ShutdownCompleteChunk:
    """Finish the SHUTDOWN sequence (§3.3.13)."""

    reflected: bool = False  #: T bit

    def encode(self) -> bytes:
        """Return the 4 chunk bytes."""
        return _HEADER.pack(ChunkType.SHUTDOWN_COMPLETE, int(self.reflected), 4)


@dataclass(frozen=True, slots=True)
class CookieEchoChunk:
    """Return the State Cookie of an INIT ACK (§3.3.11)."""

    cookie: bytes

    def encode(self) -> bytes:
        """Return the chunk bytes (no final padding)."""
        return _HEADER.pack(ChunkType.COOKIE_ECHO, 0, 4 + len(self.cookie)) + self.cookie


@dataclass(frozen=True, slots=True)
class CookieAckChunk:
    """Acknowledge a COOKIE ECHO: the association is established (§3.3.12)."""

    def encode(self) -> bytes:
        """Return the 4 chunk bytes."""
        return _HEADER.pack(ChunkType.COOKIE_ACK, 0, 4)


@dataclass(frozen=True, slots=True)
class ForwardTsnChunk:
    """Move the peer's cumulative TSN past abandoned data (RFC 3758 §3.2)."""

    new_cumulative_tsn: int
    streams: tuple[tuple[int, int], ...] = ()  #: (stream id, last skipped SSN)

    def encode(self) -> bytes:
        """Return the chunk bytes."""
        flat = [v for pair in self.streams for v in pair]
        return (_HEADER.pack(ChunkType.FORWARD_TSN, 0, 8 + 4 * len(self.streams))
                + struct.pack(f"!I{len(flat)}H", self.new_cumulative_tsn, *flat))


def _decode_forward_tsn(flags: int, value: bytes) -> ForwardTsnChunk:
    if len(value) < 4 or len(value) % 4:
        raise DecodeError(f"FORWARD TSN chunk value of {len(value)} bytes is not 4 + 4n")
    fields = struct.unpack(f"!I{(len(value) - 4) // 2}H", value)
    return ForwardTsnChunk(fields[0], tuple(zip(fields[1::2], fields[2::2])))


@dataclass(frozen=True, slots=True)
class UnknownChunk:
    """A chunk type this stack does not interpret, kept byte for byte."""

    type: int
    flags: int
    value: bytes

    def encode(self) -> bytes:
        """Return the chunk bytes (no final padding)."""
        return _HEADER.pack(self.type, self.flags, 4 + len(self.value)) + self.value


Chunk = Union[
    DataChunk, InitChunk, InitAckChunk, SackChunk, HeartbeatChunk, HeartbeatAckChunk,
    AbortChunk, ShutdownChunk, ShutdownAckChunk, ErrorChunk, CookieEchoChunk, CookieAckChunk,
    ShutdownCompleteChunk, ForwardTsnChunk, ReconfigChunk, UnknownChunk,
]


def _fixed(name: str, size: int, build: Callable[[int, bytes], Chunk]
           ) -> Callable[[int, bytes], Chunk]:
    """Return a decoder that insists on a ``size``-byte value."""

    def decode(flags: int, value: bytes) -> Chunk:
        if len(value) != size:
            raise DecodeError(f"{name} chunk value of {len(value)} bytes is not {size}")
        return build(flags, value)

    return decode


def _params(cls: Callable[[tuple[Parameter, ...]], Chunk]) -> Callable[[int, bytes], Chunk]:
    """Return a decoder of a chunk whose value is a run of parameters."""
    return lambda flags, value: cls(decode_tlvs(value, decode_parameter, "SCTP parameter"))


def _causes(build: Callable[[int, tuple[ErrorCause, ...]], Chunk]
            ) -> Callable[[int, bytes], Chunk]:
    """Return a decoder of a chunk whose value is a run of error causes."""
    return lambda flags, value: build(flags, decode_tlvs(value, decode_cause, "SCTP error cause"))


DECODERS: dict[int, Callable[[int, bytes], Chunk]] = {
    ChunkType.DATA: _decode_data,
    ChunkType.INIT: InitChunk.from_value,
    ChunkType.INIT_ACK: InitAckChunk.from_value,
    ChunkType.SACK: _decode_sack,
    ChunkType.HEARTBEAT: _params(HeartbeatChunk),
    ChunkType.HEARTBEAT_ACK: _params(HeartbeatAckChunk),
    ChunkType.ABORT: _causes(lambda flags, causes: AbortChunk(causes, bool(flags & FLAG_T))),
    ChunkType.SHUTDOWN: _fixed("SHUTDOWN", 4, lambda f, v: ShutdownChunk(_U32.unpack(v)[0])),
    ChunkType.SHUTDOWN_ACK: _fixed("SHUTDOWN ACK", 0, lambda f, v: ShutdownAckChunk()),
    ChunkType.ERROR: _causes(lambda flags, causes: ErrorChunk(causes)),
    ChunkType.COOKIE_ECHO: lambda flags, value: CookieEchoChunk(value),
    ChunkType.COOKIE_ACK: _fixed("COOKIE ACK", 0, lambda f, v: CookieAckChunk()),
    ChunkType.SHUTDOWN_COMPLETE: _fixed(
        "SHUTDOWN COMPLETE", 0, lambda f, v: ShutdownCompleteChunk(bool(f & FLAG_T))),
    ChunkType.FORWARD_TSN: _decode_forward_tsn,
    ChunkType.RE_CONFIG: _params(ReconfigChunk),
}
"""Chunk type -> ``decode(flags, value)``; other types become :class:`UnknownChunk`."""


def decode_chunk(type_: int, flags: int, value: bytes) -> Chunk:
    """Return the chunk of ``type_`` with ``flags`` and ``value`` (header removed).

    :raises DecodeError: if the value does not fit the chunk's layout.
    """
    decoder = DECODERS.get(type_)
    if decoder is None:
        return UnknownChunk(type_, flags, value)
    return decoder(flags, value)
