"""
Published tracks and their subscriptions: where one publisher's packets fan out.

A *track* is one m= section a client sends us (RFC 8829 §3.4.1: one
transceiver), published under a name; a *subscription* is one m= section of
another (or the same) session on which the SFU sends that track.  The SFU
is a Selective Forwarding Middlebox (RFC 7667 §3.7): it never decodes, it
renames and filters RTP, and it terminates RTCP::

    publisher PC ──SRTP──> SfuSession.receive_media ──ssrc──> PublishedTrack
                                                                  │ receive_rtp(packet, stream, now)
                      ┌───────────────────────────────────────────┤ for each Subscription:
                      v                                           v   layer? -> Forwarder.forward
      subscriber A: Forwarder(ssrc A)                 subscriber B: Forwarder(ssrc B)
          └─> SfuSession.send_rtp ──SRTP──> A             └─> SfuSession.send_rtp ──SRTP──> B

    subscriber RTCP:  PLI / FIR (RFC 4585 §6.3.1, RFC 5104 §4.3.1) -> KeyframeRequester of the
                      layer it receives -> at most one PLI upstream per 300 ms (debounced)
                      generic NACK (RFC 4585 §6.2.1) -> answered from the retransmission
                      buffer (RTX per RFC 4588 where negotiated); never relayed upstream

The per-packet loop lives in exactly one place, :meth:`PublishedTrack.receive_rtp`;
per-subscriber rewriting (SSRC, sequence number and timestamp continuity
across layer switches, payload type and header extension id mapping, RFC
8285 §5) is :class:`~realtime.sfu.forwarder.Forwarder`'s job, simulcast
layer choice (RFC 8853) :class:`~realtime.media.simulcast.LayerSelector`'s.

A session object here is anything with ``send_rtp(packet)``,
``send_rtcp(packet)`` and ``rtcp_ssrc`` (an :class:`~realtime.sfu.session.SfuSession`).
"""

from __future__ import annotations

from typing import Any, Iterable

from realtime.media.keyframes import KeyframeRequester, keyframe_detector
from realtime.media.simulcast import LayerSelector, SimulcastLayers, SimulcastPreferences
from realtime.rtcp.feedback import PictureLossIndication
from realtime.sdp.codecs import Codec, codecs_match
from realtime.sdp.negotiated import NegotiatedMedia
from realtime.sfu.forwarder import ExtensionPlan, Forwarder, PublishedStream

__all__ = ["PublishedTrack", "Subscription", "payload_type_map"]

#: most RTP streams (layers, restarts) one track learns before it ignores new SSRCs
MAX_STREAMS = 8


def payload_type_map(publisher: Iterable[Codec], subscriber: Iterable[Codec]) -> dict[int, int]:
    """Return publisher payload type -> subscriber payload type for every matching codec.

    Media formats match by :func:`~realtime.sdp.codecs.codecs_match`; RTX
    formats (RFC 4588) follow the format they repair (``apt``).
    """
    subscriber = tuple(subscriber)
    mapping: dict[int, int] = {}
    for codec in publisher:
        if codec.is_rtx:
            continue
        for theirs in subscriber:
            if not theirs.is_rtx and codecs_match(codec, theirs):
                mapping[codec.payload_type] = theirs.payload_type
                break
    return mapping


