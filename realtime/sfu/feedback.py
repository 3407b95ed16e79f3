"""
The SFU terminates RTCP: its own reports and feedback on every leg, nothing relayed blindly.

RFC 7667 §3.7: a Selective Forwarding Middlebox is an RTP endpoint towards
each participant.  It sends its own receiver reports to publishers and its
own sender reports to subscribers, answers subscribers' NACKs from its
buffers, and turns many subscribers' keyframe wishes into one upstream
request::

      publisher                         SFU                              subscribers
         |  RTP  ------------------> PublisherFeedback ---> forwarders ---> RTP   |
         |  <--- RR (RFC 3550 §6.4.2)     |  NackGenerator: gaps         SR --->  |
         |  <--- NACK (RFC 4585 §6.2.1)   |  KeyframeRequester            <--- RR  |
         |  <--- PLI / FIR (RFC 5104)     |       ^                     <--- NACK |--+
         |  SR --->  (LSR for our RR)     |       |  KeyframeRequested  <--- PLI  |  |
         |                                |       +---- SubscriberFeedback <------+  |
         |                                |              answers NACKs locally <-----+
         |                                |              (Forwarder.retransmit), never upstream

:class:`PublisherFeedback` is the SFU's RTCP receiver side of one publishing
PeerConnection; :class:`SubscriberFeedback` the sender side of one
subscribing PeerConnection.  A PeerConnection that does both gets one of
each, and every RTCP datagram it sends goes to both: each ignores packets
about SSRCs it does not know.

Both are sans-I/O: inputs ``receive_rtcp(data, now)``, ``handle_timer(now)``
and commands; outputs :meth:`~PublisherFeedback.rtcp_to_send` (datagrams to
protect with SRTCP), :meth:`SubscriberFeedback.rtp_to_send`
(retransmissions, to protect with SRTP), ``get_timer()`` and
``next_event()``.

Deliberate deviations: reports go out every ``report_interval`` scaled by a
random factor in [0.5, 1.5] (RFC 3550 §6.3.1's randomisation, not its
bandwidth-based interval), and NACK, PLI and FIR are sent at once as
reduced-size RTCP (RFC 5506 §3, which WebRTC negotiates with
``a=rtcp-rsize``) rather than under RFC 4585 §3.5's early-feedback rules.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

from realtime.media.keyframes import KeyframeRequester
from realtime.media.nack import NackGenerator
from realtime.rtcp.bye import Goodbye
from realtime.rtcp.feedback import (
    FirEntry,
    FullIntraRequest,
    GenericNack,
    PictureLossIndication,
    ReceiverEstimatedMaxBitrate,
    nack_items,
)
from realtime.rtcp.packet import decode_compound, encode_compound
from realtime.rtcp.reports import ReceiverReport, ReportBlock, SenderReport
from realtime.rtcp.sdes import SdesChunk, SourceDescription
from realtime.rtp.statistics import ReceiverStatistics, ntp_middle32, ntp_timestamp
from realtime.sfu.forwarder import Forwarder

__all__ = [
    "BitrateEstimated",
    "KeyframeRequested",
    "PublisherFeedback",
    "SourceEnded",
    "SubscriberFeedback",
]

MAX_NACK_ITEMS = 64
"""NACK FCI entries per RTCP packet (64 x 4 bytes keeps it well inside an MTU)."""


@dataclass(frozen=True, slots=True)
class KeyframeRequested:
    """A subscriber sent PLI or FIR about our SSRC ``media_ssrc``, fed from publisher SSRC ``ssrc``."""

    ssrc: int
    media_ssrc: int


@dataclass(frozen=True, slots=True)
class BitrateEstimated:
    """A subscriber's REMB said ``bitrate`` bit/s reach it (input to simulcast selection)."""

    bitrate: int


@dataclass(frozen=True, slots=True)
class SourceEnded:
    """A publisher sent BYE for ``ssrc``."""

    ssrc: int


Event = KeyframeRequested | BitrateEstimated | SourceEnded


def _interval(report_interval: float, random: Callable[[int], bytes]) -> float:
    """Return ``report_interval`` times a random factor in [0.5, 1.5) (RFC 3550 §6.3.1)."""
    return report_interval * (0.5 + int.from_bytes(random(2), "big") / 65536)


