"""
One-line summaries of decrypted SCTP packets, DCEP and DataChannel messages.

In WebRTC each DTLS application_data record carries one SCTP packet (RFC
8261 §4); once ``realtime-replay --keylog`` has decrypted the record
(:mod:`realtime.testing.dtls_plaintext`), :func:`summarize_sctp` prints the
packet through the project's own codec (:mod:`realtime.sctp.packet`)::

    SCTP 5000>5000 vtag=0x9e3f0c11 DATA tsn=3891 sid=1 ssn=0 ppid=50 len=17 DCEP OPEN label="chat" ...
         |         |               `-- every chunk, "; "-separated (RFC 9260 §3.2)
         |         `-- verification tag of the common header (§3.1)
         `-- source > destination port (5000 by convention, RFC 8841)

Chunk fields use the RFC names: INIT/INIT_ACK ``itag a_rwnd os mis itsn``
(§3.3.2), SACK ``cum_tsn a_rwnd gaps dups`` (§3.3.4), DATA ``tsn sid ssn
ppid`` plus ``U`` (unordered), ``I`` (immediate) and ``frag=B|M|E`` for a
piece of a fragmented message (§3.3.1), RE_CONFIG requests and responses
(RFC 6525 §4), FORWARD_TSN (RFC 3758), ABORT/ERROR causes.  A DATA chunk's
user data is read by its PPID (RFC 8831 §8):

=====  ==================================================================
PPID   shown as
=====  ==================================================================
50     ``DCEP OPEN label="chat" type=RELIABLE priority=256 reliability=0
       protocol=""`` or ``DCEP ACK`` (RFC 8832 §5)
51     ``"hello 0 from chromium"`` (text preview, at most 40 characters)
53     ``deadbeef00010203`` (hex preview, at most 16 bytes)
56/57  ``""`` / ``b""`` (the one-byte empty message)
=====  ==================================================================

Only the first (B) piece of a fragmented message has a preview.  Every
function takes hostile bytes and raises only :class:`~realtime.errors.DecodeError`.
When given a ``counts`` Counter they add ``sctp-<CHUNK>`` per chunk and
``dcep-OPEN`` / ``dcep-ACK`` per DCEP message.
"""

from __future__ import annotations

import json
from collections import Counter

from realtime.datachannel.channels import Ppid
from realtime.datachannel.dcep import ChannelType, DataChannelOpen, decode_dcep
from realtime.errors import DecodeError
from realtime.sctp.chunks import (
    AbortChunk, ChunkType, CookieAckChunk, CookieEchoChunk, DataChunk, ErrorChunk,
    ForwardTsnChunk, HeartbeatChunk, InitChunk, ReconfigChunk, SackChunk, ShutdownAckChunk,
    ShutdownChunk, ShutdownCompleteChunk, UnknownChunk,
)
from realtime.sctp.packet import SctpPacket
from realtime.sctp.parameters import (
    CauseCode, IncomingSsnResetRequest, OutgoingSsnResetRequest, ParameterType,
    ReconfigResult, ReconfigurationResponse,
)

TEXT_PREVIEW = 40
"""Characters of a string message shown before ``…``."""

BINARY_PREVIEW = 16
"""Bytes of a binary message shown (as hex) before ``…``."""