class Subscription:
    """One track sent on one m= section of a subscriber session.

    :param session: the subscriber session (sends what we forward).
    :param mid: the subscriber's m= section.
    :param track: the :class:`PublishedTrack` it receives.
    :param ssrc: our SSRC towards the subscriber (signalled in SDP).
    :param rtx_ssrc: our RTX SSRC, used when the subscriber negotiates RTX.
    :param preferences: simulcast wishes (``tracks/new`` / ``tracks/update``).
    """

    def __init__(self, session: Any, mid: str, track: PublishedTrack, ssrc: int,
                 rtx_ssrc: int | None, preferences: SimulcastPreferences | None = None,
                 random: Any = None) -> None:
        self.session = session
        self.mid = mid
        self.track = track
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.preferences = preferences or SimulcastPreferences()
        self.random = random
        self.forwarder: Forwarder | None = None
        self.selector: LayerSelector | None = None
        self.keyframe_requests = 0
        self.nacks = 0

    @property
    def active(self) -> bool:
        """Return whether packets flow (the subscriber's m= section is negotiated)."""
        return self.forwarder is not None

    def configure(self, media: NegotiatedMedia, now: float) -> None:
        """Start forwarding with the subscriber's negotiated ``media``; ask for a key frame."""
        track = self.track
        codecs = media.codecs
        pts = payload_type_map(track.codecs, codecs)
        rtx_pts = {c.apt: c.payload_type for c in codecs if c.is_rtx and c.apt is not None}
        plan = ExtensionPlan.between(
            {e.id: e.uri for e in track.extensions}, {e.id: e.uri for e in media.extensions},
            mid=self.mid)
        options: dict[str, Any] = {} if self.random is None else {"random": self.random}
        self.forwarder = Forwarder(
            self.ssrc, track.clock_rate, payload_types=pts, extensions=plan,
            rtx_ssrc=self.rtx_ssrc if rtx_pts else None, rtx_payload_types=rtx_pts,
            require_keyframe=track.kind == "video", **options)
        if track.layers is not None:
            self.selector = LayerSelector(track.layers, self.preferences)
        track.attach(self, now)

    def update_preferences(self, preferences: SimulcastPreferences, now: float) -> None:
        """Apply new simulcast wishes; the layer switches on the next key frame."""
        self.preferences = preferences
        if self.selector is not None:
            self.selector.set_preferences(preferences)
            rid = self.selector.take_keyframe_request()
            if rid is not None:
                self.track.request_keyframe(rid, now)

    def current_rid(self) -> str | None:
        """Return the simulcast layer this subscriber receives (or awaits), if any."""
        if self.selector is None:
            return None
        return self.selector.current or self.selector.target

    def receive_keyframe_request(self, now: float) -> None:
        """Handle the subscriber's PLI or FIR: ask the publisher for a key frame of our layer."""
        self.keyframe_requests += 1
        self.track.request_keyframe(self.current_rid(), now)

    def receive_nack(self, sequence_numbers: Iterable[int], now: float) -> None:
        """Answer the subscriber's NACK from the track's buffers (never relayed upstream)."""
        forwarder = self.forwarder
        if forwarder is None:
            return
        self.nacks += 1
        track = self.track
        for packet in forwarder.retransmit(sequence_numbers, now):
            packet = bytes(packet)
            track.egress_bytes += len(packet)
            track.egress_packets += 1
            self.session.send_rtp(packet)

    def stop(self) -> None:
        """Stop forwarding (the m= section closed or the track ended)."""
        self.track.detach(self)
        self.forwarder = None
        self.selector = None


