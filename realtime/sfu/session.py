"""
One SFU session: one PeerConnection, its transceivers and its negotiation state.

A Cloudflare-style session (docs/cloudflare-api.md §1) is one client PeerConnection
that carries, for its whole life, any number of pushed tracks (the client
sends) and pulled tracks (the SFU sends).  JSEP offer/answer (RFC 8829
§5) changes it; either side may offer::

                  client offer (push, autoDiscover, pull with offer, negotiated close)
        ┌────────────────────────────────────────────────────────────┐
        v                                                            │
    [stable] ──answer_offer()──> answer returned, transceivers settled ┘
        │
        │ offer_media() (pull, push without offer, bidirectionalMediaStream)
        v
    [have-local-offer]  pending_offer set; any other mutation -> NegotiationPending (HTTP 406)
        │
        │ apply_answer() (PUT renegotiate)
        v
    [stable]

The transport is fixed when the session is made: ICE-lite credentials
(RFC 8839 §5.4), our DTLS certificate's fingerprint (RFC 8122) and one host
candidate on the media port, all in :attr:`SfuSession.local`.  The
:class:`~realtime.peer.connection.PeerConnection` is created by the first
completed exchange, with the DTLS role the answer settles (RFC 8842 §5.1).

ICE restart (RFC 8445 §9): a later description with new remote
credentials is applied with ``set_remote_credentials``; our own ufrag/pwd
stay (the port routes checks by our ufrag), a deliberate simplification.

Media: the session's :class:`~realtime.sfu.routing.MediaRouting` (:attr:`SfuSession.media`)
is the connection's ``media_sink``: RTP goes by SSRC to its
:class:`~realtime.sfu.track.PublishedTrack`, RTCP is terminated by the session's
:class:`~realtime.sfu.rtcp_legs.RtcpLegs`, whose timer is the session's
(:meth:`SfuSession.get_timer`; the I/O side folds it into the connection's).
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from realtime.demux import PacketKind
from realtime.dtls.certificate import Certificate
from realtime.errors import DecodeError, LocalProtocolError
from realtime.ice.credentials import ice_credentials
from realtime.ice.lite import IceLiteAgent
from realtime.media.simulcast import SimulcastPreferences
from realtime.peer.connection import DEFAULT_SRTP_PROFILES, PeerConnection
from realtime.peer.events import PeerEvent
from realtime.sdp.attributes import Fingerprint
from realtime.sdp.errors import NegotiationError
from realtime.sdp.negotiated import NegotiatedSession, apply_answer
from realtime.sdp.negotiation import (
    TRANSPORT_CC, LocalTransport, MediaChoice, RtpStream, create_answer,
)
from realtime.sdp.offer import MediaOffer, create_offer
from realtime.sdp.session import MediaDescription, SessionDescription
from realtime.sfu.datachannels import SessionDataChannels
from realtime.sfu.estimate import SubscriberEstimate
from realtime.sfu.pacer import Pacer
from realtime.sfu.routing import MediaRouting
from realtime.sfu.rtcp_legs import RtcpLegs
from realtime.sfu.track import PublishedTrack, Subscription
from realtime.sfu.transceiver import (
    APPLICATION, BIDIRECTIONAL, CLOSED, PUBLISH, SUBSCRIBE, SessionNumbering, Transceiver,
    subscriber_codecs, subscriber_extensions,
)

__all__ = ["MediaRequest", "NegotiationPending", "SfuSession"]


class NegotiationPending(LocalProtocolError):
    """A change needs negotiation while an SFU offer awaits its answer (HTTP 406)."""


@dataclass(frozen=True, slots=True)
class MediaRequest:
    """Ask :meth:`SfuSession.offer_media` for one new m= section.

    :param kind: ``audio`` or ``video``.
    :param role: ``subscribe`` (a pull), ``publish`` (push without offer) or
        ``bidirectional``.
    :param track: the pulled :class:`PublishedTrack` (subscribe).
    :param track_name: the name to publish under (publish, bidirectional).
    :param preferences: simulcast wishes of a pull.
    """

    kind: str
    role: str
    track: PublishedTrack | None = None
    track_name: str | None = None
    preferences: SimulcastPreferences | None = None


def pack_sdp(sdp: str) -> bytes:
    """Return ``sdp`` compressed for keeping (zlib, RFC 1950): SDP text shrinks ~3x."""
    return zlib.compress(sdp.encode(), 6)


def unpack_sdp(packed: bytes) -> str:
    """Return the SDP :func:`pack_sdp` kept."""
    return zlib.decompress(packed).decode()


class SfuSession:
    """One client PeerConnection of the SFU, without I/O.

    :param session_id: 32 lowercase hex characters.
    :param app_id: the app that owns it.
    :param certificate: our DTLS certificate.
    :param address: the media port's announced address; ``port`` its port.
    :param now: creation time.
    :param publish: called with each :class:`PublishedTrack` a negotiation
        creates (the switchboard registers it).
    :param touched: a set shared by all sessions of a switchboard; a session
        that queued output adds itself so the I/O side can send it.
    """

    def __init__(self, session_id: str, app_id: str, *, certificate: Certificate,
                 address: str, port: int, now: float,
                 publish: Callable[[PublishedTrack], None] = lambda track: None,
                 touched: set | None = None,
                 srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
                 keylog: Callable[[bytes], None] | None = None,
                 random: Callable[[int], bytes] = os.urandom,
                 credentials: tuple[str, str] | None = None,
                 transport_cc: bool = True, pacing: bool = True) -> None:
        self.session_id = session_id
        #: negotiate transport-wide congestion control (feedback to publishers, our
        #: own numbering and estimate towards subscribers)
        self.transport_cc = transport_cc
        #: the transport-wide-cc id our packets to this client carry (None: not negotiated)
        self.egress_transport_cc: int | None = None
        self.app_id = app_id
        self.certificate = certificate
        self.created = now
        self.random = random
        self.srtp_profiles = tuple(srtp_profiles)
        self.keylog = keylog
        self.publish = publish
        self.touched: set = set() if touched is None else touched
        # a cluster node taking the session over keeps the ufrag/pwd the answer carried
        ufrag, pwd = credentials or ice_credentials(random)
        self.ice = IceLiteAgent(ufrag, pwd, tiebreaker=int.from_bytes(random(8), "big"))
        self.local = LocalTransport.host(
            ufrag, pwd, Fingerprint("sha-256", certificate.fingerprint()), address, port,
            session_id=int.from_bytes(random(7), "big"))
        self.connection: PeerConnection | None = None
        self.transceivers: list[Transceiver] = []
        self.pending_offer: SessionDescription | None = None
        self.negotiated: NegotiatedSession | None = None
        #: the last completed exchange: (our SDP, the client's raw SDP, we offered);
        #: what another node replays to take the session over (realtime/sfu/restore.py).
        #: Both SDPs are kept as zlib-compressed text (:func:`pack_sdp`): kept parsed or
        #: plain they were a sixth of an idle session, and only a directory write reads them.
        self.exchange: tuple[bytes, bytes, bool] | None = None
        self.rtcp_ssrc = self._new_ssrc()
        self.rtcp = RtcpLegs(self, self.rtcp_ssrc, f"realtime-{session_id[:8]}", random=random)
        #: paces the video sent to this client (realtime/sfu/pacer.py; None: ``--no-pacer``)
        self.pacer: Pacer | None = Pacer(self.rtcp.departed, self.rtcp.stamped_number) \
            if pacing else None
        self.subscriptions: dict[int, Subscription] = {}
        #: media packets dropped, by reason (the routing counts them)
        self.counters: Counter[str] = Counter()
        #: routes the decrypted media: the connection's media sink
        self.media = MediaRouting(self.transceivers, self.rtcp, self.counters)
        #: the API DataChannels this session publishes and subscribes to
        self.datachannels = SessionDataChannels(self)
        self.closed = False
        self._next_mid = 0

    # -- lookups ---------------------------------------------------------------

    def transceiver(self, mid: str) -> Transceiver | None:
        """Return the transceiver of m= section ``mid``."""
        return next((t for t in self.transceivers if t.mid == mid), None)

    def transceiver_of_track(self, name: str) -> Transceiver | None:
        """Return the open transceiver that publishes ``name`` (``mid: "#name"``)."""
        return next((t for t in self.transceivers
                     if t.track_name == name and t.role in (PUBLISH, BIDIRECTIONAL)), None)

    def receive_media(self, kind: PacketKind, packet: bytes, now: float) -> None:
        """Route one decrypted packet (what :attr:`media` does for the connection)."""
        self.media.receive_media(kind, packet, now)

    def get_timer(self) -> float | None:
        """Return the next deadline of the session's RTCP (reports, NACKs, keyframe requests)."""
        return self.rtcp.get_timer()

    def handle_timer(self, now: float) -> None:
        """Send the RTCP that is due (the I/O side calls this from the connection's timer)."""
        self.rtcp.handle_timer(now)

    @property
    def negotiated_once(self) -> bool:
        """Return whether an exchange completed (the PeerConnection exists)."""
        return self.connection is not None

    # -- client offers -----------------------------------------------------------

    def answer_offer(self, sdp: str, now: float, publish: Mapping[str, str] | None = None,
                     subscribe: Mapping[str, tuple[PublishedTrack, SimulcastPreferences | None]]
                     | None = None) -> SessionDescription:
        """Answer the client's offer; return our answer (RFC 8829 §5.3).

        Known mids keep their role (a rejected one closes); new mids in
        ``publish`` become pushed tracks named by it, new mids in
        ``subscribe`` carry that track; other new sections that send are
        received without a name, the rest are rejected.

        :raises NegotiationPending: an SFU offer awaits its answer.
        :raises SdpError: the offer is not usable SDP.
        """
        if self.pending_offer is not None:
            raise NegotiationPending("an SFU offer is waiting for its answer (PUT renegotiate)")
        offer = SessionDescription.parse(sdp)
        publish, subscribe = publish or {}, subscribe or {}
        choices: dict[str, MediaChoice] = {}
        added: list[Transceiver] = []
        for media in offer.media:
            mid = media.mid
            if mid is None:
                raise NegotiationError("offer media section has no a=mid")
            existing = self.transceiver(mid)
            if existing is None:
                existing = self._new_from_offer(media, publish, subscribe)
                if existing is not None:
                    added.append(existing)
            choices[mid] = self._choice(existing, media)
        local = self._next_local()
        try:
            answer = create_answer(offer, local, choices)
            if not any(m.port != 0 for m in answer.media) and self.transceivers:
                negotiated = None  # everything closed (the last negotiated close)
            else:
                negotiated = apply_answer(offer, answer, we_offered=False)
        except DecodeError:
            for transceiver in added:
                if transceiver.subscription is not None:
                    self._close(transceiver)
            raise
        self.transceivers += added
        self.local = local
        self.exchange = (pack_sdp(answer.serialize()), pack_sdp(sdp), False)
        if negotiated is None:
            for transceiver in self.transceivers:
                if transceiver.role != CLOSED:
                    self._close(transceiver)
        else:
            self._settle(negotiated, now)
        return answer

    def _new_from_offer(self, media: MediaDescription, publish: Mapping[str, str],
                        subscribe: Mapping[str, Any]) -> Transceiver | None:
        mid = media.mid
        assert mid is not None
        self._note_mid(mid)
        if media.rejected:
            return Transceiver(mid, media.kind, CLOSED)
        if media.kind == "application":
            return Transceiver(mid, media.kind, APPLICATION)
        if media.kind not in ("audio", "video"):
            return Transceiver(mid, media.kind, CLOSED)
        if mid in subscribe:
            track, preferences = subscribe[mid]
            transceiver = Transceiver(mid, media.kind, SUBSCRIBE)
            self._subscribe(transceiver, track, preferences)
            return transceiver
        if media.direction in ("sendonly", "sendrecv"):
            role = BIDIRECTIONAL if media.direction == "sendrecv" else PUBLISH
            transceiver = Transceiver(mid, media.kind, role, track_name=publish.get(mid))
            if role == BIDIRECTIONAL:
                transceiver.send = self._new_stream(transceiver.track_name or mid)
            return transceiver
        return Transceiver(mid, media.kind, CLOSED)

    def _choice(self, transceiver: Transceiver | None, media: MediaDescription) -> MediaChoice:
        if transceiver is None or transceiver.role == CLOSED or media.rejected:
            return MediaChoice(accept=False)
        if transceiver.role == SUBSCRIBE:
            track = transceiver.subscription.track if transceiver.subscription else None
            codecs = track.codecs if track is not None else None
            return MediaChoice(direction="sendonly", send=transceiver.send, codecs=codecs,
                               simulcast=False, transport_cc=self.transport_cc)
        if transceiver.role == BIDIRECTIONAL:
            return MediaChoice(direction="sendrecv", send=transceiver.send,
                               transport_cc=self.transport_cc)
        return MediaChoice(direction="recvonly", transport_cc=self.transport_cc)

    # -- SFU offers ----------------------------------------------------------------

    def offer_media(self, requests: Iterable[MediaRequest], now: float) -> list[Transceiver]:
        """Add one m= section per request (mids from "0", in order) and offer them all.

        The offer is in :attr:`pending_offer` until :meth:`apply_answer`.

        :raises NegotiationPending: an SFU offer already awaits its answer.
        """
        if self.pending_offer is not None:
            raise NegotiationPending("an SFU offer is waiting for its answer (PUT renegotiate)")
        numbering = SessionNumbering(self.transceivers)
        added = []
        for request in requests:
            mid = str(self._next_mid)
            self._note_mid(mid)
            transceiver = Transceiver(mid, request.kind, request.role, pending=True,
                                      track_name=request.track_name)
            track = request.track
            if request.role == SUBSCRIBE and track is not None:
                offered = subscriber_codecs(track, self.transport_cc)
                transceiver.codecs = numbering.renumber_codecs(offered)
                transceiver.extensions = numbering.renumber_extensions(
                    subscriber_extensions(track, self.transport_cc))
                subscription = self._subscribe(transceiver, track, request.preferences)
                subscription.offered_payload_types = {
                    codec.payload_type: pt for codec in offered if not codec.is_rtx
                    and (pt := numbering.payload_type_for(codec)) is not None}
            elif request.role != APPLICATION:  # m=application: SCTP, nothing to number
                default = MediaOffer(mid, request.kind)
                transceiver.codecs = numbering.renumber_codecs(default.resolved_codecs())
                transceiver.extensions = numbering.renumber_extensions(
                    default.resolved_extensions())
                if request.role == BIDIRECTIONAL:
                    transceiver.send = self._new_stream(request.track_name or mid)
            added.append(transceiver)
        self.transceivers += added
        self.offer()
        return added

    def offer(self) -> SessionDescription:
        """Make (and keep as pending) an offer of every transceiver, in m= order."""
        self.local = self._next_local()
        self.pending_offer = create_offer(self.local, [t.offer() for t in self.transceivers])
        return self.pending_offer

    def apply_answer(self, sdp: str, now: float) -> None:
        """Apply the client's answer to :attr:`pending_offer` (``PUT renegotiate``).

        :raises NegotiationError: no offer is pending, or the answer does not
            fit it (the offer stays pending).
        :raises SdpError: the answer is not usable SDP.
        """
        if self.pending_offer is None:
            raise NegotiationError("there is no pending offer to answer")
        answer = SessionDescription.parse(sdp)
        negotiated = apply_answer(self.pending_offer, answer, we_offered=True)
        self.exchange = (pack_sdp(self.pending_offer.serialize()), pack_sdp(sdp), True)
        self.pending_offer = None
        self._settle(negotiated, now)

    # -- settling ---------------------------------------------------------------------

    def _settle(self, negotiated: NegotiatedSession, now: float) -> None:
        """Record what an exchange settled; create the PeerConnection the first time."""
        self.negotiated = negotiated
        self._settle_egress(negotiated)
        if self.connection is None:
            fingerprints = [(f.hash_function, f.fingerprint)
                            for f in negotiated.remote_fingerprints]
            self.ice.set_remote_credentials(negotiated.remote_ice_ufrag, negotiated.remote_ice_pwd)
            self.connection = PeerConnection(
                self.ice, self.certificate, negotiated.dtls_role, fingerprints,
                srtp_profiles=self.srtp_profiles, media_sink=self.media.receive_media,
                keylog=self.keylog, random=self.random)
        elif negotiated.remote_ice_ufrag != self.ice.remote_ufrag:
            self.ice.set_remote_credentials(negotiated.remote_ice_ufrag, negotiated.remote_ice_pwd)
        for media in negotiated.media:
            transceiver = self.transceiver(media.mid)
            if transceiver is None:
                continue
            transceiver.pending = False
            if not media.accepted:
                self._close(transceiver)
                continue
            transceiver.media = media
            if transceiver.role in (PUBLISH, BIDIRECTIONAL):
                self._settle_publish(transceiver, media, now)
            subscription = transceiver.subscription
            if subscription is not None and not subscription.active:
                subscription.configure(media, now)
        self.datachannels.settle(negotiated, now)
        ext_id = self._transport_cc_id()
        self.media.receive_transport_cc(
            ext_id, None if ext_id is None else self.rtcp.enable_transport_feedback())

    def _settle_egress(self, negotiated: NegotiatedSession) -> None:
        """Estimate what reaches this client once it receives media from us.

        A sending section that negotiated transport-wide-cc and ``transport-cc``
        makes the estimate send-side (we number what we send); otherwise the
        client's REMB is the estimate (realtime/sfu/estimate.py).
        """
        ext_id = None
        sends = False
        for media in negotiated.media:
            transceiver = self.transceiver(media.mid)
            if transceiver is None or not media.accepted \
                    or transceiver.role not in (SUBSCRIBE, BIDIRECTIONAL):
                continue
            sends = True
            if any(("transport-cc", None) in c.feedback for c in media.codecs):
                ext_id = ext_id or media.extension_id(TRANSPORT_CC)
        if not sends:
            return
        estimate = self.rtcp.estimate
        if estimate is None or (ext_id is not None) != estimate.transport_cc:
            self.rtcp.estimate = SubscriberEstimate(transport_cc=ext_id is not None)
        self.egress_transport_cc = ext_id

    def _transport_cc_id(self) -> int | None:
        """Return the transport-wide-cc extension id a publishing section negotiated, if any.

        BUNDLE shares one id per URI across sections (RFC 8843 §9.2), and the
        sender numbers every packet of the transport from one counter.
        """
        for transceiver in self.transceivers:
            media = transceiver.media
            if (media is not None and transceiver.role in (PUBLISH, BIDIRECTIONAL)
                    and any(("transport-cc", None) in c.feedback for c in media.codecs)):
                ext_id = media.extension_id(TRANSPORT_CC)
                if ext_id is not None:
                    return ext_id
        return None

    def _settle_publish(self, transceiver: Transceiver, media: Any, now: float) -> None:
        track = transceiver.track
        if track is None and transceiver.track_name is not None:
            track = transceiver.track = PublishedTrack(self, transceiver.mid,
                                                       transceiver.track_name, media, now)
            self.publish(track)
        elif track is not None:
            track.configure(media)
        if track is not None:
            self.media.route_signalled(track, media.remote_streams)

    def close_transceivers(self, mids: Iterable[str]) -> list[str]:
        """Close the listed m= sections without SDP (``force``); return the mids closed."""
        done = []
        for mid in mids:
            transceiver = self.transceiver(mid)
            if transceiver is not None and transceiver.role != CLOSED:
                self._close(transceiver)
                done.append(mid)
        return done

    def _close(self, transceiver: Transceiver) -> None:
        transceiver.role = CLOSED
        if transceiver.subscription is not None:
            self.subscriptions.pop(transceiver.subscription.ssrc, None)
            transceiver.subscription.stop()
        if transceiver.track is not None:
            for subscription in transceiver.track.end():
                subscription.forwarder = None
                subscription.selector = None

    # -- subscriptions --------------------------------------------------------------------

    def _subscribe(self, transceiver: Transceiver, track: PublishedTrack,
                   preferences: SimulcastPreferences | None) -> Subscription:
        if transceiver.send is None:
            transceiver.send = self._new_stream(track.name, track.session.session_id,
                                                rtx=track.kind == "video")
        subscription = Subscription(self, transceiver.mid, track, transceiver.send.ssrc,
                                    transceiver.send.rtx_ssrc, preferences, random=self.random)
        transceiver.subscription = subscription
        self.subscriptions[subscription.ssrc] = subscription
        if transceiver.send.rtx_ssrc is not None:
            self.subscriptions[transceiver.send.rtx_ssrc] = subscription
        return subscription

    def attach(self, mid: str, track: PublishedTrack, preferences: SimulcastPreferences | None,
               now: float) -> Subscription:
        """Carry ``track`` on the existing m= section ``mid`` without SDP.

        Used by ``mid: "#name"`` pulls (a bidirectional section) and by
        ``tracks/update`` (switch the track a subscribed section carries).

        :raises LocalProtocolError: the section cannot send or is not negotiated.
        """
        transceiver = self.transceiver(mid)
        if transceiver is None or transceiver.role not in (SUBSCRIBE, BIDIRECTIONAL) \
                or transceiver.media is None or transceiver.send is None:
            raise LocalProtocolError(f"mid {mid} cannot carry a track")
        if transceiver.kind != track.kind:
            raise LocalProtocolError(f"mid {mid} is {transceiver.kind}, the track is {track.kind}")
        old = transceiver.subscription
        if old is not None:
            old.stop()
        subscription = Subscription(self, mid, track, transceiver.send.ssrc,
                                    transceiver.send.rtx_ssrc, preferences, random=self.random)
        transceiver.subscription = subscription
        self.subscriptions[subscription.ssrc] = subscription
        if transceiver.send.rtx_ssrc is not None:
            self.subscriptions[transceiver.send.rtx_ssrc] = subscription
        subscription.configure(transceiver.media, now)
        return subscription

    # -- output ---------------------------------------------------------------------------

    def handle_event(self, event: PeerEvent, now: float) -> None:
        """Pass the PeerConnection's DataChannel events to :attr:`datachannels` (the fan-out)."""
        self.datachannels.handle_event(event, now)

    def send_rtp(self, packet: bytes) -> bool:
        """Send RTP to the client (queued on the connection; the I/O side flushes).

        Return False if it could not be sent (no PeerConnection, or not connected).
        """
        connection = self.connection
        if connection is not None and connection.send_rtp(packet):
            self.touched.add(self)
            return True
        return False

    @property
    def can_send_media(self) -> bool:
        """Return True once SRTP keys exist (DTLS done): forwarding may start."""
        connection = self.connection
        return connection is not None and connection.srtp is not None

    def send_rtcp(self, packet: bytes) -> None:
        """Send RTCP to the client (queued on the connection; the I/O side flushes)."""
        connection = self.connection
        if connection is not None and connection.send_rtcp(packet):
            self.touched.add(self)

    def take_touched(self) -> list:
        """Return (and forget) the sessions that queued output since the last call."""
        touched = list(self.touched)
        self.touched.clear()
        return touched

    # -- end --------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every subscription and end every published track of this session."""
        self.closed = True
        self.pending_offer = None
        self.datachannels.close_all()
        for transceiver in self.transceivers:
            if transceiver.role != CLOSED:
                self._close(transceiver)
        self.media.routes.clear()

    # -- internals ---------------------------------------------------------------------------

    def _note_mid(self, mid: str) -> None:
        if mid.isdigit() and mid.isascii():
            self._next_mid = max(self._next_mid, int(mid) + 1)

    def _next_local(self) -> LocalTransport:
        setup = "active" if self.connection is not None and \
            self.connection.dtls_role == "client" else "passive"
        return replace(self.local, setup=setup, session_version=self.local.session_version + 1)

    def _new_ssrc(self) -> int:
        taken = set(getattr(self, "subscriptions", {})) | {getattr(self, "rtcp_ssrc", 0)}
        while True:
            ssrc = int.from_bytes(self.random(4), "big")
            if ssrc and ssrc not in taken:
                return ssrc

    def _new_stream(self, track_name: str, stream_id: str | None = None,
                    rtx: bool = False) -> RtpStream:
        track_id = track_name if _is_token(track_name) else self.random(8).hex()
        return RtpStream(self._new_ssrc(), f"realtime-{self.session_id[:8]}",
                         stream_id or self.session_id, track_id,
                         self._new_ssrc() if rtx else None)


def _is_token(text: str) -> bool:
    """Return whether ``text`` may appear in ``a=msid`` (RFC 8830 §2: token chars, ≤ 64)."""
    return 0 < len(text) <= 64 and all(
        0x21 <= ord(ch) <= 0x7E and ch not in '"(),/:;<=>?@[\\]' for ch in text)
