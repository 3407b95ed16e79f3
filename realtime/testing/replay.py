"""
``realtime-replay FILE``: print one line per payload of a capture.

Each line reads::

    <seconds since first packet> <transport> <src> -> <dst> <kind> <summary>
      0.000214 udp 127.0.0.1:50371 -> 127.0.0.1:3478 STUN BINDING request tid=... FINGERPRINT=0x...

``kind`` is the RFC 7983 class from :func:`realtime.demux.classify`;
``summary`` comes from :data:`SUMMARIZERS`, a table from kind to a function
``bytes -> str`` (STUN, ChannelData, and from
:mod:`realtime.testing.media_summary` the clear RTP header, the clear SRTCP
header and the DTLS record headers).  A payload a summarizer cannot decode
prints ``undecodable: <message>`` -- the tool never prints a traceback for
packet contents.

With keys, SRTP and SRTCP are decrypted through :mod:`realtime.srtp` and the
inner packet follows a ``|``::

    1.203117 udp 127.0.0.1:36873 -> 127.0.0.1:51471 RTCP first=SR length=6 ssrc=0x5e1c0e9b encrypted=72 | SR ssrc=0x5e1c0e9b ...; SDES 0x5e1c0e9b cname="..."

``--srtp-keys FILE`` reads keys written by ``twistd realtime --srtp-keylog``
(or the shared captures' ``NAME.srtp.json``, :mod:`realtime.testing.srtp_keys`);
``--keylog FILE`` derives them from an NSS key log and the DTLS hellos in
the capture (:mod:`realtime.testing.dtls_keys`), and also decrypts every
protected DTLS record (:mod:`realtime.testing.dtls_plaintext`): after a
``|`` come the Finished messages, alerts, and the SCTP packets of
DataChannels with their chunks, DCEP and message previews
(:mod:`realtime.testing.sctp_summary`)::

    2.104 udp ... DTLS application_data v=0xfefd epoch=1 seq=4 length=73 | SCTP 5000>5000 vtag=0x... DATA tsn=1 sid=0 ssn=0 ppid=50 len=16 DCEP OPEN label="chat" ...  ``--extmap 4=mid`` names
header extension ids.  ``--stats`` ends with a ``#`` line counting kinds,
undecodable payloads and decryptions.

TCP is reassembled per direction (:func:`~realtime.testing.captures.tcp_streams`)
and split into frames: STUN and ChannelData by their length fields
(:mod:`realtime.stun.stream`, RFC 8656 §11.5), TLS by its 5-byte record
header (``tls`` lines show the record type).  Bytes that frame as neither
(RFC 6062 data connections, garbage) print as ``data`` per segment.  A frame
is stamped with the time of the segment that completed it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Iterable, Iterator

from collections import Counter
from functools import partial

from realtime.addresses import Address
from realtime.demux import PacketKind, classify
from realtime.errors import DecodeError, LocalProtocolError
from realtime.rtp.packet import RtpPacket
from realtime.testing.dtls_keys import derive_srtp_keys, read_nss_keylog
from realtime.testing.dtls_plaintext import DtlsDecryptor, summarize_plaintext
from realtime.testing.media_summary import (
    summarize_dtls,
    summarize_rtcp_compound,
    summarize_rtcp_header,
    summarize_rtp_header,
)
from realtime.testing.srtp_keys import SrtpDecryptor, SrtpKeys, load_srtp_keys
from realtime.stun.message import StunMessage, is_stun
from realtime.stun.stream import split_stream
from realtime.testing.captures import CaptureRecord, read_capture, tcp_streams
from realtime.wire import Reader


def summarize_stun(payload: bytes) -> str:
    """Return method, class, transaction id and attribute summaries of a STUN message."""
    return StunMessage.decode(payload).summary()


def summarize_channel_data(payload: bytes) -> str:
    """Return the channel number and length of a TURN ChannelData message (RFC 8656 §12.4)."""
    reader = Reader(payload, "ChannelData")
    channel = reader.u16()
    length = reader.u16()
    if length > reader.remaining:
        raise DecodeError(f"ChannelData length {length} exceeds the {reader.remaining} bytes after the header")
    extra = reader.remaining - length
    return f"channel=0x{channel:04x} length={length}" + (f" padding={extra}" if extra else "")


SUMMARIZERS: dict[PacketKind, Callable[[bytes], str]] = {
    PacketKind.STUN: summarize_stun,
    PacketKind.CHANNEL_DATA: summarize_channel_data,
    PacketKind.RTP: summarize_rtp_header,
    PacketKind.RTCP: summarize_rtcp_header,
    PacketKind.DTLS: summarize_dtls,
}
"""Payload kind -> summary function; kinds not listed print their length."""

_TLS_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}


def payload_kind(payload: bytes) -> PacketKind:
    """Return :func:`~realtime.demux.classify` of ``payload``, widened for old TURN channels.

    RFC 7983 reserves only 64-79 for ChannelData (channels 0x4000-0x4FFF of
    RFC 8656 §12), but RFC 5766 allowed channels up to 0x7FFF and coturn
    still hands them out (0x6a21 in the captures), so 80-127 count as
    ChannelData here too.
    """
    kind = classify(payload)
    if kind is PacketKind.UNKNOWN and payload and 0x50 <= payload[0] <= 0x7F:
        return PacketKind.CHANNEL_DATA
    return kind


def summarize(payload: bytes, table: dict[PacketKind, Callable[[bytes], str]] | None = None
              ) -> tuple[str, str]:
    """Return ``(kind name, summary)`` of one payload, never raising for its contents."""
    kind = payload_kind(payload)
    summarizer = (table or SUMMARIZERS).get(kind)
    if summarizer is None:
        return kind.name, f"{len(payload)} bytes"
    try:
        return kind.name, summarizer(payload)
    except DecodeError as exc:
        return kind.name, f"undecodable: {exc}"


def _address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tls_records(data: bytes) -> tuple[list[tuple[int, int, str]], int]:
    """Return ``(start, end, summary)`` of each whole TLS record and where parsing stopped."""
    records = []
    offset = 0
    while offset + 5 <= len(data):
        content_type = data[offset]
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        end = offset + 5 + length
        if content_type not in _TLS_TYPES or end > len(data):
            break
        version = data[offset + 1 : offset + 3].hex()
        records.append((offset, end, f"{_TLS_TYPES[content_type]} version=0x{version} length={length}"))
        offset = end
    return records, offset


def _stream_pieces(data: bytes) -> list[tuple[int, int, str, str]]:
    """Return ``(start, end, kind, summary)`` for the frames of one TCP direction.

    A stream whose first frame is not an RFC 5389 STUN message is not a
    STUN/TURN connection (every one starts with a request) and shows as
    data; after ConnectionBind (RFC 6062 §4.3) the rest of the stream is
    relayed data too.
    """
    pieces = []
    stopped = 0
    if data[:1] and 20 <= data[0] <= 23 and data[1:2] == b"\x03":
        records, stopped = _tls_records(data)
        pieces += [(start, end, "tls", text) for start, end, text in records]
    elif is_stun(data[: 20 + int.from_bytes(data[2:4], "big")]):
        frames, _ = split_stream(data)
        for frame in frames:
            kind, text = summarize(frame)
            pieces.append((stopped, stopped + len(frame), kind, text))
            stopped += len(frame)
            if text.startswith(("CONNECTION-BIND request", "CONNECTION-BIND success")):
                break
    if stopped < len(data):
        pieces.append((stopped, len(data), "data", ""))
    return pieces


def _tcp_lines(records: list[CaptureRecord]) -> list[tuple[float, Address, Address, str, str]]:
    """Return ``(time, src, dst, kind, summary)`` for every frame of every TCP direction."""
    segments: dict[tuple[Address, Address], list[tuple[int, int, float]]] = {}
    isn: dict[tuple[Address, Address], int] = {}
    for rec in records:
        if rec.transport != "tcp" or rec.tcp_seq is None:
            continue
        key = (rec.src, rec.dst)
        if key not in isn:
            isn[key] = rec.tcp_seq + (1 if "S" in rec.tcp_flags else 0)
            segments[key] = []
        if rec.payload:
            start = (rec.tcp_seq - isn[key]) & 0xFFFFFFFF
            segments[key].append((start, start + len(rec.payload), rec.time))
    lines = []
    for key, data in tcp_streams(records).items():
        segs = sorted(segments.get(key, []), key=lambda s: (s[1], s[2]))
        for start, end, kind, text in _stream_pieces(data):
            if kind == "data":  # unframed bytes: one line per segment
                for seg_start, seg_end, when in segs:
                    if seg_end > start and seg_start < end:
                        size = min(seg_end, end) - max(seg_start, start)
                        lines.append((when, key[0], key[1], "data", f"{size} bytes"))
                continue
            when = next((t for _, seg_end, t in segs if seg_end >= end), segs[-1][2] if segs else 0.0)
            lines.append((when, key[0], key[1], kind, text))
    return lines


def decrypted_summary(kind: str, payload: bytes, src: Address, dst: Address,
                      decryptor: SrtpDecryptor) -> str:
    """Return ``" | <inner packet>"`` for an SRTP/SRTCP datagram, or "" when no key covers it."""
    try:
        clear = decryptor.unprotect(kind == "RTCP", payload, src, dst)
        if clear is None:
            return ""
        if kind == "RTCP":
            return " | " + summarize_rtcp_compound(clear)
        packet = RtpPacket.decode(clear)
    except DecodeError as exc:
        return f" | undecodable: {exc}"
    padding = f" padding={packet.padding_size}" if packet.padding_size else ""
    return f" | payload={len(packet.payload)}{padding}"


def capture_lines(path: str, keys: list[SrtpKeys] | None = None, keylog: str | None = None,
                  extmap: dict[int, str] | None = None,
                  stats: Counter[str] | None = None) -> Iterator[str]:
    """Yield the replay lines of the capture at ``path``, in time order.

    :param keys: SRTP keys (:func:`~realtime.testing.srtp_keys.load_srtp_keys`).
    :param keylog: an NSS key log to derive more SRTP keys from the capture's DTLS.
    :param extmap: RTP header extension id -> name for the RTP summaries.
    :param stats: if given, counts lines per kind, ``undecodable`` and the
        decryptor's ``srtp``/``srtcp``/``*-failed``/``*-no-key``.
    """
    records = list(read_capture(path))
    keys = list(keys or [])
    dtls = None
    if keylog:
        secrets = read_nss_keylog(keylog)
        udp = ((r.src, r.dst, r.payload) for r in records
               if r.transport == "udp" and r.payload and classify(r.payload) is PacketKind.DTLS)
        keys += derive_srtp_keys(udp, secrets)
        dtls = DtlsDecryptor(secrets)
    decryptor = SrtpDecryptor(keys) if keys else None
    table = dict(SUMMARIZERS)
    if extmap:
        table[PacketKind.RTP] = partial(summarize_rtp_header, names=extmap)
    entries: list[tuple[float, int, str, Address, Address, str, str]] = []
    for index, rec in enumerate(records):
        if rec.transport == "udp":
            kind, text = summarize(rec.payload, table)
            if decryptor is not None and kind in ("RTP", "RTCP") and "undecodable:" not in text:
                text += decrypted_summary(kind, rec.payload, rec.src, rec.dst, decryptor)
            elif dtls is not None and kind == "DTLS":
                opened = dtls.open_datagram(rec.src, rec.dst, rec.payload)
                if opened:
                    text += " | " + "; ".join(summarize_plaintext(o, stats) for o in opened)
            entries.append((rec.time, index, "udp", rec.src, rec.dst, kind, text))
        elif rec.transport == "sctp":
            entries.append((rec.time, index, "sctp", rec.src, rec.dst, "SCTP", f"{len(rec.payload)} bytes"))
    for when, src, dst, kind, text in _tcp_lines(records):
        entries.append((when, len(records), "tcp", src, dst, kind, text))
    entries.sort(key=lambda e: (e[0], e[1]))
    start = records[0].time if records else 0.0
    for when, _, transport, src, dst, kind, text in entries:
        if stats is not None:
            stats[kind] += 1
            stats["undecodable"] += "undecodable:" in text
        yield f"{when - start:10.6f} {transport} {_address(src)} -> {_address(dst)} {kind} {text}".rstrip()
    if stats is not None and decryptor is not None:
        stats.update(decryptor.counts)
    if stats is not None and dtls is not None:
        stats.update(dtls.counts)


def _extmap(value: str) -> tuple[int, str]:
    ext_id, equals, name = value.partition("=")
    if not equals or not ext_id.isdigit() or not 1 <= int(ext_id) <= 255 or not name:
        raise argparse.ArgumentTypeError(f"{value!r} is not ID=NAME (ID 1-255)")
    return int(ext_id), name


def build_parser() -> argparse.ArgumentParser:
    """Return the ``realtime-replay`` argument parser (its ``--help`` documents every option)."""
    parser = argparse.ArgumentParser(
        prog="realtime-replay", description=__doc__.split("\n\n")[0].strip().replace("``", ""),
        epilog="Lines: SECONDS TRANSPORT SRC -> DST KIND SUMMARY. KIND is the RFC 7983 class "
               "(STUN, DTLS, RTP, RTCP, CHANNEL_DATA ...). With keys, SRTP/SRTCP lines end with "
               "'| <decrypted packet>'. See docs/replay.md.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="pcap or pcapng capture")
    parser.add_argument("--srtp-keys", metavar="KEYS", action="append", default=[],
                        help="SRTP master keys: JSON lines of 'twistd realtime --srtp-keylog', or "
                             "a NAME.srtp.json of the shared captures (repeatable)")
    parser.add_argument("--keylog", metavar="KEYLOG",
                        help="NSS key log (CLIENT_RANDOM lines, 'twistd realtime --dtls-keylog'); "
                             "SRTP keys are derived from it and the capture's DTLS 1.2 hellos, "
                             "and DTLS records are decrypted: SCTP chunks, DCEP, DataChannel "
                             "messages")
    parser.add_argument("--extmap", metavar="ID=NAME", type=_extmap, action="append", default=[],
                        help="name an RTP header extension id in RTP lines, e.g. 4=mid 10=rid "
                             "(repeatable; the ids are the a=extmap lines of the SDP)")
    parser.add_argument("--stats", action="store_true",
                        help="end each capture with a '#' line counting kinds, undecodable "
                             "payloads, and SRTP/SRTCP decrypted, failed and without key")
    return parser


def main(argv: Iterable[str] | None = None, out=None) -> int:
    """Run ``realtime-replay``: print the lines of each capture named on the command line."""
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    out = out or sys.stdout
    keys: list[SrtpKeys] = []
    for path in args.srtp_keys:
        try:
            keys += load_srtp_keys(path)
        except (OSError, ValueError, KeyError, TypeError, LocalProtocolError) as exc:
            parser.error(f"--srtp-keys {path}: {exc!r}")
    try:
        _print_captures(args, keys, out)
    except BrokenPipeError:  # ``realtime-replay FILE | head``
        sys.stdout = open(os.devnull, "w")
    return 0


def _print_captures(args: argparse.Namespace, keys: list[SrtpKeys], out) -> None:
    for path in args.files:
        if len(args.files) > 1:
            print(f"# {path}", file=out)
        stats: Counter[str] = Counter()
        for line in capture_lines(path, keys, args.keylog, dict(args.extmap), stats):
            print(line, file=out)
        if args.stats:
            print("# " + " ".join(f"{k}={v}" for k, v in sorted(stats.items())), file=out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