class PublishedTrack:
    """One m= section a publisher sends, under a name, with its subscriptions.

    :param session: the publisher session (receives our upstream PLIs).
    :param mid: the publisher's m= section.
    :param name: the ``trackName``.
    :param media: what the publisher's section negotiated (codecs, extension
        ids, signalled SSRCs, simulcast rids).
    :param now: creation time; the inactivity clock starts here.
    """

    def __init__(self, session: Any, mid: str, name: str, media: NegotiatedMedia,
                 now: float) -> None:
        self.session = session
        self.mid = mid
        self.name = name
        self.kind = media.kind
        self.layers: SimulcastLayers | None = None
        self.configure(media)
        self.streams: dict[int, PublishedStream] = {}
        self.by_rid: dict[str, PublishedStream] = {}
        self.rtx_ssrcs: set[int] = set()
        self.latest: PublishedStream | None = None
        self.requesters: dict[int, KeyframeRequester] = {}
        self.subscriptions: list[Subscription] = []
        self.created = now
        self.last_packet_time: float | None = None
        #: RTP accepted from the publisher / forwarded to subscribers (realtime.sfu.usage)
        self.packets = 0
        self.bytes = 0
        self.egress_packets = 0
        self.egress_bytes = 0
        self.ended = False
        self._keyframe_wanted = False
        for stream in media.remote_streams:
            self.learn(stream.ssrc, None)
            if stream.rtx_ssrc is not None:
                self.rtx_ssrcs.add(stream.rtx_ssrc)

    def configure(self, media: NegotiatedMedia) -> None:
        """(Re)read codecs, extension ids and simulcast rids from the publisher's negotiation."""
        self.media = media
        self.codecs = media.codecs
        self.extensions = media.extensions
        primary = next((c for c in media.codecs if not c.is_rtx), None)
        self.clock_rate = primary.clock_rate if primary else 90000
        video = primary is not None and self.kind == "video"
        self.detector = keyframe_detector(primary.name) if video else None
        rids = media.remote_rids
        if rids and self.layers is None:
            self.layers = SimulcastLayers(rids)
        elif not rids:
            self.layers = None

    # -- streams -------------------------------------------------------------

    def learn(self, ssrc: int, rid: str | None) -> PublishedStream | None:
        """Return the stream for a new SSRC (rid from the RTP header extension), or None."""
        stream = self.streams.get(ssrc)
        if stream is not None:
            return stream
        if len(self.streams) >= MAX_STREAMS:
            return None
        stream = PublishedStream(ssrc, self.clock_rate, self.detector, rid)
        self.streams[ssrc] = stream
        self.requesters[ssrc] = KeyframeRequester()
        if rid is not None:
            self.by_rid[rid] = stream
        return stream

    def stream_for(self, rid: str | None) -> PublishedStream | None:
        """Return the stream of layer ``rid`` (None: the latest stream)."""
        if rid is not None and rid in self.by_rid:
            return self.by_rid[rid]
        if self.latest is not None:
            return self.latest
        return next(iter(self.streams.values()), None)

    # -- the hot path ----------------------------------------------------------

    def receive_rtp(self, packet: bytes, stream: PublishedStream, now: float) -> None:
        """Forward one decrypted RTP packet of ``stream`` to every subscription.

        :raises DecodeError: the packet is too short or its header
            extension block is malformed (the caller counts and drops it).
        """
        self.last_packet_time = now
        self.packets += 1
        self.bytes += len(packet)
        self.latest = stream
        keyframe = stream.receive(packet)
        if keyframe:
            self.requesters[stream.ssrc].keyframe_received(now)
        rid = stream.rid
        layers = self.layers
        if layers is not None and rid is not None:
            layers.packet_received(rid, len(packet), now)
        for subscription in self.subscriptions:
            selector = subscription.selector
            if selector is not None and rid is not None and not selector.accept(rid, keyframe, now):
                wanted = selector.take_keyframe_request()
                if wanted is not None:
                    self.request_keyframe(wanted, now)
                continue
            forwarder = subscription.forwarder
            out = forwarder.forward(packet, stream, keyframe, now)
            if out is not None:
                out = bytes(out)
                self.egress_bytes += len(out)
                self.egress_packets += 1
                subscription.session.send_rtp(out)
            elif forwarder.keyframe_wanted:
                self.requesters[stream.ssrc].request(now)
                self._keyframe_wanted = True
        if self._keyframe_wanted:
            self.send_keyframe_requests(now)

    # -- keyframes ---------------------------------------------------------------

    def request_keyframe(self, rid: str | None, now: float) -> None:
        """Note that a subscriber needs a key frame of layer ``rid``; send a PLI if due."""
        stream = self.stream_for(rid)
        if stream is None:
            return
        self.requesters[stream.ssrc].request(now)
        self._keyframe_wanted = True
        self.send_keyframe_requests(now)

    def send_keyframe_requests(self, now: float) -> None:
        """Send one PLI upstream (RFC 4585 §6.3.1) for each stream whose request is due."""
        wanted = False
        for ssrc, requester in self.requesters.items():
            if requester.due(now):
                pli = PictureLossIndication(self.session.rtcp_ssrc, ssrc)
                self.session.send_rtcp(pli.encode())
            wanted = wanted or requester.wanted
        self._keyframe_wanted = wanted

    # -- subscriptions -------------------------------------------------------------

    def attach(self, subscription: Subscription, now: float) -> None:
        """Start forwarding to ``subscription`` and ask for a key frame for it."""
        if subscription not in self.subscriptions:
            self.subscriptions.append(subscription)
        if self.kind == "video":
            self.request_keyframe(subscription.current_rid(), now)

    def detach(self, subscription: Subscription) -> None:
        """Stop forwarding to ``subscription``."""
        if subscription in self.subscriptions:
            self.subscriptions.remove(subscription)

    def is_inactive(self, now: float, timeout: float) -> bool:
        """Return whether no packet arrived for ``timeout`` seconds (or since creation)."""
        last = self.created if self.last_packet_time is None else self.last_packet_time
        return self.ended or now - last >= timeout

    def end(self) -> list[Subscription]:
        """End the track (unpublished or inactive); return the subscriptions it had."""
        self.ended = True
        subscriptions, self.subscriptions = self.subscriptions, []
        return subscriptions