def _name(enum, value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def message_preview(ppid: int, data: bytes) -> str:
    """Return a short text for a DataChannel message of ``ppid`` (quoted text, hex bytes)."""
    if ppid in (Ppid.STRING_EMPTY, Ppid.BINARY_EMPTY):
        return '""' if ppid == Ppid.STRING_EMPTY else 'b""'
    if ppid in (Ppid.STRING, Ppid.STRING_PARTIAL):
        text = data.decode("utf-8", "replace")
        cut = text[:TEXT_PREVIEW]
        return json.dumps(cut, ensure_ascii=False) + ("…" if len(text) > TEXT_PREVIEW else "")
    return data[:BINARY_PREVIEW].hex() + ("…" if len(data) > BINARY_PREVIEW else "")


def summarize_dcep(data: bytes, counts: Counter[str] | None = None) -> str:
    """Return ``DCEP OPEN label=... type=... priority=... reliability=... protocol=...`` or ``DCEP ACK``.

    :raises DecodeError: the DCEP codec's messages (RFC 8832 §5).
    """
    message = decode_dcep(data)
    if isinstance(message, DataChannelOpen):
        if counts is not None:
            counts["dcep-OPEN"] += 1
        return (f"DCEP OPEN label={json.dumps(message.label, ensure_ascii=False)} "
                f"type={_name(ChannelType, message.channel_type)} priority={message.priority} "
                f"reliability={message.reliability} "
                f"protocol={json.dumps(message.protocol, ensure_ascii=False)}")
    if counts is not None:
        counts["dcep-ACK"] += 1
    return "DCEP ACK"


def summarize_data(chunk: DataChunk, counts: Counter[str] | None = None) -> str:
    """Return the fields of a DATA chunk and, for a message's first piece, its content."""
    flags = ("U " if chunk.unordered else "") + ("I " if chunk.immediate else "")
    whole = chunk.beginning and chunk.ending
    frag = "" if whole else " frag=" + ("B" if chunk.beginning else "E" if chunk.ending else "M")
    text = (f"DATA tsn={chunk.tsn} sid={chunk.stream_id} ssn={chunk.stream_seq} "
            f"ppid={chunk.ppid} {flags}len={len(chunk.user_data)}{frag}")
    if not chunk.beginning:
        return text
    if chunk.ppid == Ppid.DCEP:
        if not whole:
            return text + " DCEP (fragmented)"
        try:
            return text + " " + summarize_dcep(chunk.user_data, counts)
        except DecodeError as exc:
            return text + f" DCEP undecodable: {exc}"
    return text + " " + message_preview(chunk.ppid, chunk.user_data)


def _causes(causes) -> str:
    return "[" + " ".join(f"{_name(CauseCode, c.code)}({len(c.info)})" for c in causes) + "]"


def _reconfig_parameter(parameter) -> str:
    if isinstance(parameter, OutgoingSsnResetRequest):
        return (f"OUT_RESET req={parameter.request_seq} resp={parameter.response_seq} "
                f"last_tsn={parameter.last_tsn} streams={list(parameter.streams)}")
    if isinstance(parameter, IncomingSsnResetRequest):
        return f"IN_RESET req={parameter.request_seq} streams={list(parameter.streams)}"
    if isinstance(parameter, ReconfigurationResponse):
        return (f"RESPONSE resp={parameter.response_seq} "
                f"result={_name(ReconfigResult, parameter.result)}")
    return _name(ParameterType, parameter.type)


def summarize_chunk(chunk, counts: Counter[str] | None = None) -> str:
    """Return the RFC-named fields of one SCTP chunk."""
    if isinstance(chunk, DataChunk):
        return summarize_data(chunk, counts)
    if isinstance(chunk, InitChunk):  # and INIT_ACK
        params = ",".join(_name(ParameterType, p.type) for p in chunk.parameters)
        return (f"{chunk.chunk_type.name} itag=0x{chunk.initiate_tag:08x} a_rwnd={chunk.a_rwnd} "
                f"os={chunk.outbound_streams} mis={chunk.inbound_streams} "
                f"itsn={chunk.initial_tsn} params=[{params}]")
    if isinstance(chunk, SackChunk):
        gaps = "".join(f" gap={start}-{end}" for start, end in chunk.gap_blocks)
        dups = f" dups={list(chunk.duplicate_tsns)}" if chunk.duplicate_tsns else ""
        return f"SACK cum_tsn={chunk.cumulative_tsn_ack} a_rwnd={chunk.a_rwnd}{gaps}{dups}"
    if isinstance(chunk, ReconfigChunk):
        return "RE_CONFIG " + ", ".join(_reconfig_parameter(p) for p in chunk.parameters)
    if isinstance(chunk, HeartbeatChunk):  # and HEARTBEAT_ACK
        return ChunkType(chunk.CHUNK_TYPE).name
    if isinstance(chunk, AbortChunk):
        return "ABORT" + (" T" if chunk.reflected else "") + " causes=" + _causes(chunk.causes)
    if isinstance(chunk, ErrorChunk):
        return "ERROR causes=" + _causes(chunk.causes)
    if isinstance(chunk, CookieEchoChunk):
        return f"COOKIE_ECHO cookie={len(chunk.cookie)}"
    if isinstance(chunk, ShutdownChunk):
        return f"SHUTDOWN cum_tsn={chunk.cumulative_tsn_ack}"
    if isinstance(chunk, ForwardTsnChunk):
        streams = " ".join(f"{sid}:{ssn}" for sid, ssn in chunk.streams)
        return f"FORWARD_TSN new_cum_tsn={chunk.new_cumulative_tsn} streams=[{streams}]"
    if isinstance(chunk, UnknownChunk):
        return f"{_name(ChunkType, chunk.type)} flags=0x{chunk.flags:02x} len={len(chunk.value)}"
    return chunk_name(chunk)  # COOKIE_ACK, SHUTDOWN_ACK, SHUTDOWN_COMPLETE


def chunk_name(chunk) -> str:
    """Return the IANA chunk type name of a decoded chunk (``DATA``, ``INIT_ACK`` ...)."""
    if isinstance(chunk, UnknownChunk):
        return _name(ChunkType, chunk.type)
    if isinstance(chunk, InitChunk):
        return chunk.chunk_type.name
    if isinstance(chunk, HeartbeatChunk):
        return ChunkType(chunk.CHUNK_TYPE).name
    return _TYPES[type(chunk)].name


_TYPES = {
    DataChunk: ChunkType.DATA, SackChunk: ChunkType.SACK, AbortChunk: ChunkType.ABORT,
    ErrorChunk: ChunkType.ERROR, CookieEchoChunk: ChunkType.COOKIE_ECHO,
    CookieAckChunk: ChunkType.COOKIE_ACK, ShutdownChunk: ChunkType.SHUTDOWN,
    ShutdownAckChunk: ChunkType.SHUTDOWN_ACK, ShutdownCompleteChunk: ChunkType.SHUTDOWN_COMPLETE,
    ForwardTsnChunk: ChunkType.FORWARD_TSN,
}


def summarize_sctp(data: bytes, counts: Counter[str] | None = None) -> str:
    """Return ``SCTP src>dst vtag=... <chunk>; <chunk> ...`` for one SCTP packet.

    :raises DecodeError: the packet codec's messages (bad CRC-32C, malformed chunk).
    """
    packet = SctpPacket.decode(data)
    summaries = []
    for chunk in packet.chunks:
        if counts is not None:
            counts["sctp-" + chunk_name(chunk)] += 1
        summaries.append(summarize_chunk(chunk, counts))
    return (f"SCTP {packet.source_port}>{packet.destination_port} "
            f"vtag=0x{packet.verification_tag:08x} " + "; ".join(summaries))
