"""
Where a session's incoming media goes: RTP routed to tracks by SSRC, RTCP terminated.

:class:`MediaRouting` is the part of :class:`~realtime.sfu.session.SfuSession`
that runs for every decrypted packet (the connection's ``media_sink``)::

    RTP  ──ssrc──> routes[ssrc] ─hit─> PublishedTrack.receive_rtp(packet, stream, now)
                        │ miss
                        └─> _learn: MID extension (RFC 8843 §9.2) -> transceiver -> track,
                            RtpStreamId (RFC 8852 §3.1) -> simulcast layer; a
                            RepairedRtpStreamId or an RTX payload type -> dropped
                            (the SFU answers NACKs itself and asks for no RTX)
    RTCP ──decode_compound──> PLI (RFC 4585 §6.3.1), FIR (RFC 5104 §4.3.1) -> keyframe request
                              generic NACK (RFC 4585 §6.2.1) -> retransmission from the buffer
                              everything else (SR, RR, SDES, BYE, REMB, transport-cc): consumed

Hostile input: a datagram too short for RTP, a malformed extension block or
an undecodable RTCP compound is counted in ``counters`` and dropped; routes
are bounded by :data:`MAX_ROUTES`.
"""

from __future__ import annotations

import struct
from typing import Any

from realtime.demux import PacketKind
from realtime.errors import DecodeError
from realtime.rtcp.feedback import FullIntraRequest, GenericNack, PictureLossIndication
from realtime.rtcp.packet import decode_compound
from realtime.rtp.packet import find_extension
from realtime.sfu.track import PublishedTrack
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

    Expects ``routes``, ``subscriptions``, ``transceivers``, ``counters`` and
    ``transceiver(mid)`` on the instance.
    """

    routes: dict[int, Any]
    subscriptions: dict[int, Any]
    transceivers: list[Transceiver]
    counters: Any

    def transceiver(self, mid: str) -> Transceiver | None:  # pragma: no cover - overridden
        """Return the transceiver of m= section ``mid``."""
        raise NotImplementedError


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
        transceiver = self.transceiver(mid) if mid is not None else self._only_publisher()
        track = transceiver.track if transceiver is not None else None
        if track is not None and repaired is None and not self._is_rtx(track, packet):
            stream = track.learn(ssrc, rid)
            if stream is not None:
                route = (track, stream)
        if mid is not None or route is not None:
            self.routes[ssrc] = route
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

    def _only_publisher(self) -> Transceiver | None:
        publishers = [t for t in self.transceivers if t.track is not None and not t.track.ended]
        return publishers[0] if len(publishers) == 1 else None

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
        for item in packets:
            if isinstance(item, (PictureLossIndication, GenericNack)):
                subscription = self.subscriptions.get(item.media_ssrc)
                if subscription is None:
                    continue
                if isinstance(item, GenericNack):
                    subscription.receive_nack(item.lost_sequence_numbers(), now)
                else:
                    subscription.receive_keyframe_request(now)
            elif isinstance(item, FullIntraRequest):
                for entry in item.entries:
                    subscription = self.subscriptions.get(entry.ssrc)
                    if subscription is not None:
                        subscription.receive_keyframe_request(now)