class _Source:
    __slots__ = ("stats", "nacks", "keyframes", "use_fir")

    def __init__(
        self,
        stats: ReceiverStatistics,
        nacks: NackGenerator | None,
        keyframes: KeyframeRequester,
        use_fir: bool,
    ) -> None:
        self.stats = stats
        self.nacks = nacks
        self.keyframes = keyframes
        self.use_fir = use_fir


class PublisherFeedback:
    """RTCP towards one publisher: receiver reports, upstream NACKs and keyframe requests.

    :param ssrc: the SSRC the SFU reports from on this leg.
    :param cname: the CNAME of the SDES item sent with every report.
    :param report_interval: mean seconds between receiver reports.
    :param keyframe_interval: at most one PLI/FIR per stream this often.
    :param max_bitrate: if set, every receiver report carries a REMB
        (draft-alvestrand-rmcat-remb §2) of this many bit/s for all sources:
        a sender without transport-wide feedback uses it as its estimate
        (Chromium trusts REMB during its first seconds), so simulcast's
        upper layers start at once instead of after a slow loss-based ramp.
    """

    def __init__(
        self,
        ssrc: int,
        cname: str = "realtime-sfu",
        report_interval: float = 1.0,
        keyframe_interval: float = 0.3,
        random: Callable[[int], bytes] = os.urandom,
        max_bitrate: int | None = None,
    ) -> None:
        self.ssrc = ssrc
        self.max_bitrate = max_bitrate
        self.cname = cname
        self.report_interval = report_interval
        self.keyframe_interval = keyframe_interval
        self.random = random
        self.sources: dict[int, _Source] = {}
        self.rtt = 0.1
        self._next_report: float | None = None
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self.nacks_sent = 0
        self.keyframe_requests_sent = 0

    def add_source(self, ssrc: int, clock_rate: int, nack: bool = True, fir: bool = False) -> None:
        """Start receiving ``ssrc``; ``nack`` / ``fir``: those ``a=rtcp-fb`` were negotiated."""
        generator = NackGenerator() if nack else None
        if generator is not None:
            generator.set_rtt(self.rtt)
        self.sources[ssrc] = _Source(
            ReceiverStatistics(ssrc, clock_rate),
            generator,
            KeyframeRequester(self.keyframe_interval),
            fir,
        )

    def remove_source(self, ssrc: int) -> None:
        """Stop reporting on ``ssrc``."""
        self.sources.pop(ssrc, None)

    def set_rtt(self, rtt: float) -> None:
        """Use ``rtt`` seconds (ICE consent round trips) to space repeated NACKs."""
        self.rtt = rtt
        for source in self.sources.values():
            if source.nacks is not None:
                source.nacks.set_rtt(rtt)

    def receive_rtp(
        self,
        ssrc: int,
        sequence_number: int,
        timestamp: int,
        keyframe: bool,
        now: float,
        retransmission: bool = False,
    ) -> None:
        """Account for one packet (``retransmission``: recovered via RTX, only fills a gap)."""
        source = self.sources.get(ssrc)
        if source is None:
            return
        if not retransmission:
            source.stats.receive(sequence_number, timestamp, now)
        if source.nacks is not None:
            source.nacks.receive(sequence_number, now)
        if keyframe:
            source.keyframes.keyframe_received(now)
        if self._next_report is None:
            self._next_report = now + _interval(self.report_interval, self.random)

    def request_keyframe(self, ssrc: int, now: float) -> None:
        """Ask for a key frame of ``ssrc``: aggregated, debounced, sent by :meth:`handle_timer`."""
        source = self.sources.get(ssrc)
        if source is not None:
            source.keyframes.request(now)

    def receive_rtcp(self, data: bytes, now: float) -> None:
        """Take the publisher's SRs (for LSR/DLSR) and BYEs; malformed data raises DecodeError."""
        self.receive_packets(decode_compound(data), now)

    def receive_packets(self, packets: Iterable[object], now: float) -> None:
        """Take the SRs and BYEs of an already decoded compound (the session decodes once)."""
        for packet in packets:
            if isinstance(packet, SenderReport):
                source = self.sources.get(packet.ssrc)
                if source is not None:
                    source.stats.receive_sender_report(packet.ntp_timestamp, now)
            elif isinstance(packet, Goodbye):
                for ssrc in packet.sources:
                    if ssrc in self.sources:
                        self._events.append(SourceEnded(ssrc))

    def handle_timer(self, now: float) -> None:
        """Queue due NACKs, PLI/FIRs and the periodic receiver report."""
        out = self._out
        for ssrc, source in self.sources.items():
            nacks = source.nacks
            if nacks is not None:
                items = nack_items(nacks.nacks_due(now))
                for start in range(0, len(items), MAX_NACK_ITEMS):
                    chunk = items[start : start + MAX_NACK_ITEMS]
                    out.append(GenericNack(self.ssrc, ssrc, chunk).encode())
                    self.nacks_sent += 1
                if nacks.take_keyframe_wanted():
                    source.keyframes.request(now)
            requester = source.keyframes
            if requester.due(now):
                self.keyframe_requests_sent += 1
                if source.use_fir:
                    entry = FirEntry(ssrc, requester.fir_sequence_number)
                    out.append(FullIntraRequest(self.ssrc, 0, (entry,)).encode())
                else:
                    out.append(PictureLossIndication(self.ssrc, ssrc).encode())
        if self._next_report is not None and now >= self._next_report:
            self._next_report = now + _interval(self.report_interval, self.random)
            out.append(self.receiver_report(now))

    def receiver_report(self, now: float) -> bytes:
        """Return an RR + SDES compound with one block per source (31 at most per RR)."""
        blocks = [
            source.stats.report_block(now)
            for source in self.sources.values()
            if source.stats.received
        ]
        packets: list = [ReceiverReport(self.ssrc, tuple(blocks[:31]))]
        for start in range(31, len(blocks), 31):
            packets.append(ReceiverReport(self.ssrc, tuple(blocks[start : start + 31])))
        packets.append(SourceDescription.with_cname(self.ssrc, self.cname))
        if self.max_bitrate is not None and self.sources:
            packets.append(ReceiverEstimatedMaxBitrate.from_bitrate(
                self.ssrc, self.max_bitrate, tuple(self.sources)[:255]))
        return encode_compound(packets)

    def get_timer(self) -> float | None:
        """Return the earliest deadline: a NACK, a keyframe request or the next report."""
        deadlines = [self._next_report] if self._next_report is not None else []
        for source in self.sources.values():
            if source.nacks is not None:
                deadline = source.nacks.get_timer()
                if deadline is not None:
                    deadlines.append(deadline)
            deadline = source.keyframes.get_timer()
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines) if deadlines else None

    def rtcp_to_send(self) -> list[bytes]:
        """Return and forget the RTCP datagrams queued for the publisher."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        """Return the next :class:`SourceEnded`, or None."""
        return self._events.popleft() if self._events else None


class SubscriberFeedback:
    """RTCP towards one subscriber: SRs, NACKs answered locally, keyframe wishes upstream.

    :param cname: the CNAME of the SDES items sent with every report.
    :param report_interval: mean seconds between sender reports.
    """

    def __init__(
        self,
        cname: str = "realtime-sfu",
        report_interval: float = 1.0,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.cname = cname
        self.report_interval = report_interval
        self.random = random
        self.forwarders: dict[int, Forwarder] = {}
        self.rtt: float | None = None
        self._next_report: float | None = None
        self._rtp: list[bytearray] = []
        self._rtcp: list[bytes] = []
        self._events: deque[Event] = deque()
        self.nacks_received = 0
        self.retransmissions = 0
        #: BYEs sent for subscriptions that stopped
        self.goodbyes = 0

    def add(self, forwarder: Forwarder, now: float) -> None:
        """Report on and answer NACKs for ``forwarder``'s SSRC from now on."""
        self.forwarders[forwarder.ssrc] = forwarder
        if self._next_report is None:
            self._next_report = now + _interval(self.report_interval, self.random)

    def remove(self, forwarder: Forwarder) -> None:
        """Forget ``forwarder`` (its track ended or its m= section closed) and say BYE.

        RFC 3550 §6.6: a source that stops sends a BYE, in a compound that
        starts with a report (§6.1): an empty RR from the leaving SSRC, its
        SDES CNAME, then BYE for it and its RTX SSRC::

            RR (SSRC=ours, no blocks) | SDES (CNAME) | BYE (ours, ours RTX) "track ended"
        """
        if self.forwarders.pop(forwarder.ssrc, None) is None:
            return
        sources = (forwarder.ssrc,) if forwarder.rtx_ssrc is None else \
            (forwarder.ssrc, forwarder.rtx_ssrc)
        self.goodbyes += 1
        self._rtcp.append(encode_compound([
            ReceiverReport(forwarder.ssrc),
            SourceDescription.with_cname(forwarder.ssrc, self.cname),
            Goodbye(sources, b"track ended"),
        ]))

    def receive_rtcp(self, data: bytes, now: float) -> None:
        """Handle a subscriber's RTCP datagram; malformed data raises DecodeError."""
        self.receive_packets(decode_compound(data), now)

    def receive_packets(self, packets: Iterable[object], now: float) -> None:
        """Handle an already decoded compound: answer NACKs, note PLI/FIR, RTT and REMB."""
        for packet in packets:
            if isinstance(packet, GenericNack):
                forwarder = self.forwarders.get(packet.media_ssrc)
                if forwarder is not None:
                    self.nacks_received += 1
                    resent = forwarder.retransmit(packet.lost_sequence_numbers(), now)
                    self.retransmissions += len(resent)
                    self._rtp.extend(resent)
            elif isinstance(packet, PictureLossIndication):
                self._keyframe_wanted(packet.media_ssrc)
            elif isinstance(packet, FullIntraRequest):
                for entry in packet.entries:
                    self._keyframe_wanted(entry.ssrc)
            elif isinstance(packet, (ReceiverReport, SenderReport)):
                for block in packet.reports:
                    self._report_block(block, now)
            elif isinstance(packet, ReceiverEstimatedMaxBitrate):
                self._events.append(BitrateEstimated(packet.bitrate))

    def _keyframe_wanted(self, ssrc: int) -> None:
        forwarder = self.forwarders.get(ssrc)
        if forwarder is not None and forwarder.source is not None:
            self._events.append(KeyframeRequested(forwarder.source.ssrc, ssrc))

    def _report_block(self, block: ReportBlock, now: float) -> None:
        """Measure the round trip from a block about one of our SSRCs (RFC 3550 §6.4.1)."""
        if block.ssrc not in self.forwarders or block.lsr == 0:
            return
        rtt = ((ntp_middle32(ntp_timestamp(now)) - block.lsr - block.dlsr) & 0xFFFFFFFF) / 65536
        if rtt < 60:
            self.rtt = rtt if self.rtt is None else 0.875 * self.rtt + 0.125 * rtt

    def handle_timer(self, now: float) -> None:
        """Queue the periodic sender reports when due."""
        if self._next_report is not None and now >= self._next_report:
            self._next_report = now + _interval(self.report_interval, self.random)
            report = self.sender_reports(now)
            if report:
                self._rtcp.append(report)

    def sender_reports(self, now: float) -> bytes:
        """Return an SR + SDES compound for every forwarder that has sent media (b"" if none)."""
        packets: list[SenderReport | SourceDescription] = []
        chunks: list[SdesChunk] = []
        ntp = ntp_timestamp(now)
        for forwarder in self.forwarders.values():
            sender = forwarder.sender
            if not sender.packet_count:
                continue
            rtp = sender.rtp_timestamp_at(now, forwarder.clock_rate)
            packets.append(
                SenderReport(forwarder.ssrc, ntp, rtp, sender.packet_count, sender.octet_count)
            )
            chunks.extend(SourceDescription.with_cname(forwarder.ssrc, self.cname).chunks)
        if not packets:
            return b""
        for start in range(0, len(chunks), 31):
            packets.append(SourceDescription(tuple(chunks[start : start + 31])))
        return encode_compound(packets)

    def get_timer(self) -> float | None:
        """Return when the next sender report is due, or None."""
        return self._next_report

    def rtp_to_send(self) -> list[bytearray]:
        """Return and forget the retransmissions queued for the subscriber."""
        out, self._rtp = self._rtp, []
        return out

    def rtcp_to_send(self) -> list[bytes]:
        """Return and forget the RTCP datagrams queued for the subscriber."""
        out, self._rtcp = self._rtcp, []
        return out

    def next_event(self) -> Event | None:
        """Return the next :class:`KeyframeRequested` or :class:`BitrateEstimated`, or None."""
        return self._events.popleft() if self._events else None
