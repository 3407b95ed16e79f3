"""
Transport-wide feedback, receiver side: arrival times of a peer's packets, reported back.

A sender that negotiated the transport-wide sequence-number header extension
(draft-holmer-rmcat-transport-wide-cc-extensions-01 §2, ``a=extmap:N
http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01``)
and the ``transport-cc`` RTCP feedback numbers *every* RTP packet of the
transport (all SSRCs of a BUNDLE share one 16-bit counter) and runs its
congestion controller on what the receiver reports: which numbers arrived
and when (§3.1, the codec is :class:`~realtime.rtcp.transport_cc.TransportFeedback`).
The receiver does no estimation at all; that is the point of the draft
(send-side estimation, draft-ietf-rmcat-gcc-02 §2)::

    publisher ── RTP (twcc seq 1000..1049) ──> SFU: TransportFeedbackSender.receive(seq, now)
              <── RTPFB fmt 15 every `interval` ──  feedback_due(now): base 1000, count 50,
                                                    reference time (64 ms), deltas (250 µs)

:class:`TransportFeedbackSender` is sans-I/O: ``receive(seq, now)`` per
packet (cheap: one unwrap and one dict store), ``get_timer()`` and
``feedback_due(now)`` returning the packets to send.  Memory is bounded:
at most :data:`MAX_PENDING` arrivals are held; a gap larger than that
restarts reporting from the newest packets (their sender treats what it
never hears about as lost, §3.1).  Packets arriving after their number was
reported are not reported again (late arrivals: the sender already counted
them lost; Chromium's receiver behaves alike within one report).
"""

from __future__ import annotations

from realtime.rtcp.transport_cc import (
    DELTA_UNIT_US,
    REFERENCE_TIME_UNIT_US,
    TransportFeedback,
)

__all__ = ["MAX_PENDING", "MAX_STATUS_COUNT", "TransportFeedbackSender"]

MAX_PENDING = 4096
"""Arrivals held between two reports at most (older ones are dropped unreported)."""
MAX_STATUS_COUNT = 1000
"""Packets described by one feedback packet at most (keeps it under ~2 kB, well inside an MTU
for reasonable patterns; long runs take several)."""
_DELTA_MAX = 0x7FFF
_DELTA_MIN = -0x8000


class TransportFeedbackSender:
    """Collect the transport-wide sequence numbers one peer sends; build its feedback.

    :param sender_ssrc: our SSRC on this transport (the RTCP sender).
    :param interval: seconds between feedback packets while packets arrive
        (Chromium's receiver sends about every 50-100 ms).
    :ivar media_ssrc: the "SSRC of media source" written in feedback (the
        draft leaves it to the receiver; any SSRC of the peer).
    """

    __slots__ = ("sender_ssrc", "media_ssrc", "interval", "_arrivals", "_highest", "_next_base",
                 "_next_due", "_count", "packets_received", "feedback_sent", "dropped_late")

    def __init__(self, sender_ssrc: int, interval: float = 0.1) -> None:
        self.sender_ssrc = sender_ssrc
        self.media_ssrc = 0
        self.interval = interval
        self._arrivals: dict[int, int] = {}  # extended seq -> arrival (µs)
        self._highest: int | None = None  # extended highest seq received
        self._next_base: int | None = None  # first extended seq not yet reported
        self._next_due: float | None = None
        self._count = 0  # feedback packet count (8 bits on the wire)
        self.packets_received = 0
        self.feedback_sent = 0
        self.dropped_late = 0

    def receive(self, seq: int, now: float) -> None:
        """Note that transport-wide sequence number ``seq`` (16 bits) arrived at ``now``."""
        highest = self._highest
        if highest is None:
            ext = seq
            self._highest = ext
            self._next_base = ext
        else:
            ext = highest + ((seq - highest + 0x8000) & 0xFFFF) - 0x8000
            if ext > highest:
                self._highest = ext
        if ext < self._next_base:  # type: ignore[operator]
            self.dropped_late += 1
            return
        arrivals = self._arrivals
        if len(arrivals) >= MAX_PENDING:
            self._trim()
            if ext < self._next_base:  # type: ignore[operator]
                self.dropped_late += 1
                return
        arrivals[ext] = int(now * 1_000_000)
        self.packets_received += 1
        if self._next_due is None:
            self._next_due = now + self.interval

    def _trim(self) -> None:
        """Too much held: keep only the newest half (their sender counts the rest lost)."""
        highest = self._highest
        assert highest is not None
        keep_from = highest - MAX_PENDING // 2
        self._arrivals = {s: t for s, t in self._arrivals.items() if s > keep_from}
        self._next_base = max(self._next_base or keep_from, keep_from + 1)

    def get_timer(self) -> float | None:
        """Return when the next feedback is due (None while nothing is waiting)."""
        return self._next_due

    def feedback_due(self, now: float) -> list[TransportFeedback]:
        """Return the feedback to send now (empty before the deadline)."""
        due = self._next_due
        if due is None or now < due:
            return []
        self._next_due = None
        return self.flush()

    def flush(self) -> list[TransportFeedback]:
        """Report every arrival held, at once; return the feedback packets.

        Each packet covers up to :data:`MAX_STATUS_COUNT` numbers from the
        first one not yet reported (losses included), with the reference time
        of its first received packet; a new packet starts when a receive delta
        would not fit 16 signed bits (8 s).  A loss run longer than a whole
        packet is skipped unreported (the sender counts it lost anyway).
        """
        arrivals, self._arrivals = self._arrivals, {}
        if not arrivals:
            return []
        base, end = self._next_base, self._highest
        assert base is not None and end is not None
        received = sorted(arrivals)
        out: list[TransportFeedback] = []
        index, count = 0, len(received)
        seq = base
        while index < count:
            first = received[index]
            if first - seq >= MAX_STATUS_COUNT:
                seq = first
            reference = arrivals[first] // REFERENCE_TIME_UNIT_US
            previous = reference * REFERENCE_TIME_UNIT_US
            deltas: list[int | None] = []
            start = seq
            while index < count and received[index] - start < MAX_STATUS_COUNT:
                number = received[index]
                delta = (arrivals[number] - previous) // DELTA_UNIT_US
                if not _DELTA_MIN <= delta <= _DELTA_MAX:
                    break  # a new packet with a new reference time
                deltas.extend([None] * (number - seq))
                deltas.append(delta)
                previous += delta * DELTA_UNIT_US
                seq = number + 1
                index += 1
            reference &= 0xFFFFFF  # signed 24 bits on the wire: the sender unwraps it
            if reference >= 0x800000:
                reference -= 0x1000000
            out.append(TransportFeedback.build(
                self.sender_ssrc, self.media_ssrc, start & 0xFFFF, reference,
                self._count & 0xFF, deltas))
            self._count += 1
        self._next_base = end + 1
        self.feedback_sent += len(out)
        return out
