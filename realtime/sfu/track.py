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

    publisher RTP also feeds the publisher session's RTCP leg
    (:class:`~realtime.sfu.rtcp_legs.RtcpLegs`): reception statistics for its
    RRs, gaps for its upstream NACKs, key frames for its KeyframeRequesters.

    subscriber RTCP:  PLI / FIR (RFC 4585 §6.3.1, RFC 5104 §4.3.1) -> the publisher leg's
                      KeyframeRequester of the layer it receives -> at most one PLI
                      upstream per 300 ms (debounced, aggregated over subscribers)
                      generic NACK (RFC 4585 §6.2.1) -> answered from the retransmission
                      buffer (RTX per RFC 4588 where negotiated); never relayed upstream

The per-packet loop lives in exactly one place, :meth:`PublishedTrack.receive_rtp`;
per-subscriber rewriting (SSRC, sequence number and timestamp continuity
across layer switches, payload type and header extension id mapping, RFC
8285 §5) is :class:`~realtime.sfu.forwarder.Forwarder`'s job, simulcast
layer choice (RFC 8853) :class:`~realtime.media.simulcast.LayerSelector`'s.

A session object here is anything with ``send_rtp(packet)`` and ``rtcp``
(its :class:`~realtime.sfu.rtcp_legs.RtcpLegs`): an :class:`~realtime.sfu.session.SfuSession`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from realtime.errors import DecodeError
from realtime.media.keyframes import keyframe_detector
from realtime.media.simulcast import SINGLE, LayerSelector, SimulcastLayers, SimulcastPreferences
from realtime.media.vp9 import MALFORMED, temporal_fields as vp9_fields
from realtime.media.vp9 import temporal_layer as vp9_temporal_layer
from realtime.rtp.extensions import ExtensionUri
from realtime.rtp.packet import find_extension, sequence_number_and_timestamp
from realtime.sdp.codecs import Codec, codecs_match
from realtime.sdp.negotiated import NegotiatedMedia
from realtime.sdp.negotiation import DEPENDENCY_DESCRIPTOR
from realtime.sfu.dependency import DescriptorFields
from realtime.sfu.forwarder import ExtensionPlan, Forwarder, PublishedStream
from realtime.sfu.sendpath import SendPath, bind_send_path
from realtime.sfu.temporal import ALL, TemporalFilter, temporal_fields, temporal_layer

__all__ = ["PublishedTrack", "Subscription", "payload_type_map"]

#: most RTP streams (layers, restarts) one track learns before it ignores new SSRCs
MAX_STREAMS = 8
#: segments a forwarder with a temporal filter remembers for NACKs: each run of dropped
#: frames starts one (L1T3 at TID <= 1: 15 a second), so about 4 s
TEMPORAL_HISTORY = 64
#: codecs that carry no video of their own (RFC 4588 RTX is told by ``is_rtx``)
_NOT_MEDIA = frozenset({"RED", "ULPFEC", "FLEXFEC-03"})

#: payload-type sets shared by the tracks that have the same one (an idle session's two
#: tracks held two ~200-octet frozensets; issue 14's memory goal); at most 256 are kept
_SHARED_SETS: dict[frozenset[int], frozenset[int]] = {}


