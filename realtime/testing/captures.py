"""
Reading packet captures (pcap and pcapng) into ``(time, 5-tuple, payload)``.

A capture record is exactly what a sans-I/O machine consumes: the time a
datagram arrived, who sent it to whom, and its bytes.  This module turns a
capture file into :class:`CaptureRecord` values through scapy (the only place
that parses link, IP and transport headers here), so a test can replay a
capture into the very code the server runs.

TCP segments are yielded one by one as captured; :func:`tcp_streams`
reassembles each direction of each connection into one byte string, which
is what a stream-framed protocol (STUN/TURN over TCP, RFC 8489 §6.2.2) parses.

The shared captures live outside the project (``../shared/pcaps``) and are
read in place: :func:`shared_dir` finds them (or returns None: the tests
skip, or fail under ``REALTIME_INTEROP=required``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from realtime.addresses import Address


@dataclass(frozen=True, slots=True)
class CaptureRecord:
    """One transport payload from a capture.

    :ivar time: capture timestamp in seconds (float, epoch).
    :ivar transport: ``"udp"``, ``"tcp"`` or ``"sctp"``.
    :ivar src: (host, port) of the sender.
    :ivar dst: (host, port) of the receiver.
    :ivar payload: the transport payload (for SCTP: the whole SCTP packet).
    :ivar tcp_seq: the TCP sequence number of the segment (TCP only).
    :ivar tcp_flags: TCP flags as a string such as ``"PA"`` (TCP only).
    """

    time: float
    transport: str
    src: Address
    dst: Address
    payload: bytes
    tcp_seq: int | None = None
    tcp_flags: str = ""

    @property
    def five_tuple(self) -> tuple[str, Address, Address]:
        """Return ``(transport, src, dst)``."""
        return (self.transport, self.src, self.dst)


def shared_dir() -> Path | None:
    """Return the ``shared/`` folder beside the project, or None if absent.

    ``REALTIME_SHARED`` overrides the location: when it is set, it is the
    only place looked at (an empty or wrong folder gives None, so a test run
    can check what happens without the captures).
    """
    env = os.environ.get("REALTIME_SHARED")
    if env:
        candidates = [Path(env)]
    else:
        here = Path(__file__).resolve()
        candidates = [parent.parent / "shared" for parent in here.parents[1:4]]
        candidates.append(Path.cwd().parent / "shared")
    for path in candidates:
        if (path / "pcaps").is_dir():
            return path
    return None


def read_capture(path: str | os.PathLike[str]) -> Iterator[CaptureRecord]:
    """Yield a :class:`CaptureRecord` for every UDP, TCP and SCTP packet.

    Packets of other protocols (ARP, ICMP, non-IP) are skipped.  pcap, pcapng
    and gzip-compressed files are accepted (scapy detects the format).
    """
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.sctp import SCTP
    from scapy.utils import PcapReader

    with PcapReader(str(path)) as reader:
        for pkt in reader:
            ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
            if ip is None:
                continue
            t = float(pkt.time)
            if UDP in pkt:
                udp = pkt[UDP]
                payload = bytes(udp.payload)
                # scapy may dissect the payload; bytes() re-serialises it as sent.
                if udp.len is not None and udp.len >= 8:
                    payload = payload[: udp.len - 8]
                yield CaptureRecord(t, "udp", (ip.src, udp.sport), (ip.dst, udp.dport), payload)
            elif TCP in pkt:
                tcp = pkt[TCP]
                payload = bytes(tcp.payload) if tcp.payload else b""
                yield CaptureRecord(
                    t, "tcp", (ip.src, tcp.sport), (ip.dst, tcp.dport), payload,
                    tcp_seq=tcp.seq, tcp_flags=str(tcp.flags),
                )
            elif SCTP in pkt:
                sctp = pkt[SCTP]
                yield CaptureRecord(t, "sctp", (ip.src, sctp.sport), (ip.dst, sctp.dport), bytes(sctp))


def tcp_streams(records: Iterator[CaptureRecord] | list[CaptureRecord]) -> dict[tuple[Address, Address], bytes]:
    """Reassemble the TCP payloads of ``records`` per direction.

    Segments are placed by sequence number relative to the SYN (or the first
    segment seen); retransmitted bytes are written once.  Returns a mapping
    ``(src, dst) -> bytes`` in the order connections were first seen.
    """
    isn: dict[tuple[Address, Address], int] = {}
    pieces: dict[tuple[Address, Address], dict[int, bytes]] = {}
    for rec in records:
        if rec.transport != "tcp" or rec.tcp_seq is None:
            continue
        key = (rec.src, rec.dst)
        if key not in isn:
            isn[key] = rec.tcp_seq + (1 if "S" in rec.tcp_flags else 0)
            pieces[key] = {}
        if rec.payload:
            offset = (rec.tcp_seq - isn[key]) & 0xFFFFFFFF
            pieces[key].setdefault(offset, rec.payload)
    streams: dict[tuple[Address, Address], bytes] = {}
    for key, parts in pieces.items():
        buf = bytearray()
        for offset in sorted(parts):
            data = parts[offset]
            if offset > len(buf):
                buf += b"\0" * (offset - len(buf))  # a gap: capture lost a segment
            buf[offset : offset + len(data)] = data
        streams[key] = bytes(buf)
    return streams


def capture_files(root: Path, suffixes: tuple[str, ...] = (".pcap", ".pcapng", ".cap", ".pcapng.gz", ".pcap.gz")) -> list[Path]:
    """Return every capture file below ``root``, sorted by path."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(suffixes))
