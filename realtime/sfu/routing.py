"""
Where a session's incoming media goes: RTP routed to tracks by SSRC, RTCP terminated.

:class:`MediaRouting` is the component of :class:`~realtime.sfu.session.SfuSession`
that runs for every decrypted packet (its :meth:`~MediaRouting.receive_media` is
the connection's ``media_sink``).  It owns the SSRC routes; the session hands it
what it reads: its m= sections (``transceivers``), its RTCP legs and the
counters drops are reported in::

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
    transport-wide seq (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2), when a
    publishing section negotiated it: every packet's arrival -> TransportFeedbackSender
             (realtime/sfu/twcc.py), reported by the RTCP legs every 100 ms

Hostile input: a datagram too short for RTP, a malformed extension block or
an undecodable RTCP compound is counted in ``counters`` and dropped; routes
are bounded by :data:`MAX_ROUTES`.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Iterable, Protocol

from realtime.demux import PacketKind
from realtime.errors import DecodeError
from realtime.sfu.twcc import TransportFeedbackSender
from realtime.rtcp.packet import decode_compound
from realtime.rtp.extensions import ExtensionUri
from realtime.rtp.packet import HEADER_LENGTH, PAYLOAD_TYPE_MASK, SSRC_OFFSET, find_extension
from realtime.sdp.negotiation import RtpStream
from realtime.sfu.rtcp_legs import RtcpLegs
from realtime.sfu.rtx_repair import RtxRepair
from realtime.sfu.track import PublishedStream, PublishedTrack
from realtime.sfu.transceiver import BIDIRECTIONAL, PUBLISH, Transceiver

__all__ = ["MAX_ROUTES", "MediaRouting", "Route"]

_SSRC = struct.Struct("!I").unpack_from
#: the header extensions that name an unsignalled SSRC's section, layer and repaired layer
_NAMING_URIS = (ExtensionUri.MID, ExtensionUri.RTP_STREAM_ID, ExtensionUri.REPAIRED_RTP_STREAM_ID)
#: most SSRCs one session routes (signalled + learned)
MAX_ROUTES = 256


class MediaReceiver(Protocol):
    """Where a route delivers: a :class:`PublishedTrack`, or the :class:`RtxRepair` of one."""

    def receive_rtp(self, packet: bytes, stream: PublishedStream, now: float) -> None:
        """Take one packet of ``stream`` (:raises DecodeError: it is malformed)."""
        ...


#: What an SSRC routes to: the receiver and the publisher's stream the packets belong to.
Route = tuple[MediaReceiver, PublishedStream]


class MediaRouting:
    """Route one session's decrypted media to its tracks; terminate its RTCP.

    :param transceivers: the session's m= sections, the session's own list (read
        at each lookup, so sections added later are seen).
    :param rtcp: the session's RTCP legs, which take every RTCP compound.
    :param counters: where drops are counted (``rtp-malformed``, ``rtp-unrouted``,
        ``rtcp-malformed``); the session's.
    :ivar routes: SSRC -> route; None marks an SSRC known to route nowhere.
    """

    __slots__ = ("transceivers", "rtcp", "counters", "routes", "twcc", "twcc_id")

    def __init__(self, transceivers: list[Transceiver], rtcp: RtcpLegs,
                 counters: Counter[str]) -> None:
        self.transceivers = transceivers
        self.rtcp = rtcp
        self.counters = counters
        self.routes: dict[int, Route | None] = {}
        #: where transport-wide sequence numbers go (None: not negotiated)
        self.twcc: TransportFeedbackSender | None = None
        self.twcc_id = 0

    def receive_transport_cc(self, ext_id: int | None,
                             feedback: TransportFeedbackSender | None) -> None:
        """Note arrivals of the transport-wide-cc extension ``ext_id`` in ``feedback``
        (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2); None: stop."""
        self.twcc = feedback if ext_id is not None else None
        self.twcc_id = ext_id or 0

    def route_signalled(self, track: PublishedTrack, streams: Iterable[RtpStream]) -> None:
        """Route the SSRCs the publisher's SDP signalled for ``track`` (``a=ssrc``, FID groups)."""
        routes = self.routes
        for stream in streams:
            if len(routes) >= MAX_ROUTES:
                return
            published = track.learn(stream.ssrc, None)
            routes[stream.ssrc] = (track, published) if published else None
            if stream.rtx_ssrc is not None:
                routes[stream.rtx_ssrc] = self.repair_route(track, published)

    @staticmethod
    def repair_route(track: PublishedTrack, stream: PublishedStream | None) -> Route | None:
        """Return the route of an RTX SSRC repairing ``stream`` (None: nothing to repair)."""
        if stream is None:
            return None
        apt = {c.payload_type: c.apt for c in track.codecs if c.is_rtx and c.apt is not None}
        return (RtxRepair(track, apt), stream) if apt else None

    def receive_media(self, kind: PacketKind, packet: bytes, now: float) -> None:
        """Route a decrypted RTP packet to its track; terminate an RTCP compound."""
        if kind is PacketKind.RTP:
            if len(packet) < HEADER_LENGTH:
                self.counters["rtp-malformed"] += 1
                return
            ssrc = _SSRC(packet, SSRC_OFFSET)[0]
            twcc = self.twcc
            if twcc is not None:  # every packet of the transport, routed or not (§2)
                try:
                    value = find_extension(packet, self.twcc_id)
                except DecodeError:
                    value = None
                if value is not None and len(value) == 2:
                    twcc.media_ssrc = ssrc
                    twcc.receive(value[0] << 8 | value[1], now)
            try:
                route = self.routes[ssrc]
            except KeyError:  # never seen: learn it (once, unless it stays unroutable)
                route = self._learn(ssrc, packet)
            if route is None:
                self.counters["rtp-unrouted"] += 1
                return
            receiver, stream = route
            try:
                receiver.receive_rtp(packet, stream, now)
            except DecodeError:
                self.counters["rtp-malformed"] += 1
        else:
            self._receive_rtcp(packet, now)

    def _learn(self, ssrc: int, packet: bytes) -> Route | None:
        """Route an unsignalled SSRC by its MID/RID header extensions (RFC 8843 §9.2, RFC 8852)."""
        if len(self.routes) >= MAX_ROUTES:
            return None
        route: Route | None = None
        try:
            mid, rid, repaired = self._extension_values(packet)
        except DecodeError:
            return None
        if mid is not None:
            transceiver = next((t for t in self.transceivers if t.mid == mid), None)
        else:
            transceiver = self._publisher_of_payload_type(packet[1] & PAYLOAD_TYPE_MASK)
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
        for uri in _NAMING_URIS:
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
        pt = packet[1] & PAYLOAD_TYPE_MASK
        return any(c.payload_type == pt and c.is_rtx for c in track.codecs)

    def _receive_rtcp(self, packet: bytes, now: float) -> None:
        try:
            packets = decode_compound(packet)
        except DecodeError:
            self.counters["rtcp-malformed"] += 1
            return
        self.rtcp.receive_rtcp(packets, now)