def _shared(types: frozenset[int]) -> frozenset[int]:
    """Return the shared copy of ``types`` (``types`` itself once 256 distinct sets exist)."""
    shared = _SHARED_SETS.get(types)
    if shared is None:
        if len(_SHARED_SETS) >= 256:
            return types
        shared = _SHARED_SETS[types] = types
    return shared


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

    #: bind :mod:`realtime.sfu.sendpath` when configured (False: every packet takes
    #: the reference path, Forwarder.forward then session.send_rtp; the tests compare both)
    fast_send = True

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
        #: the bound per-subscriber send path, set with the forwarder (None: the reference path)
        self.send_path: SendPath | None = None
        self.selector: LayerSelector | None = None
        self.keyframe_requests = 0
        #: publisher PT -> the PT our offer gave that format, when the SFU offered
        #: (:meth:`SfuSession.offer_media`); None when the subscriber offered
        self.offered_payload_types: dict[int, int] | None = None

    @property
    def active(self) -> bool:
        """Return whether packets flow (the subscriber's m= section is negotiated)."""
        return self.forwarder is not None

    def configure(self, media: NegotiatedMedia, now: float) -> None:
        """Start forwarding with the subscriber's negotiated ``media``; ask for a key frame.

        Payload types: when the SFU made the offer, the publisher's formats
        map to the payload types we offered for them and the answer kept;
        when the subscriber offered, formats are matched
        (:func:`payload_type_map`).
        """
        track = self.track
        codecs = media.codecs
        offered = self.offered_payload_types
        if offered is not None:
            # RFC 3264 §6.1: the answer selects among the payload types we offered, so
            # each answered one means what we offered under it; re-matching formats
            # would lose H.264 whose answer omits profile-level-id (issue 9, defect 3).
            answered = {c.payload_type for c in codecs}
            pts = {ours: theirs for ours, theirs in offered.items() if theirs in answered}
        else:
            pts = payload_type_map(track.codecs, codecs)
        rtx_pts = {c.apt: c.payload_type for c in codecs if c.is_rtx and c.apt is not None}
        session = self.session
        twcc = session.egress_transport_cc
        estimate = session.rtcp.estimate
        stamping = twcc is not None and estimate is not None and estimate.transport_cc
        plan = ExtensionPlan.between(
            {e.id: e.uri for e in track.extensions}, {e.id: e.uri for e in media.extensions},
            mid=self.mid, transport_cc=twcc if stamping else None)
        options: dict[str, Any] = {} if self.random is None else {"random": self.random}
        vp8 = {c.payload_type for c in track.codecs if c.name.upper() == "VP8"}
        # a VP8 or VP9 track, simulcast or not: the allocator may also thin its temporal
        # layers (realtime/sfu/temporal.py); each dropped run starts a segment, so keep more
        layers = track.layers if track.layers is not None else track.single
        temporal = None
        if layers is not None and track.dependency is not None:  # any codec: AV1, VP8, VP9
            vp9 = track.codec_name == "VP9"
            temporal = TemporalFilter(vp9=vp9, payload_types=track.dependency.payload_types,
                                      fields=track.dependency)
        elif layers is not None and track.codec_name == "VP9":
            temporal = TemporalFilter(vp9=True, payload_types=track.vp9_payload_types)
        elif layers is not None and vp8:
            temporal = TemporalFilter()
        if temporal is not None:
            options["history"] = TEMPORAL_HISTORY
        self.forwarder = Forwarder(
            self.ssrc, track.clock_rate, payload_types=pts, extensions=plan,
            rtx_ssrc=self.rtx_ssrc if rtx_pts else None, rtx_payload_types=rtx_pts,
            require_keyframe=track.kind == "video",
            vp8_payload_types=vp8,
            stamp=estimate.stamp if stamping and estimate is not None else None,
            temporal=temporal, **options)
        self.session.rtcp.add_forwarder(self.forwarder, now)
        if self.fast_send:  # one call per packet in the fan-out (realtime.sfu.sendpath)
            self.send_path = bind_send_path(self.forwarder, self.session)
        if layers is not None:  # without simulcast: one layer, only its TID is chosen
            single = track.layers is None
            self.selector = LayerSelector(layers, None if single else self.preferences,
                                          temporal, single=single)
            self.session.rtcp.allocate(now)  # the first layer fits the estimate too
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
        return self.selector.current or self.selector.target or None  # SINGLE: None

    def layer_state(self) -> dict[str, Any] | None:
        """Return the simulcast layer sent and why (``GET`` session), or None without simulcast.

        ``rid``: the layer being sent (None before the first key frame, and for a track
        without simulcast, whose one layer is thinned by temporal layers only: None
        is returned for it when it has none);
        ``target``: the layer wanted (switched to on its next key frame);
        ``reason``: ``auto`` (no preference: the best layer), ``preferred``,
        ``fallback`` (the preferred layer is not arriving, or starved), ``bandwidth``
        (the subscriber's estimate does not carry a better layer) or ``degraded`` (a
        better layer arrives, but at under half the best layer's frame rate: the
        publisher thins it, realtime/media/simulcast.py);
        ``starvedLayers``: those layers, best first;
        ``availableBitrate``: the share of the estimate this track was given;
        ``temporalLayer``: the highest VP8 temporal layer (TID) forwarded, None when
        every frame is (or the stream has no temporal layers); ``targetTemporalLayer``:
        the one the allocator chose (reached at the next TID 0 or layer-sync frame);
        ``frameRateFraction``: the share of the layer's frames sent (L1T3: 1, 0.5 at
        TID <= 1, 0.25 at TID 0).
        """
        selector = self.selector
        if selector is None:
            return None
        top = selector.layers.top_tid(selector.current)
        if selector.current == SINGLE and top == 0:
            return None  # no simulcast, no temporal layers: nothing is chosen
        budget = selector.available_bitrate
        state: dict[str, Any] = {
            "rid": selector.current or None, "target": selector.target or None,
            "reason": selector.reason,
            "availableBitrate": None if budget is None else int(budget),
            "starvedLayers": [rid for rid in selector.layers.active()
                              if selector.layers.starved(rid)]}
        forwarder = self.forwarder
        temporal = forwarder.temporal if forwarder is not None else None
        sent = ALL if temporal is None else temporal.target
        wanted = ALL if temporal is None else temporal.wanted
        state["temporalLayer"] = None if sent == ALL or sent >= top else sent
        state["targetTemporalLayer"] = None if wanted == ALL or wanted >= top else wanted
        state["frameRateFraction"] = 1.0 if sent == ALL or sent >= top else 0.5 ** (top - sent)
        return state

    def receive_keyframe_request(self, now: float) -> None:
        """Handle the subscriber's PLI or FIR: ask the publisher for a key frame of our layer."""
        self.keyframe_requests += 1
        self.track.request_keyframe(self.current_rid(), now)

    def stop(self) -> None:
        """Stop forwarding (the m= section closed or the track ended)."""
        self.track.detach(self)
        self.end()

    def end(self) -> None:
        """Forget the forwarder: no more packets, reports or retransmissions for it."""
        if self.forwarder is not None:
            self.session.rtcp.remove_forwarder(self.forwarder)
        self.forwarder = None
        self.send_path = None
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
        #: a video track without simulcast: the rates of its one layer (SINGLE) per TID,
        #: for the allocator's choice of a temporal layer; None with simulcast
        self.single: SimulcastLayers | None = None
        self.dependency: DescriptorFields | None = None
        self.configure(media)
        self.streams: dict[int, PublishedStream] = {}
        self.by_rid: dict[str, PublishedStream] = {}
        #: layers a key frame was asked for before any stream was known to carry them
        self.keyframes_wanted: set[str] = set()
        self.rtx_ssrcs: set[int] = set()
        self.latest: PublishedStream | None = None
        self.subscriptions: list[Subscription] = []
        self.created = now
        self.last_packet_time: float | None = None
        #: called once, then cleared: at the first packet, or at the end of a track that
        #: never sent one (a pull waits on it: realtime.api.sessions.SfuSessions.first_packets)
        self.first_packet_callbacks: list[Callable[[], None]] = []
        #: RTP accepted from the publisher / forwarded to subscribers (realtime.sfu.usage)
        self.packets = 0
        self.bytes = 0
        self.egress_packets = 0
        self.egress_bytes = 0
        self.ended = False
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
        self.detector = keyframe_detector(primary.name) \
            if primary is not None and self.kind == "video" else None
        #: VP8 and VP9 payload types: their TIDs are read for the per-layer rates
        self.vp8_payload_types = _shared(frozenset(
            c.payload_type for c in media.codecs if c.name.upper() == "VP8"))
        self.vp9_payload_types = _shared(frozenset(
            c.payload_type for c in media.codecs if c.name.upper() == "VP9"))
        #: RFC 8852 §3.1 RtpStreamId element id: names the layer of a signalled SSRC
        self.rid_extension_id = media.extension_id(ExtensionUri.RTP_STREAM_ID)
        rids = media.remote_rids
        if rids and self.layers is None:
            self.layers = SimulcastLayers(rids)
        elif not rids:
            self.layers = None
        #: the Dependency Descriptor's reader, when the publisher negotiated it: temporal
        #: layers are read there for every codec (realtime/sfu/dependency.py)
        dependency_id = media.extension_id(DEPENDENCY_DESCRIPTOR)
        if dependency_id is None:
            self.dependency = None
        else:  # judged for the payload types of the media itself (not RTX, RED or FEC);
            # a packet without the descriptor is read by its codec's payload descriptor
            codec = self.codec_name
            self.dependency = DescriptorFields(dependency_id, _shared(frozenset(
                c.payload_type for c in media.codecs
                if not c.is_rtx and c.name.upper() not in _NOT_MEDIA)),
                vp9_fields if codec == "VP9" else temporal_fields if codec == "VP8" else None)
        if rids or not (self.vp8_payload_types or self.vp9_payload_types or self.dependency):
            self.single = None
        elif self.single is None:
            self.single = SimulcastLayers([SINGLE])

    @property
    def codec_name(self) -> str | None:
        """The codec the publisher sends (the first of its negotiated formats), upper case.
        (A property: one more attribute per track cost ~1.3 KiB per idle track, its
        instance dict growing a size; tests/sfu/test_idle_memory.py.)"""
        primary = next((c for c in self.codecs if not c.is_rtx), None)
        return primary.name.upper() if primary is not None else None

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
        self.session.rtcp.add_source(ssrc, self.clock_rate, self.codecs)
        if rid is not None:
            self.by_rid[rid] = stream
        return stream

    def _bind_layer(self, stream: PublishedStream, packet: bytes) -> str | None:
        """Name the layer of a stream whose SSRC the SDP signalled without a rid; return it.

        RFC 8853 ties a simulcast stream to its rid only through the
        RtpStreamId header extension (RFC 8852 §3.1), never through
        ``a=ssrc`` lines: Firefox lists one SSRC (and an ``a=ssrc-group:FID``
        RTX pair) per ``a=rid`` but the SDP does not say which is which, and
        it sends the extension on a stream's first few dozen packets only.
        So a signalled SSRC (registered at negotiation, rid unknown) takes
        its layer from the first packet that names one of the rids the offer
        announced (``a=simulcast:send``) and no other stream holds yet, and
        keeps it once the extension stops.  Runs only while the stream is
        unnamed: once bound, the per-packet path is unchanged.
        """
        ext_id = self.rid_extension_id
        if ext_id is None:
            return None
        try:
            value = find_extension(packet, ext_id)
        except DecodeError:
            return None
        if not value:
            return None
        rid = value.decode("ascii", "replace")
        if rid not in self.media.remote_rids or rid in self.by_rid:
            return None
        stream.rid = rid
        self.by_rid[rid] = stream
        return rid

    def stream_for(self, rid: str | None) -> PublishedStream | None:
        """Return the stream of layer ``rid`` (None: the latest stream)."""
        if rid is not None and rid in self.by_rid:
            return self.by_rid[rid]
        if self.latest is not None:
            return self.latest
        return next(iter(self.streams.values()), None)

    # -- the hot path ----------------------------------------------------------

    def receive_rtp(self, packet: bytes, stream: PublishedStream, now: float,
                    retransmission: bool = False) -> None:
        """Forward one decrypted RTP packet of ``stream`` to every subscription.

        ``retransmission``: the packet was recovered from RTX (it only fills a gap).

        :raises DecodeError: the packet is too short or its header
            extension block is malformed (the caller counts and drops it).
        """
        if self.last_packet_time is None:
            self._first_packet()
        self.last_packet_time = now
        self.packets += 1
        self.bytes += len(packet)
        self.latest = stream
        keyframe = stream.receive(packet)
        sequence, rtp_time = sequence_number_and_timestamp(packet)
        self.session.rtcp.receive_rtp(stream.ssrc, sequence, rtp_time, keyframe, now,
                                      retransmission)
        rid = stream.rid
        layers = self.layers
        if layers is not None:
            if rid is None:
                rid = self._bind_layer(stream, packet)
            if rid is not None:
                if retransmission:  # RTX (Chromium pads its uplink probes with old packets
                    # of the lowest layer: counted, they made q measure 1.2 Mbit/s)
                    layers.packet_received(rid, 0, now)
                else:
                    layers.packet_received(rid, len(packet), now, self._tid(packet, stream),
                                           packet[1] > 0x7F)
                if self.keyframes_wanted and rid in self.keyframes_wanted:
                    self.keyframes_wanted.discard(rid)
                    self.session.rtcp.request_keyframe(stream.ssrc, now)
        elif self.single is not None:  # no simulcast: the one layer's rates per TID
            if retransmission:
                self.single.packet_received(SINGLE, 0, now)
            else:
                self.single.packet_received(SINGLE, len(packet), now, self._tid(packet, stream))
        for subscription in self.subscriptions:
            forwarder = subscription.forwarder
            if forwarder is None:  # stopped (it leaves the list as it stops)
                continue
            selector = subscription.selector
            if selector is not None and rid is not None:
                if not subscription.session.can_send_media:
                    forwarder.drops["subscriber-not-connected"] += 1
                    continue  # not connected yet: a key frame sent now would be lost
                if not selector.accept(rid, keyframe, now):
                    wanted = selector.take_keyframe_request()
                    if wanted is not None:
                        self.request_keyframe(wanted, now)
                    continue
            send = getattr(subscription, "send_path", None)
            if send is not None:  # the bound path (realtime.sfu.sendpath): same octets, one call
                sent = send(packet, stream, keyframe, now)
                if sent > 0:
                    self.egress_bytes += sent
                    self.egress_packets += 1
                elif sent < 0:
                    self.session.rtcp.request_keyframe(stream.ssrc, now)
                continue
            if not subscription.session.can_send_media:
                forwarder.drops["subscriber-not-connected"] += 1
                continue
            rewritten = forwarder.forward(packet, stream, keyframe, now)
            if rewritten is not None:
                out = bytes(rewritten)
                if subscription.session.send_rtp(out):
                    self.egress_bytes += len(out)
                    self.egress_packets += 1
                else:
                    forwarder.drops["not-sent"] += 1
            elif forwarder.take_keyframe_wanted():
                self.session.rtcp.request_keyframe(stream.ssrc, now)

    def _tid(self, packet: bytes, stream: PublishedStream) -> int:
        """Return the TID of a VP8 (RFC 7741) or VP9 (RFC 9628) packet, -1 if none; a VP9
        descriptor cut short is counted in the stream's ``malformed``."""
        dependency = self.dependency
        if dependency is not None:
            tid = dependency.observe(packet)
            if tid >= 0:
                return tid
        pt = packet[1] & 0x7F
        if pt in self.vp8_payload_types:
            return temporal_layer(packet)
        if pt in self.vp9_payload_types:
            tid = vp9_temporal_layer(packet)
            if tid == MALFORMED:
                stream.malformed += 1
                return -1
            return tid
        return -1

    # -- keyframes ---------------------------------------------------------------

    def request_keyframe(self, rid: str | None, now: float) -> None:
        """Ask the publisher for a key frame of layer ``rid``: aggregated and debounced.

        The publisher session's :class:`~realtime.sfu.rtcp_legs.RtcpLegs` sends
        a PLI (or FIR) at once unless one went out less than 300 ms ago, and
        repeats it every second until a key frame arrives.

        A layer no stream is known to carry yet (its first packet has not
        named it) is remembered and asked for when it does: asking the latest
        stream instead sent Firefox's PLIs to the wrong layer while the
        wanted one was never asked.
        """
        if rid is not None and self.layers is not None and rid not in self.by_rid:
            if rid in self.layers.layers:
                self.keyframes_wanted.add(rid)
            return
        stream = self.stream_for(rid)
        if stream is not None:
            self.session.rtcp.request_keyframe(stream.ssrc, now)

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

    def _first_packet(self) -> None:
        callbacks, self.first_packet_callbacks = self.first_packet_callbacks, []
        for callback in callbacks:
            callback()

    def is_inactive(self, now: float, timeout: float) -> bool:
        """Return whether no packet arrived for ``timeout`` seconds (or since creation)."""
        last = self.created if self.last_packet_time is None else self.last_packet_time
        return self.ended or now - last >= timeout

    def end(self) -> list[Subscription]:
        """End the track (unpublished or inactive); return the subscriptions it had.

        Each subscription stops forwarding; the publisher leg stops reporting
        on the track's streams.
        """
        self.ended = True
        self._first_packet()
        subscriptions, self.subscriptions = self.subscriptions, []
        for subscription in subscriptions:
            subscription.end()
        for ssrc in self.streams:
            self.session.rtcp.remove_source(ssrc)
        return subscriptions
