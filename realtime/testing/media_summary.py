"""
One-line summaries of RTP, RTCP and DTLS datagrams for ``realtime-replay``.

Everything here reads only what travels in the clear, so it works on a
capture without keys:

* **RTP / SRTP** (RFC 3550 §5.1, RFC 3711 §3.1): the 12-byte fixed header,
  the CSRC list and the RFC 8285 header extension block are never
  encrypted, so :func:`summarize_rtp_header` shows payload type, sequence
  number, timestamp, SSRC, marker and each extension element (ids named
  ``mid``/``rid``/``rrid`` through ``--extmap`` print their text value)::

      RTP pt=96 seq=5012 ts=3811342 ssrc=0x1c9a6e21 M ext=[mid="0" rid="f" 2=00c0a1] size=1043

* **SRTCP** (RFC 3711 §3.4): only the first 8 octets (the header of the
  first packet and the sender SSRC) are clear; :func:`summarize_rtcp_header`
  names them and counts the rest as encrypted::

      +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
      |V=2|P|   RC    |   PT=SR=200   |             length            |  clear
      |                         SSRC of sender                        |  clear
      +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
      |          rest of the compound packet ... (encrypted)          |
      |E|                        SRTCP index                          |
      |                 authentication tag (profile-sized)            |

* **RTCP** once decrypted (or plain): :func:`summarize_rtcp_compound` lists
  every packet of the compound (RFC 3550 §6.1) with its key fields: SR/RR
  report blocks, SDES CNAME, BYE, NACK, PLI, FIR, REMB, transport-cc.

* **DTLS** (RFC 6347 §4.1, §4.2.2): :func:`summarize_dtls` lists every
  record of the datagram: content type, version, epoch, sequence number,
  and for epoch-0 handshake records the handshake message types (with
  ``message_seq`` and fragment range when a message is split).  Records of
  later epochs are encrypted and show their length.

Each function takes hostile bytes and raises only
:class:`~realtime.errors.DecodeError`; ``realtime-replay`` prints that as
``undecodable: <message>``.
"""

from __future__ import annotations

from typing import Mapping

from realtime.dtls.record import CiphertextRecord, ContentType, HandshakeType, parse_records
from realtime.errors import DecodeError
from realtime.rtcp.bye import Goodbye
from realtime.rtcp.feedback import (
    FullIntraRequest,
    GenericNack,
    PictureLossIndication,
    ReceiverEstimatedMaxBitrate,
)
from realtime.rtcp.packet import RawRtcpPacket, RtcpPacket, RtcpPacketType, decode_compound
from realtime.rtcp.reports import ReceiverReport, ReportBlock, SenderReport
from realtime.rtcp.sdes import SdesItemType, SourceDescription
from realtime.rtcp.transport_cc import TransportFeedback
from realtime.rtp.extensions import decode_extensions
from realtime.wire import Reader

_TEXT = frozenset(range(0x21, 0x7F))


#: Extension names whose values are RFC 7941 SDES text (RFC 8843 §15.2, RFC 8852 §3).
TEXT_EXTENSIONS = frozenset({"mid", "rid", "rrid", "repaired-rid", "rtp-stream-id",
                             "repaired-rtp-stream-id"})


def extension_value(value: bytes) -> str:
    """Return a text value quoted when it is printable ASCII (a mid, a rid, a CNAME), else hex."""
    if value and all(byte in _TEXT for byte in value) and b'"' not in value:
        return f'"{value.decode("ascii")}"'
    return value.hex()


def _element(ext_id: int, value: bytes, names: Mapping[int, str]) -> str:
    name = names.get(ext_id)
    if name in TEXT_EXTENSIONS:
        return f"{name}={extension_value(value)}"
    return f"{name or ext_id}={value.hex()}"


def summarize_rtp_header(payload: bytes, names: Mapping[int, str] | None = None) -> str:
    """Return the clear header fields of an RTP or SRTP packet.

    :param names: extension id -> name (from ``a=extmap``), e.g. ``{4: "mid"}``;
        values of :data:`TEXT_EXTENSIONS` print as quoted text, every other
        value as hex (ids without a name print as numbers).
    """
    reader = Reader(payload, "RTP header")
    b0, b1 = reader.u8(), reader.u8()
    if b0 >> 6 != 2:
        raise DecodeError(f"RTP version must be 2, got {b0 >> 6}")
    seq, timestamp, ssrc = reader.u16(), reader.u32(), reader.u32()
    parts = [f"pt={b1 & 0x7F} seq={seq} ts={timestamp} ssrc=0x{ssrc:08x}"]
    if b1 & 0x80:
        parts.append("M")
    csrcs = [reader.u32() for _ in range(b0 & 0x0F)]
    if csrcs:
        parts.append("csrc=[" + " ".join(f"0x{c:08x}" for c in csrcs) + "]")
    if b0 & 0x10:
        profile, words = reader.u16(), reader.u16()
        elements = decode_extensions(profile, reader.bytes(4 * words))
        shown = [_element(e.id, e.value, names or {}) for e in elements]
        parts.append(f"ext=[{' '.join(shown)}]" if shown else f"ext=0x{profile:04x}/{words}w")
    if b0 & 0x20:
        parts.append("P")
    parts.append(f"size={len(payload)}")
    return " ".join(parts)


