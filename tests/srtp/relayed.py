"""
Pull the SRTP/SRTCP datagrams out of a capture, TURN framing or not.

The keyed SDES captures were taken on WebRTC calls that partly went through
a TURN server, so media sits inside ChannelData (RFC 8656 §12.4) or in the
DATA attribute of Send/Data indications (RFC 8656 §10-11); over TCP the
messages are back to back in the stream, ChannelData padded to 4 octets
(RFC 8656 §12.5).  This test-side reader strips exactly that and nothing
more; it is not the project's TURN codec (realtime/turn owns that).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator

from realtime.demux import PacketKind, classify
from realtime.errors import DecodeError
from realtime.testing.captures import read_capture, tcp_streams
from realtime.wire import Reader, padding_length

Flow = tuple[tuple[str, int], tuple[str, int]]

_SEND_INDICATION = 0x0016  # method Send (0x006), class indication
_DATA_INDICATION = 0x0017  # method Data (0x007), class indication (C0 = bit 4)
_DATA_ATTRIBUTE = 0x0013


def _stun_data(message: bytes) -> bytes | None:
    """Return the DATA attribute of a Send/Data indication, else None."""
    reader = Reader(message, "STUN message")
    msg_type = reader.u16()
    length = reader.u16()
    reader.skip(16)
    if msg_type not in (_SEND_INDICATION, _DATA_INDICATION):
        return None
    body = reader.sub(min(length, reader.remaining), "STUN attributes")
    while body.remaining >= 4:
        attr_type = body.u16()
        attr_len = body.u16()
        value = body.bytes(attr_len)
        body.skip(min(padding_length(attr_len), body.remaining))
        if attr_type == _DATA_ATTRIBUTE:
            return value
    return None


def _unwrap(datagram: bytes) -> bytes | None:
    """Return the RTP/RTCP inside one UDP payload, or None if there is none."""
    kind = classify(datagram)
    if kind in (PacketKind.RTP, PacketKind.RTCP):
        return datagram
    try:
        if kind is PacketKind.CHANNEL_DATA:
            reader = Reader(datagram, "ChannelData")
            reader.skip(2)
            return reader.bytes(reader.u16())
        if kind is PacketKind.STUN:
            return _stun_data(datagram)
    except DecodeError:
        return None
    return None


def _frames(stream: bytes) -> Iterator[bytes]:
    """Split a TURN-over-TCP byte stream into STUN and ChannelData messages."""
    reader = Reader(stream, "TURN/TCP stream")
    while reader.remaining >= 4:
        first = stream[reader.position]
        try:
            if 0x40 <= first <= 0x7F:
                header = reader.bytes(4)
                length = int.from_bytes(header[2:4], "big")
                yield header + reader.bytes(length)
                reader.skip(min(padding_length(length), reader.remaining))
            elif first < 0x04:
                header = reader.bytes(4)
                yield header + reader.bytes(16 + int.from_bytes(header[2:4], "big"))
            else:
                return  # lost segment or a non-TURN stream: stop at the first confusion
        except DecodeError:
            return


@functools.lru_cache(maxsize=4)
def media_datagrams(path: Path, transport: str) -> tuple[tuple[Flow, bytes], ...]:
    """Return ``((src, dst), srtp_or_srtcp)`` for each media packet in the capture.

    Cached: one capture file holds several keyed streams.
    """
    return tuple(_media_datagrams(path, transport))


def _media_datagrams(path: Path, transport: str) -> Iterator[tuple[Flow, bytes]]:
    records = list(read_capture(path))
    if transport == "udp":
        for rec in records:
            if rec.transport == "udp":
                inner = _unwrap(rec.payload)
                if inner is not None and classify(inner) in (PacketKind.RTP, PacketKind.RTCP):
                    yield (rec.src, rec.dst), inner
    # TCP legs (and, for the TURN-server dump, the relayed UDP leg too).
    if transport == "tcp":
        for rec in records:
            if rec.transport == "udp":
                inner = _unwrap(rec.payload)
                if inner is not None and classify(inner) in (PacketKind.RTP, PacketKind.RTCP):
                    yield (rec.src, rec.dst), inner
        for flow, stream in tcp_streams(records).items():
            for frame in _frames(stream):
                inner = _unwrap(frame)
                if inner is not None and classify(inner) in (PacketKind.RTP, PacketKind.RTCP):
                    yield flow, inner
