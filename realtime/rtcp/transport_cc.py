"""
Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).

The receiver reports, for a run of transport-wide sequence numbers (the
header extension of :mod:`realtime.rtp.extensions`), which packets arrived
and when.  RTPFB with FMT=15::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|  FMT=15 |    PT=205     |           length              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                     SSRC of packet sender                     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      SSRC of media source                     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      base sequence number     |      packet status count      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 reference time                | fb pkt. count |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          packet chunk         |         packet chunk          |
    .                                                               .
    |         packet chunk          |  recv delta   |  recv delta   |
    .                                                               .
    |           recv delta          |  recv delta   | zero padding  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Reference time is a signed 24-bit count of 64 ms.  Each packet gets a
2-bit status symbol: 0 not received, 1 received with a small delta (one
unsigned octet), 2 received with a large or negative delta (two signed
octets), 3 reserved.  Deltas count 250 µs.  Symbols travel in 16-bit chunks:

Run length chunk (§3.1.3)::

    |T=0| S |       Run Length (13 bits)        |

Status vector chunk (§3.1.4), 14 one-bit symbols (S=0) or 7 two-bit (S=1)::

    |T=1|S|       symbol list (14 bits)          |

Chunks are kept as decoded (a sender may choose any valid chunking), so
re-encoding is byte-exact; the zero padding after the deltas is
regenerated to the 32-bit boundary.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from realtime.errors import DecodeError, LocalProtocolError
from realtime.rtcp.packet import RtcpPacket, RtcpPacketType
from realtime.wire import Reader, padding_length

NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2
DELTA_UNIT_US = 250
"""Receive deltas count 250 microseconds."""
REFERENCE_TIME_UNIT_US = 64_000
"""The reference time counts 64 milliseconds."""


@dataclass(frozen=True, slots=True)
class RunLengthChunk:
    """``run_length`` consecutive packets with the same status ``symbol``."""

    symbol: int
    run_length: int

    @property
    def symbols(self) -> tuple[int, ...]:
        """Return the status symbols this chunk stands for."""
        return (self.symbol,) * self.run_length

    def encode(self) -> int:
        """Return the 16-bit chunk word."""
        return (self.symbol & 3) << 13 | (self.run_length & 0x1FFF)


@dataclass(frozen=True, slots=True)
class StatusVectorChunk:
    """Up to 14 one-bit or 7 two-bit status symbols (``symbol_size`` 1 or 2)."""

    symbol_size: int
    symbols: tuple[int, ...]

    def encode(self) -> int:
        """Return the 16-bit chunk word; unused trailing slots are zero."""
        slots = 14 // self.symbol_size
        if len(self.symbols) > slots:
            raise LocalProtocolError(f"a {self.symbol_size}-bit vector holds {slots} symbols")
        word = 0xC000 if self.symbol_size == 2 else 0x8000
        for i, symbol in enumerate(self.symbols):
            word |= symbol << (14 - self.symbol_size * (i + 1))
        return word


PacketChunk = RunLengthChunk | StatusVectorChunk


def decode_chunk(word: int) -> PacketChunk:
    """Turn a 16-bit chunk word into its chunk value."""
    if not word & 0x8000:
        return RunLengthChunk(word >> 13 & 3, word & 0x1FFF)
    if word & 0x4000:
        return StatusVectorChunk(2, tuple(word >> shift & 3 for shift in range(12, -1, -2)))
    return StatusVectorChunk(1, tuple(word >> shift & 1 for shift in range(13, -1, -1)))


@dataclass(frozen=True, slots=True)
class TransportFeedback(RtcpPacket):
    """RTPFB transport-cc: arrival status and receive deltas of a run of packets.

    :ivar recv_deltas: one delta (250 µs units) per received packet, in order.
    """

    packet_type = RtcpPacketType.RTPFB
    fmt = 15

    sender_ssrc: int
    media_ssrc: int
    base_sequence_number: int
    packet_status_count: int
    reference_time: int
    feedback_packet_count: int
    chunks: tuple[PacketChunk, ...] = ()
    recv_deltas: tuple[int, ...] = ()
    padding: bytes = b""

    def statuses(self) -> list[int]:
        """Return the status symbol of each of the ``packet_status_count`` packets."""
        symbols: list[int] = []
        for chunk in self.chunks:
            symbols.extend(chunk.symbols)
        return symbols[: self.packet_status_count]

    def packet_results(self) -> list[tuple[int, int | None]]:
        """Return ``(sequence_number, arrival_us | None)``, arrival relative to time 0 of the reference clock."""
        time_us = self.reference_time * REFERENCE_TIME_UNIT_US
        deltas = iter(self.recv_deltas)
        out: list[tuple[int, int | None]] = []
        for i, symbol in enumerate(self.statuses()):
            seq = (self.base_sequence_number + i) & 0xFFFF
            if symbol == NOT_RECEIVED:
                out.append((seq, None))
            else:
                time_us += next(deltas) * DELTA_UNIT_US
                out.append((seq, time_us))
        return out

    @classmethod
    def build(
        cls,
        sender_ssrc: int,
        media_ssrc: int,
        base_sequence_number: int,
        reference_time: int,
        feedback_packet_count: int,
        deltas: Sequence[int | None],
    ) -> "TransportFeedback":
        """Build feedback for consecutive packets from per-packet deltas (None = lost).

        Runs of seven or more equal symbols become run-length chunks, the
        rest one-bit vectors when no large delta occurs, else two-bit vectors.
        """
        symbols = []
        for delta in deltas:
            if delta is None:
                symbols.append(NOT_RECEIVED)
            elif 0 <= delta <= 255:
                symbols.append(SMALL_DELTA)
            elif -0x8000 <= delta <= 0x7FFF:
                symbols.append(LARGE_DELTA)
            else:
                raise LocalProtocolError(f"receive delta {delta} does not fit 16 bits")
        chunks: list[PacketChunk] = []
        i, n = 0, len(symbols)
        while i < n:
            run = 1
            while i + run < n and run < 0x1FFF and symbols[i + run] == symbols[i]:
                run += 1
            if run >= 7:
                chunks.append(RunLengthChunk(symbols[i], run))
                i += run
            elif LARGE_DELTA not in symbols[i : i + 14]:
                chunks.append(StatusVectorChunk(1, tuple(symbols[i : i + 14]) + (0,) * max(0, i + 14 - n)))
                i += 14
            else:
                chunks.append(StatusVectorChunk(2, tuple(symbols[i : i + 7]) + (0,) * max(0, i + 7 - n)))
                i += 7
        received = tuple(d for d in deltas if d is not None)
        return cls(
            sender_ssrc, media_ssrc, base_sequence_number, n, reference_time,
            feedback_packet_count, tuple(chunks), received,
        )

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "TransportFeedback":
        reader = Reader(body, "transport-cc")
        sender, media, base, status_count = struct.unpack("!IIHH", reader.view(12))
        reference = int.from_bytes(reader.view(3), "big", signed=True)
        fb_count = reader.u8()
        chunks: list[PacketChunk] = []
        covered = 0
        reader.what = "transport-cc packet chunk"
        while covered < status_count:
            chunk = decode_chunk(reader.u16())
            chunks.append(chunk)
            covered += len(chunk.symbols)
        reader.what = "transport-cc recv delta"
        deltas = []
        symbols = [s for chunk in chunks for s in chunk.symbols][:status_count]
        for symbol in symbols:
            if symbol == SMALL_DELTA:
                deltas.append(reader.u8())
            elif symbol == LARGE_DELTA:
                deltas.append(int.from_bytes(reader.view(2), "big", signed=True))
            elif symbol == 3:
                raise DecodeError("transport-cc status symbol 3 is reserved")
        tail = reader.rest()
        if len(tail) > 3 or any(tail):
            raise DecodeError(f"transport-cc has {len(tail)} trailing bytes after the deltas")
        return cls(
            sender, media, base, status_count, reference, fb_count, tuple(chunks), tuple(deltas), padding
        )

    def _body(self) -> tuple[int, bytes]:
        out = bytearray(
            struct.pack(
                "!IIHH", self.sender_ssrc, self.media_ssrc, self.base_sequence_number,
                self.packet_status_count,
            )
        )
        out += self.reference_time.to_bytes(3, "big", signed=True)
        out.append(self.feedback_packet_count)
        for chunk in self.chunks:
            out += chunk.encode().to_bytes(2, "big")
        received = [s for s in self.statuses() if s != NOT_RECEIVED]
        if len(received) != len(self.recv_deltas):
            raise LocalProtocolError("one receive delta per received packet")
        for symbol, delta in zip(received, self.recv_deltas):
            out += bytes((delta,)) if symbol == SMALL_DELTA else delta.to_bytes(2, "big", signed=True)
        out += bytes(padding_length(len(out) + len(self.padding)))
        return self.fmt, bytes(out)