def rtcp_type_name(packet_type: int, count: int) -> str:
    """Return ``SR``, ``RR``, ``RTPFB/15`` ... for a packet type and its count/FMT field."""
    try:
        name = RtcpPacketType(packet_type).name
    except ValueError:
        return f"PT{packet_type}/{count}"
    return f"{name}/{count}" if packet_type in (205, 206) else name


def summarize_rtcp_header(payload: bytes) -> str:
    """Return the clear first 8 octets of an SRTCP packet and the encrypted remainder's size."""
    reader = Reader(payload, "SRTCP header")
    b0, packet_type, words, ssrc = reader.u8(), reader.u8(), reader.u16(), reader.u32()
    if b0 >> 6 != 2:
        raise DecodeError(f"RTCP version must be 2, got {b0 >> 6}")
    first = rtcp_type_name(packet_type, b0 & 0x1F)
    return f"first={first} length={words} ssrc=0x{ssrc:08x} encrypted={reader.remaining}"


def _blocks(reports: tuple[ReportBlock, ...]) -> str:
    return "".join(
        f" [0x{b.ssrc:08x} lost={b.cumulative_lost} frac={b.fraction_lost} "
        f"hseq={b.highest_sequence} jitter={b.jitter}]"
        for b in reports
    )


def summarize_rtcp_packet(packet: RtcpPacket) -> str:
    """Return the name and key fields of one decoded RTCP packet."""
    if isinstance(packet, SenderReport):
        return (f"SR ssrc=0x{packet.ssrc:08x} ntp=0x{packet.ntp_timestamp:016x} "
                f"rtp_ts={packet.rtp_timestamp} packets={packet.packet_count} "
                f"octets={packet.octet_count}" + _blocks(packet.reports))
    if isinstance(packet, ReceiverReport):
        return f"RR ssrc=0x{packet.ssrc:08x}" + _blocks(packet.reports)
    if isinstance(packet, SourceDescription):
        chunks = []
        for chunk in packet.chunks:
            cname = chunk.get(SdesItemType.CNAME)
            chunks.append(f"0x{chunk.ssrc:08x}" + (f" cname={extension_value(cname)}" if cname else ""))
        return "SDES " + ", ".join(chunks)
    if isinstance(packet, Goodbye):
        return "BYE " + " ".join(f"0x{s:08x}" for s in packet.sources)
    if isinstance(packet, GenericNack):
        return f"NACK media=0x{packet.media_ssrc:08x} lost={packet.lost_sequence_numbers()}"
    if isinstance(packet, PictureLossIndication):
        return f"PLI media=0x{packet.media_ssrc:08x}"
    if isinstance(packet, FullIntraRequest):
        return "FIR " + " ".join(f"0x{e.ssrc:08x}#{e.sequence_number}" for e in packet.entries)
    if isinstance(packet, ReceiverEstimatedMaxBitrate):
        ssrcs = " ".join(f"0x{s:08x}" for s in packet.ssrcs)
        return f"REMB bitrate={packet.bitrate} ssrcs=[{ssrcs}]"
    if isinstance(packet, TransportFeedback):
        return (f"TWCC media=0x{packet.media_ssrc:08x} base={packet.base_sequence_number} "
                f"count={packet.packet_status_count} fb#={packet.feedback_packet_count}")
    if isinstance(packet, RawRtcpPacket):
        return f"{rtcp_type_name(packet.type, packet.count)} {len(packet.body)} bytes"
    return type(packet).__name__  # pragma: no cover - every decoder is listed above


def summarize_rtcp_compound(payload: bytes) -> str:
    """Return every packet of a clear compound RTCP datagram, separated by ``; ``."""
    return "; ".join(summarize_rtcp_packet(p) for p in decode_compound(payload))


def _handshake_names(fragment: bytes) -> str:
    reader = Reader(fragment, "DTLS handshake")
    names = []
    while reader.remaining:
        msg_type, length = reader.u8(), reader.u24()
        message_seq, offset, size = reader.u16(), reader.u24(), reader.u24()
        reader.bytes(size)
        try:
            name = HandshakeType(msg_type).name
        except ValueError:
            name = f"type{msg_type}"
        split = f"[{offset}:{offset + size}/{length}]" if size != length else ""
        names.append(f"{name}#{message_seq}{split}")
    return ",".join(names)


def summarize_dtls(payload: bytes) -> str:
    """Return one ``content-type version epoch seq`` entry per record of a DTLS datagram."""
    entries = []
    for record in parse_records(payload):
        if isinstance(record, CiphertextRecord):
            entries.append(f"dtls13 flags=0x{record.flags:02x} length={len(record.encrypted_record)}")
            continue
        try:
            name = ContentType(record.content_type).name.lower()
        except ValueError:
            name = f"type{record.content_type}"
        text = (f"{name} v=0x{record.version:04x} epoch={record.epoch} "
                f"seq={record.sequence_number}")
        if record.content_type == ContentType.HANDSHAKE and record.epoch == 0:
            text += " " + _handshake_names(record.fragment)
        else:
            text += f" length={len(record.fragment)}"
        entries.append(text)
    return "; ".join(entries)
