"""
The benchmark's own WebRTC endpoint: ICE (controlling), DTLS-SRTP, RTP out.

``bench/forward.py`` needs one publisher and up to a hundred subscribers on
a two-core machine.  aiortc peers decode what they receive and would eat the
CPU being measured, so publisher and subscribers are this small endpoint,
built from the project's codecs and machines (:mod:`realtime.stun.message`,
:mod:`realtime.dtls.endpoint`, :mod:`realtime.srtp.context`) and driven by a
plain ``selectors`` loop in :mod:`forward_load`.  The very same class talks
to all three servers, so the comparison is fair.

One :class:`Leg` is one PeerConnection, BUNDLEd and rtcp-muxed on one UDP
socket bound to 127.0.0.1::

    build_sdp / answer_sdp  --signalling-->  server
                                               |
    Leg.start(remote SDP) ---- Binding request, USE-CANDIDATE (RFC 8445 §7.2.4,
         |                     aggressive nomination, we are controlling:
         |                     the server is ICE-lite or we offered)
         |<--- Binding success  -> nominated address
         |<--> DTLS handshake (RFC 5763: setup from the SDP), keys (RFC 5764 §4.2)
         v
    connected: SRTP out (publisher), RTP counted (subscriber),
               a Binding request every CONSENT_INTERVAL (RFC 7675 consent),
               Binding requests from the server answered at once.

Subscribers read RTP headers in the clear (RFC 3711 §3.1 leaves the header
unencrypted): the arrival time of each new video timestamp is all the
latency measurement needs; :attr:`Leg.verify` makes a leg also decrypt
every video packet and count authentication failures.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import struct
from dataclasses import dataclass, field

from realtime.demux import PacketKind, classify
from realtime.dtls.certificate import Certificate
from realtime.dtls.endpoint import DtlsEndpoint, HandshakeCompleted, HandshakeFailed
from realtime.rtcp.feedback import ReceiverEstimatedMaxBitrate
from realtime.rtcp.reports import ReceiverReport
from realtime.srtp.context import from_dtls_keying
from realtime.stun.attributes import (
    IceControlling, Priority, UseCandidate, Username, XorMappedAddress,
)
from realtime.stun.message import StunClass, StunMessage, StunMethod, encode_message

CHECK_INTERVAL = 0.05
CONSENT_INTERVAL = 2.0
REMB_INTERVAL = 1.0
REMB_BITRATE = 2_000_000
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
CODECS = {"audio": ("opus/48000/2", "minptime=10;useinbandfec=1"), "video": ("VP8/90000", "")}


@dataclass(slots=True)
class Media:
    """One m= section as this endpoint sees it."""

    kind: str
    mid: str
    direction: str
    pt: int | None = None
    ssrcs: list[int] = field(default_factory=list)
    mid_ext: int | None = None
    port: int = 9
    line: str = ""


@dataclass(slots=True)
class RemoteDescription:
    """What the endpoint needs from the server's SDP."""

    ufrag: str
    pwd: str
    fingerprints: list[tuple[str, str]]
    setup: str
    candidates: list[tuple[str, int]]
    media: list[Media]
    ice_lite: bool


def _first(pattern: str, sdp: str, default: str = "") -> str:
    match = re.search(pattern, sdp, re.M)
    return match.group(1).strip() if match else default


def parse_sdp(sdp: str) -> RemoteDescription:
    """Parse the parts of an SDP this endpoint uses (one BUNDLE transport)."""
    sections = re.split(r"\r?\n(?=m=)", sdp)
    media = []
    for section in sections[1:]:
        line = section.splitlines()[0]
        kind, port = line[2:].split()[:2]
        m = Media(kind, _first(r"^a=mid:(\S+)", section), "sendrecv", port=int(port), line=line)
        for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
            if re.search(rf"^a={d}\s*$", section, re.M):
                m.direction = d
        codec = CODECS.get(kind, ("",))[0].split("/")[0]
        if codec:
            pt = _first(rf"^a=rtpmap:(\d+) {codec}/", section)
            m.pt = int(pt) if pt else None
        m.ssrcs = sorted({int(s) for s in re.findall(r"^a=ssrc:(\d+) ", section, re.M)})
        ext = _first(rf"^a=extmap:(\d+)\S* {MID_URI}", section)
        m.mid_ext = int(ext) if ext else None
        media.append(m)
    candidates = []
    for host, port in re.findall(r"^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", sdp, re.M | re.I):
        if ":" not in host and (host, int(port)) not in candidates:
            candidates.append((host, int(port)))
    candidates.sort(key=lambda c: c[0] != "127.0.0.1")  # loopback first
    if not candidates:  # an SDP without candidates: its connection address
        for section in sections[1:]:
            port = int(section.split()[1])
            host = _first(r"^c=IN IP4 (\S+)", section)
            if port and host and host != "0.0.0.0":
                candidates.append((host, port))
                break
    return RemoteDescription(
        ufrag=_first(r"^a=ice-ufrag:(\S+)", sdp), pwd=_first(r"^a=ice-pwd:(\S+)", sdp),
        fingerprints=re.findall(r"^a=fingerprint:(\S+) (\S+)", sdp, re.M),
        setup=_first(r"^a=setup:(\S+)", sdp, "actpass"), candidates=candidates,
        media=media, ice_lite=bool(re.search(r"^a=ice-lite", sdp, re.M)),
    )


