"""
RTCP termination for one SFU session: its publisher leg and its subscriber leg, wired.

An SFU is an RTP endpoint on every PeerConnection it serves (RFC 7667 §3.7,
RFC 3550 §7.3 "translators ... must not forward RTCP blindly"): it reports on
what it receives, reports on what it sends, repairs loss on each hop and
turns many keyframe wishes into one.  One session may publish and subscribe
at once, so it has both legs, fed from one decoded compound::

              session's decrypted RTCP  ──decode_compound (once)──┐
                                                                  v
      PublisherFeedback  <── SR (LSR/DLSR), BYE      SubscriberFeedback  <── NACK, PLI, FIR, RR, REMB
        │ NackGenerator per source: gaps -> NACK         │ NACK -> Forwarder.retransmit -> RTP (RTX)
        │ KeyframeRequester per source: PLI/FIR          │ PLI/FIR -> KeyframeRequested(publisher ssrc,
        │   (at once, then ≥ 300 ms apart)               │          our ssrc) -> Subscription ->
        │ RR + SDES (+ REMB) every ~1 s                  │          publisher's RtcpLegs.request_keyframe
        v                                                │ SR + SDES every ~1 s; RTT from RR blocks
      session.send_rtcp (to the publisher)               v
                                                   session.send_rtp / send_rtcp (to the subscriber)

      Transport-wide feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1)
      to a publisher that negotiated transport-cc: the session's routing notes each
      packet's transport-wide sequence number in a TransportFeedbackSender
      (realtime/sfu/twcc.py); its reports leave every 100 ms with the legs' output.

      RTT: the subscriber leg's RR-derived round trip is the same path as the
      publisher leg's, so it spaces this session's upstream NACKs (RFC 4585 §3.5.3
      lets feedback timing follow the measured round trip).

Subscriber NACKs never reach the publisher: they are consumed by the
subscriber leg and answered from the published stream's
:class:`~realtime.media.nack.RetransmissionBuffer`; only the publisher
leg's own NackGenerator, fed with what actually arrived from the publisher,
sends NACKs upstream.

Timers: :meth:`RtcpLegs.get_timer` is the earliest deadline of both legs; the
session reports it through ``get_timer()`` and the I/O side folds it into
the connection's single timer (:mod:`realtime.net.peers`).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Sequence

from realtime.sdp.codecs import Codec
from realtime.rtcp.transport_cc import TransportFeedback
from realtime.sfu.allocator import allocate
from realtime.sfu.estimate import SubscriberEstimate, padding_packet, transport_cc_block
from realtime.sfu.twcc import TransportFeedbackSender
from realtime.sfu.feedback import (
    BitrateEstimated,
    KeyframeRequested,
    PublisherFeedback,
    SubscriberFeedback,
)
from realtime.sfu.forwarder import Forwarder

__all__ = ["DEFAULT_MAX_BITRATE", "RtcpLegs", "feedback_flags"]

#: the REMB every publisher leg sends (bit/s): enough for three simulcast
#: layers of 720p (≈ 2.5 Mbit/s in Chromium) plus audio
DEFAULT_MAX_BITRATE = 10_000_000


def feedback_flags(codecs: Iterable[Codec]) -> tuple[bool, bool]:
    """Return ``(nack, fir)`` for a publisher's formats: NACK negotiated; FIR only without PLI.

    RFC 4585 §4.2 ``a=rtcp-fb:* nack`` allows Generic NACK; ``nack pli``
    allows PLI and ``ccm fir`` (RFC 5104 §7.1) FIR.  PLI is preferred: it
    needs no command sequence number state on the sender.
    """
    feedback = {fb for codec in codecs if not codec.is_rtx for fb in codec.feedback}
    nack = ("nack", None) in feedback
    fir = ("ccm", "fir") in feedback and ("nack", "pli") not in feedback
    return nack, fir


class RtcpLegs:
    """Terminate one session's RTCP: both feedback legs, their output and their timer.

    :param session: the owner; needs ``send_rtp(packet)``, ``send_rtcp(packet)``
        and ``subscriptions`` (our SSRC -> :class:`~realtime.sfu.track.Subscription`).
    :param ssrc: the SSRC the session's reports and feedback are sent from.
    :param cname: the CNAME of our SDES items.
    :param max_bitrate: REMB value towards publishers (None: no REMB).
    """

    def __init__(self, session: Any, ssrc: int, cname: str,
                 max_bitrate: int | None = DEFAULT_MAX_BITRATE,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.session = session
        self.publisher = PublisherFeedback(ssrc, cname, max_bitrate=max_bitrate, random=random)
        self.subscriber = SubscriberFeedback(cname, random=random)
        #: the latest REMB a subscriber of this session sent (bit/s), if any
        self.subscriber_estimate: int | None = None
        #: transport-wide feedback to a publisher that negotiated transport-cc
        self.transport_feedback: TransportFeedbackSender | None = None
        #: what reaches this session as a subscriber (made when it first receives media)
        self.estimate: SubscriberEstimate | None = None
        self.sources_ended = 0

    # -- registration ----------------------------------------------------------------

    def add_source(self, ssrc: int, clock_rate: int, codecs: Iterable[Codec]) -> None:
        """Receive-report on publisher SSRC ``ssrc`` and NACK its gaps (if negotiated)."""
        if ssrc not in self.publisher.sources:
            nack, fir = feedback_flags(codecs)
            self.publisher.add_source(ssrc, clock_rate, nack=nack, fir=fir)

    def enable_transport_feedback(self) -> TransportFeedbackSender:
        """Send transport-wide feedback from now on; return where arrivals go."""
        if self.transport_feedback is None:
            self.transport_feedback = TransportFeedbackSender(self.publisher.ssrc)
        return self.transport_feedback

    def remove_source(self, ssrc: int) -> None:
        """Stop reporting on publisher SSRC ``ssrc`` (its track ended)."""
        self.publisher.remove_source(ssrc)

    def add_forwarder(self, forwarder: Forwarder, now: float) -> None:
        """Send SRs for ``forwarder``'s SSRC and answer NACKs about it."""
        self.subscriber.add(forwarder, now)

    def remove_forwarder(self, forwarder: Forwarder) -> None:
        """Forget ``forwarder`` (its subscription stopped)."""
        self.subscriber.remove(forwarder)

    # -- inputs --------------------------------------------------------------------------

    def receive_rtp(self, ssrc: int, sequence_number: int, timestamp: int, keyframe: bool,
                    now: float, retransmission: bool = False) -> None:
        """Account for one publisher packet (statistics, gaps, key frames)."""
        self.publisher.receive_rtp(ssrc, sequence_number, timestamp, keyframe, now,
                                   retransmission)

    def receive_rtcp(self, packets: Sequence[object], now: float) -> None:
        """Handle one decoded compound from the client; send what it causes at once."""
        self.publisher.receive_packets(packets, now)
        self.subscriber.receive_packets(packets, now)
        estimate = self.estimate
        if estimate is not None:
            fed = False
            for packet in packets:
                if isinstance(packet, TransportFeedback):
                    estimate.receive_feedback(packet, now)
                    fed = True
            if fed:
                self.allocate(now)
        self.flush(now)

    def allocate(self, now: float) -> None:
        """Share the subscriber's estimate among its pulled tracks (realtime/sfu/allocator.py)."""
        estimate = self.estimate
        if estimate is not None:
            rtt = self.subscriber.rtt
            if rtt is not None:
                estimate.set_rtt(rtt)
            subscriptions = self.session.subscriptions
            allocate({id(s): s for s in subscriptions.values()}.values(), estimate, now)
            pacer = getattr(self.session, "pacer", None)
            if pacer is not None:  # video (and its RTX: probes) at 2.5x the estimate
                pacer.set_rate(estimate.pacing_bitrate)
                pacer.video = frozenset(ssrc for ssrc, s in subscriptions.items()
                                        if s.track.kind == "video")

    def stamped_number(self, data: bytes) -> int:
        """Return the transport-wide number in a packet the pacer holds back, or -1."""
        estimate = self.estimate
        return estimate.stamped_number(data) if estimate is not None else -1

    def departed(self, seq: int, now: float) -> None:
        """The packet stamped ``seq`` the pacer held left at ``now`` (its send time)."""
        estimate = self.estimate
        if estimate is not None:
            estimate.departed(seq, now)

    def request_keyframe(self, ssrc: int, now: float) -> None:
        """Ask the publisher for a key frame of ``ssrc`` (sent now unless debounced)."""
        self.publisher.request_keyframe(ssrc, now)
        self.handle_timer(now)

    def handle_timer(self, now: float) -> None:
        """Send due NACKs, keyframe requests and reports of both legs."""
        rtt = self.subscriber.rtt
        if rtt is not None and rtt != self.publisher.rtt:
            self.publisher.set_rtt(rtt)
        self.publisher.handle_timer(now)
        self.subscriber.handle_timer(now)
        twcc = self.transport_feedback
        if twcc is not None:
            for feedback in twcc.feedback_due(now):
                self.session.send_rtcp(feedback.encode())
        estimate = self.estimate
        if estimate is not None:
            padding = estimate.probe_due(now)
            if padding:
                self._send_probe(padding, now)
            if estimate.transport_cc and not estimate.feedback_received \
                    and not estimate.silent and estimate.check_silent(now):
                self.allocate(now)  # unanswered: REMB or the best layers
        pacer = getattr(self.session, "pacer", None)
        if pacer is not None and pacer.take_keyframe_wanted():  # it dropped stale video
            for subscription in {id(s): s for s in self.session.subscriptions.values()}.values():
                if subscription.track.kind == "video":
                    subscription.receive_keyframe_request(now)
        self.flush(now)

    def _send_probe(self, padding: list[int], now: float) -> None:
        """Send a probe burst: padding-only packets on the RTX stream of a video subscription
        (realtime/sfu/estimate.py), each with its transport-wide number."""
        estimate, ext_id = self.estimate, self.session.egress_transport_cc
        if estimate is None or ext_id is None:
            return
        forwarder = next((s.forwarder for s in self.session.subscriptions.values()
                          if s.forwarder is not None and s.forwarder.rtx_ssrc is not None
                          and s.forwarder.rtx_payload_types), None)
        if forwarder is None or forwarder.rtx_ssrc is None:
            return
        rtx_pt = next(iter(forwarder.rtx_payload_types.values()))
        timestamp = forwarder.sender.rtp_timestamp_at(now, forwarder.clock_rate)
        block = transport_cc_block(ext_id)
        for size in padding:
            packet = padding_packet(forwarder.rtx_ssrc, rtx_pt,
                                    forwarder.next_rtx_sequence_number(), timestamp, block, size)
            estimate.stamp(packet, now)
            estimate.probe_stamped(estimate.last_sequence_number)
            self.session.send_rtp(bytes(packet))

    def flush(self, now: float) -> None:
        """Send queued retransmissions and RTCP; act on the legs' events."""
        session = self.session
        for retransmission in self.subscriber.rtp_to_send():
            session.send_rtp(bytes(retransmission))
        for packet in self.publisher.rtcp_to_send():
            session.send_rtcp(packet)
        for packet in self.subscriber.rtcp_to_send():
            session.send_rtcp(packet)
        while (event := self.subscriber.next_event()) is not None:
            if isinstance(event, KeyframeRequested):
                subscription = session.subscriptions.get(event.media_ssrc)
                if subscription is not None:
                    subscription.receive_keyframe_request(now)
            elif isinstance(event, BitrateEstimated):
                self.subscriber_estimate = event.bitrate
                estimate = self.estimate
                if estimate is not None:
                    estimate.receive_remb(event.bitrate)
                    if not estimate.transport_cc or not estimate.feedback_received:
                        self.allocate(now)
        while self.publisher.next_event() is not None:
            self.sources_ended += 1

    # -- outputs ---------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """Return the earliest deadline of either leg, or None."""
        a, b = self.publisher.get_timer(), self.subscriber.get_timer()
        if a is None:
            a = b
        elif b is not None and b < a:
            a = b
        for machine in (self.transport_feedback, self.estimate):
            if machine is not None:
                c = machine.get_timer()
                if c is not None and (a is None or c < a):
                    a = c
        return a

    def counters(self) -> dict[str, int]:
        """Return the NACK shield's and keyframe requests' counters (diagnostics)."""
        subscriber, publisher = self.subscriber, self.publisher
        twcc = self.transport_feedback
        return {
            "transportFeedbackSent": twcc.feedback_sent if twcc is not None else 0,
            "nacksReceived": subscriber.nacks_received,
            "retransmissionsAnswered": subscriber.retransmissions,
            "nacksSentUpstream": publisher.nacks_sent,
            "keyframeRequestsSentUpstream": publisher.keyframe_requests_sent,
        }
