"""
Where a session's incoming media goes: RTP routed to tracks by SSRC, RTCP terminated.

:class:`MediaRouting` is the part of :class:`~realtime.sfu.session.SfuSession`
that runs for every decrypted packet (the connection's ``media_sink``)::

    RTP  ──ssrc──> routes[ssrc] ─hit─> PublishedTrack.receive_rtp(packet, stream, now)
                        │                or RtxRepair.receive_rtp: RTX (RFC 4588 §4) answering
                        │                our upstream NACK -> the original -> the track
                        │ miss
                        └─> _learn: MID extension (RFC 8843 §9.2) -> transceiver -> track,
                            else a payload type unique to one publishing section (§9.2),
                            RtpStreamId (RFC 8852 §3.1) -> simulcast layer,
                            RepairedRtpStreamId (RFC 8852 §3.2) -> RtxRepair of that layer
    RTCP ──decode_compound (once)──> RtcpLegs (realtime/sfu/rtcp_legs.py):
             publisher leg: SR (for our RRs' LSR/DLSR), BYE
             subscriber leg: generic NACK (RFC 4585 §6.2.1) -> retransmission from the buffer,
                             PLI (RFC 4585 §6.3.1), FIR (RFC 5104 §4.3.1) -> keyframe request,
                             RR (round trip), REMB (the subscriber's estimate)
             everything else (SDES, transport-cc, unknown): consumed

The session's timer is the RTCP legs' timer (:meth:`MediaRouting.get_timer`,
:meth:`MediaRouting.handle_timer`); the I/O side folds it into the
connection's.

Hostile input: a datagram too short for RTP, a malformed extension block or
an undecodable RTCP compound is counted in ``counters`` and dropped; routes
are bounded by :data:`MAX_ROUTES`.
"""

from __future__ import annotations

import struct
from typing import Any

from realtime.demux import PacketKind
from realtime.errors import DecodeError
from realtime.rtcp.packet import decode_compound
from realtime.rtp.packet import find_extension
from realtime.sfu.rtcp_legs import RtcpLegs
from realtime.sfu.track import PublishedStream, PublishedTrack, RtxRepair
from realtime.sfu.transceiver import BIDIRECTIONAL, PUBLISH, Transceiver

__all__ = ["MAX_ROUTES", "MediaRouting"]

_SSRC = struct.Struct("!I")
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
#: most SSRCs one session routes (signalled + learned)
MAX_ROUTES = 256


class MediaRouting:
    """Route a session's decrypted media; mixed into :class:`~realtime.sfu.session.SfuSession`.

    Expects ``routes``, ``subscriptions``, ``transceivers``, ``counters``,
    ``rtcp`` (:class:`~realtime.sfu.rtcp_legs.RtcpLegs`) and
    ``transceiver(mid)`` on the instance.
    """

    routes: dict[int, Any]
    subscriptions: dict[int, Any]
    transceivers: list[Transceiver]
    counters: Any
    rtcp: RtcpLegs

    def transceiver(self, mid: str) -> Transceiver | None:  # pragma: no cover - overridden
        """Return the transceiver of m= section ``mid``."""
        raise NotImplementedError

    # -- the session's timer: its RTCP legs ------------------------------------------

    def get_timer(self) -> float | None:
        """Return the next deadline of the session's RTCP (reports, NACKs, keyframe requests)."""
        return self.rtcp.get_timer()

    def handle_timer(self, now: float) -> None:
        """Send the RTCP that is due (the I/O side calls this from the connection's timer)."""
        self.rtcp.handle_timer(now)

    @staticmethod
    def repair_route(track: PublishedTrack, stream: PublishedStream | None
                     ) -> tuple[RtxRepair, PublishedStream] | None:
        """Return the route of an RTX SSRC repairing ``stream`` (None: nothing to repair)."""
        if stream is None:
            return None
        apt = {c.payload_type: c.apt for c in track.codecs if c.is_rtx and c.apt is not None}
        return (RtxRepair(track, apt), stream) if apt else None

    def receive_media(self, kind: PacketKind, packet: bytes, now: float) -> None:
        """Route a decrypted RTP packet to its track; terminate an RTCP compound."""
        if kind is PacketKind.RTP:
            if len(packet) < 12:
                self.counters["rtp-malformed"] += 1
                return
            ssrc = _SSRC.unpack_from(packet, 8)[0]
            route = self.routes.get(ssrc, False)
            if route is False:
                route = self._learn(ssrc, packet)
            if route is None:
                self.counters["rtp-unrouted"] += 1
                return
            try:
                route[0].receive_rtp(packet, route[1], now)
            except DecodeError:
                self.counters["rtp-malformed"] += 1
        else:
            self._receive_rtcp(packet, now)

    def _learn(self, ssrc: int, packet: bytes) -> tuple[PublishedTrack, Any] | None:
        """Route an unsignalled SSRC by its MID/RID header extensions (RFC 8843 §9.2, RFC 8852)."""
        if len(self.routes) >= MAX_ROUTES:
            return None
        route = None
        try:
            mid, rid, repaired = self._extension_values(packet)
        except DecodeError:
            return None
        if mid is not None:
            transceiver = self.transceiver(mid)
        else:
            transceiver = self._publisher_of_payload_type(packet[1] & 0x7F)
        track = transceiver.track if transceiver is not None else None
        if track is not None and repaired is not None:
            route = self.repair_route(track, track.by_rid.get(repaired))
        elif track is not None and not self._is_rtx(track, packet):
            stream = track.learn(ssrc, rid)
            if stream is not None:
                route = (track, stream)
        if route is not None or (mid is not None and repaired is None):
            self.routes[ssrc] = route  # an RTX stream seen before its layer: ask again later
        return route

    def _extension_values(self, packet: bytes) -> tuple[str | None, str | None, str | None]:
        values = []
        for uri in (MID_URI, RID_URI, REPAIRED_RID_URI):
            ext_id = self._extension_id(uri)
            value = find_extension(packet, ext_id) if ext_id is not None else None
            values.append(value.decode("ascii", "replace") if value else None)
        return values[0], values[1], values[2]

    def _extension_id(self, uri: str) -> int | None:
        for transceiver in self.transceivers:
            if transceiver.media is not None and transceiver.role in (PUBLISH, BIDIRECTIONAL):
                ext_id = transceiver.media.extension_id(uri)
                if ext_id is not None:
                    return ext_id
        return None

    def _publisher_of_payload_type(self, pt: int) -> Transceiver | None:
        """Return the one publishing section whose payload types include ``pt`` (RFC 8843 §9.2).

        Without a=ssrc and the MID extension (webrtcbin offering before caps
        flow), a payload type that only one receiving section negotiated
        names it.  A lone publishing section takes every packet.
        """
        publishers = [t for t in self.transceivers if t.track is not None and not t.track.ended]
        if len(publishers) == 1:
            return publishers[0]
        owners = [t for t in publishers if t.media is not None
                  and any(c.payload_type == pt for c in t.media.codecs)]
        return owners[0] if len(owners) == 1 else None

    @staticmethod
    def _is_rtx(track: PublishedTrack, packet: bytes) -> bool:
        pt = packet[1] & 0x7F
        return any(c.payload_type == pt and c.is_rtx for c in track.codecs)

    def _receive_rtcp(self, packet: bytes, now: float) -> None:
        try:
            packets = decode_compound(packet)
        except DecodeError:
            self.counters["rtcp-malformed"] += 1
            return
        self.rtcp.receive_rtcp(packets, now)