class Leg:
    """One PeerConnection of the benchmark: a UDP socket and its machines.

    :param certificate: the DTLS certificate (one per process is enough).
    :param verify: decrypt every video packet and count failures.
    :param host: the IPv4 address to bind and announce.
    """

    def __init__(self, certificate: Certificate, verify: bool = False, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        self.sock.bind((host, 0))
        self.host = host
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.certificate = certificate
        self.verify = verify
        self.ufrag = secrets.token_hex(4)
        self.pwd = secrets.token_hex(16)
        self.tiebreaker = int.from_bytes(os.urandom(8), "big")
        self.remote: RemoteDescription | None = None
        self.dtls_role = "client"
        self.dtls: DtlsEndpoint | None = None
        self.srtp = None
        self.address: tuple[str, int] | None = None
        self.state = "new"
        self.error = ""
        self.local_ssrc = int.from_bytes(os.urandom(4), "big") | 1
        self._transactions: set[bytes] = set()
        self._next_check = 0.0
        self._next_remb = 0.0
        self.video_pt: int | None = None
        self.counting = False
        self.packets = {"audio": 0, "video": 0, "other": 0}
        self.octets = 0
        self.frames: list[tuple[int, float, float]] = []
        self._last_ts = -1
        self.auth_failures = 0

    # -- SDP ------------------------------------------------------------

    def description(self, media: list[Media], setup: str) -> str:
        """Return our SDP (offer or answer) for ``media`` with this leg's transport."""
        accepted = [m.mid for m in media if m.port]
        lines = ["v=0", f"o=- {self.local_ssrc} 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
                 "a=group:BUNDLE " + " ".join(accepted), "a=msid-semantic: WMS bench"]
        for m in media:
            if not m.port:
                lines += [m.line.split()[0][:-1] + "0 " + " ".join(m.line.split()[2:]),
                          "c=IN IP4 0.0.0.0", f"a=mid:{m.mid}", "a=inactive"]
                continue
            rtpmap, fmtp = CODECS[m.kind]
            lines += [f"m={m.kind} {self.port} UDP/TLS/RTP/SAVPF {m.pt}", f"c=IN IP4 {self.host}",
                      f"a=candidate:1 1 udp 2130706431 {self.host} {self.port} typ host",
                      "a=end-of-candidates", f"a=ice-ufrag:{self.ufrag}", f"a=ice-pwd:{self.pwd}",
                      f"a=fingerprint:sha-256 {self.certificate.fingerprint()}",
                      f"a=setup:{setup}", f"a=mid:{m.mid}", f"a={m.direction}", "a=rtcp-mux",
                      f"a=rtpmap:{m.pt} {rtpmap}"]
            if fmtp:
                lines.append(f"a=fmtp:{m.pt} {fmtp}")
            if m.kind == "video":
                lines += [f"a=rtcp-fb:{m.pt} nack pli", f"a=rtcp-fb:{m.pt} goog-remb"]
            if m.mid_ext:
                lines.append(f"a=extmap:{m.mid_ext} {MID_URI}")
            for ssrc in m.ssrcs:
                lines += [f"a=msid:bench {m.kind}", f"a=ssrc:{ssrc} cname:bench",
                          f"a=ssrc:{ssrc} msid:bench {m.kind}"]
        return "\r\n".join(lines) + "\r\n"

    def answer(self, offer: str) -> str:
        """Start from the server's offer; return our recvonly answer (DTLS client)."""
        remote = parse_sdp(offer)
        media = []
        for m in remote.media:
            ok = m.kind in CODECS and m.pt is not None and m.port != 0 and m.direction != "inactive"
            direction = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(m.direction, "recvonly")
            media.append(Media(m.kind, m.mid, direction, m.pt, [], m.mid_ext, 9 if ok else 0, m.line))
        self.dtls_role = "server" if remote.setup == "active" else "client"
        sdp = self.description(media, "active" if self.dtls_role == "client" else "passive")
        self.start(remote)
        return sdp

    def offer(self, media: list[Media]) -> str:
        """Return our offer for ``media`` (setup:actpass); call :meth:`start` with the answer."""
        return self.description(media, "actpass")

    def start(self, remote: RemoteDescription | str) -> None:
        """Take the server's SDP and begin connectivity checks."""
        if isinstance(remote, str):
            remote = parse_sdp(remote)
            self.dtls_role = "server" if remote.setup == "active" else "client"
        self.remote = remote
        videos = [m.pt for m in remote.media if m.kind == "video" and m.pt is not None]
        self.video_pt = videos[0] if videos else None
        if not remote.candidates:
            self.state, self.error = "failed", "no IPv4 host candidate in the server's SDP"
            return
        if self.dtls_role == "server":
            self.dtls = DtlsEndpoint("server", self.certificate, remote.fingerprints)
        self.state = "checking"

    # -- datagrams --------------------------------------------------------

    def _send(self, data: bytes, address: tuple[str, int] | None = None) -> None:
        try:
            self.sock.sendto(data, address or self.address)
        except (BlockingIOError, OSError):
            pass

    def _check(self, address: tuple[str, int]) -> None:
        tid = os.urandom(12)
        self._transactions.add(tid)
        attributes = [Username(f"{self.remote.ufrag}:{self.ufrag}"), Priority(1845501695),
                      IceControlling(self.tiebreaker), UseCandidate()]
        self._send(encode_message(StunMethod.BINDING, StunClass.REQUEST, tid, attributes,
                                  integrity_key=self.remote.pwd.encode(), fingerprint=True), address)

    def _stun(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        try:
            message = StunMessage.decode(data)
        except Exception:
            return
        if message.method != StunMethod.BINDING:
            return
        if message.message_class is StunClass.REQUEST:
            reply = encode_message(StunMethod.BINDING, StunClass.SUCCESS, message.transaction_id,
                                   [XorMappedAddress.of(addr[0], addr[1])],
                                   integrity_key=self.pwd.encode(), fingerprint=True)
            self._send(reply, addr)
        elif message.message_class is StunClass.SUCCESS and message.transaction_id in self._transactions:
            self._transactions.discard(message.transaction_id)
            if self.address is None:
                self.address = addr
                self.state = "dtls"
                if self.dtls_role == "client":
                    self.dtls = DtlsEndpoint("client", self.certificate, self.remote.fingerprints, now=now)
                self._flush_dtls(now)

    def _flush_dtls(self, now: float) -> None:
        dtls = self.dtls
        if dtls is None:
            return
        if self.address is not None:
            for datagram in dtls.datagrams_to_send(now):
                self._send(datagram)
        while (event := dtls.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self.srtp = from_dtls_keying(event.srtp_profile, event.local_keying, event.remote_keying)
                self.state = "connected"
            elif isinstance(event, HandshakeFailed):
                self.state, self.error = "failed", f"DTLS: {event.reason}"

    def receive(self, data: bytes, addr: tuple[str, int], now: float, read_at: float | None = None) -> None:
        """Handle one datagram from the server that arrived at ``now`` and was read at ``read_at``."""
        kind = classify(data)
        if kind is PacketKind.RTP:
            if not self.counting:
                return
            self.octets += len(data)
            pt = data[1] & 0x7F
            if pt == self.video_pt:
                self.packets["video"] += 1
                ts = int.from_bytes(data[4:8], "big")
                if ts != self._last_ts:
                    self._last_ts = ts
                    self.frames.append((ts, now, now if read_at is None else read_at))
                if self.verify:
                    try:
                        self.srtp.unprotect(data)
                    except Exception:
                        self.auth_failures += 1
            elif pt < 64 or pt > 95 and pt != 127:
                self.packets["audio"] += 1
            else:
                self.packets["other"] += 1
        elif kind is PacketKind.STUN:
            self._stun(data, addr, now)
        elif kind is PacketKind.DTLS and self.dtls is not None:
            if self.address is None:
                self.address = addr  # the server's ClientHello proves the path
            self.dtls.receive_datagram(data, now)
            self._flush_dtls(now)

    def tick(self, now: float, remb: bool = False) -> None:
        """Run timers: checks until nominated, consent, DTLS, REMB and RR."""
        if self.state in ("new", "failed"):
            return
        if now >= self._next_check:
            if self.address is None:
                for candidate in self.remote.candidates[:2]:
                    self._check(candidate)
                self._next_check = now + CHECK_INTERVAL
            else:
                self._check(self.address)
                self._next_check = now + CONSENT_INTERVAL
        if self.dtls is not None and self.state == "dtls":
            timer = self.dtls.get_timer()
            if timer is not None and now >= timer:
                self.dtls.handle_timer(now)
            self._flush_dtls(now)
        if remb and self.srtp is not None and now >= self._next_remb:
            self._next_remb = now + REMB_INTERVAL
            ssrcs = [s for m in self.remote.media if m.kind == "video" for s in m.ssrcs]
            report = ReceiverReport(self.local_ssrc).encode()
            estimate = ReceiverEstimatedMaxBitrate.from_bitrate(self.local_ssrc, REMB_BITRATE, ssrcs[:1])
            self._send(self.srtp.protect_rtcp(report + estimate.encode()))

    def send_rtp(self, pt: int, seq: int, ts: int, ssrc: int, payload: bytes,
                 marker: bool = False, mid: tuple[int, bytes] | None = None) -> None:
        """Protect and send one RTP packet (RFC 3550 §5.1, RFC 8285 one-byte mid)."""
        first = 0x90 if mid else 0x80
        header = struct.pack("!BBHII", first, pt | (0x80 if marker else 0), seq, ts, ssrc)
        if mid:
            ext_id, value = mid
            element = bytes([(ext_id << 4) | (len(value) - 1)]) + value
            element += bytes(-len(element) % 4)
            header += struct.pack("!HH", 0xBEDE, len(element) // 4) + element
        self._send(self.srtp.protect(header + payload))

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
