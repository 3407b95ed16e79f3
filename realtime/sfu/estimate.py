"""
The SFU's estimate of what reaches one subscriber, and the layers that fit it.

Send side (a subscriber that negotiated transport-cc, draft-holmer-rmcat-
transport-wide-cc-extensions-01)::

    Forwarder._emit / retransmit ──stamp(out, now)──> SubscriberEstimate
        the ExtensionPlan appended a placeholder element (id, 0xFFFF) last in
        the block; stamp() finds it from the block's end, writes the next
        transport-wide sequence number and remembers (seq, send time, size)
        in a ring of RING packets (three arrays, no objects per packet)
    subscriber ──RTPFB fmt 15──> receive_feedback(): per reported seq the
        ring's (sent, size) + the arrival -> GoogCc.update (realtime/media/gcc.py,
        draft-ietf-rmcat-gcc-02) -> estimate (bit/s)
    subscriber without transport-cc ──REMB──> receive_remb(): the estimate is its
        value (draft-alvestrand-rmcat-remb: the receiver's own estimate)

Probing (``probe_due``): the rate sent is what the allocated layers need,
so the estimate cannot show that a better layer would fit (GCC keeps it
under 1.5x what is acknowledged).  When the allocator wants more than the
estimate (a better layer waits), the session
sends a *probe*: padding-only RTP packets on the RTX SSRC of one of the
subscriber's video streams (RFC 4588 streams may carry padding; browsers
discard them after counting them), paced in bursts every 10 ms over 200 ms
at the rate wanted (at most 3x the estimate).  Their transport-wide numbers
are marked; when the feedback of the whole probe arrived, the rate at which
the second half of its packets *arrived* (bytes over the span of their
arrivals: the train's dispersion, what the bottleneck carried once a token
bucket's burst was spent) is handed to
:meth:`GoogCc.probe_result`, which raises the estimate to 95 % of it.  A
probe the path carried in full is followed by the next 1 s later; one it
did not (a queue, and loss, for the media) by the next 6 s later.
"""

from __future__ import annotations

from array import array
from realtime.media.gcc import GoogCc
from realtime.rtcp.transport_cc import TransportFeedback

__all__ = ["INITIAL_BITRATE", "PROBE_DURATION", "PROBE_INTERVAL", "RING", "SubscriberEstimate",
           "padding_packet", "transport_cc_block"]

INITIAL_BITRATE = 300_000
"""bit/s a subscriber with transport-cc is assumed to take before any feedback: a modest
start (browsers start their own sends at 300 kbit/s), raised by probes within seconds."""
SILENT_AFTER = 300
"""Packets stamped without any feedback after which transport-cc is taken as unanswered
(the estimate falls back to REMB, or to none: the best layer)."""
RING = 1024
"""Packets remembered for feedback (20 Mbit/s of 1200-byte packets for 0.5 s)."""
_MASK = RING - 1
PLACEHOLDER = b"\xff\xff"
"""The value the ExtensionPlan appends; stamp() overwrites it."""
PROBE_INTERVAL = 3.0
"""Seconds from a probe to the next (doubled after each that failed, up to MAX_PROBE_INTERVAL)."""
MAX_PROBE_INTERVAL = 6.0
PROBE_AGAIN = 1.0
"""Seconds to the next probe after one that the path carried in full."""
PROBE_DURATION = 0.2
PROBE_BURST = 0.01
PADDING = 240
"""Padding octets per probe packet (RFC 3550 §5.1: the last octet counts them, <= 255)."""


class SubscriberEstimate:
    """Stamp, remember and estimate for one subscribing PeerConnection.

    :param initial: bit/s assumed before any feedback.
    """

    __slots__ = ("gcc", "_sent", "_sizes", "_seqs", "remb", "transport_cc",
                 "feedback_received", "stamped", "unstampable", "_probe", "_next_probe",
                 "_probe_backoff",
                 "probes_sent", "probes_succeeded", "wanted")

    def __init__(self, initial: float = INITIAL_BITRATE, transport_cc: bool = True) -> None:
        self.gcc = GoogCc(initial=initial)
        self.transport_cc = transport_cc
        self._sent = array("d", bytes(8 * RING)) if transport_cc else array("d")
        self._sizes = array("H", bytes(2 * RING)) if transport_cc else array("H")
        self._seqs = array("l", [-1]) * RING if transport_cc else array("l")
        self.remb: int | None = None
        self.feedback_received = 0
        self.stamped = 0
        self.unstampable = 0
        #: the probe in flight, if any
        self._probe: _Probe | None = None
        self._next_probe = 0.0
        self._probe_backoff = PROBE_INTERVAL
        self.probes_sent = 0
        self.probes_succeeded = 0
        #: what the allocator would use if the estimate allowed it (bit/s), or None
        self.wanted: float | None = None

    @property
    def estimate(self) -> float | None:
        """Return the available bitrate towards the subscriber in bit/s, or None if unknown."""
        if self.transport_cc:
            if not self.feedback_received and self.stamped > SILENT_AFTER:
                return self.remb  # negotiated but never answered: as if without it
            return self.gcc.estimate  # INITIAL_BITRATE until feedback says more
        return self.remb

    @property
    def shown(self) -> float | None:
        """Return what has been shown to reach the subscriber: the larger of its acknowledged
        bitrate and the last probe's delivery (None: nothing yet; REMB: the REMB)."""
        if not self.transport_cc:
            return self.remb
        gcc = self.gcc
        if gcc.acked is None and not gcc.rate.proven:
            return None
        return max(gcc.acked or 0.0, gcc.rate.proven)

    # -- per packet ------------------------------------------------------------------

    def stamp(self, out: bytearray, now: float) -> None:
        """Write the next transport-wide sequence number into ``out``'s placeholder."""
        b0 = out[0]
        if not b0 & 0x10:
            self.unstampable += 1
            return
        head = 12 + 4 * (b0 & 0x0F)
        start = head + 4
        pos = start + 4 * (out[head + 2] << 8 | out[head + 3]) - 1
        while pos > start and out[pos] == 0:  # the block's zero padding
            pos -= 1
        if out[head] == 0xBE:  # one-byte form: ID|L=1, two octets
            ok = out[pos - 2] & 0x0F == 1 and out[pos - 1] == 0xFF
        else:  # two-byte form: ID, L=2, two octets
            ok = out[pos - 2] == 2 and out[pos - 1] == 0xFF
        if not ok or out[pos] != 0xFF:
            self.unstampable += 1
            return
        count = self.stamped  # every number ever stamped: the low 16 bits are the wire's
        self.stamped = count + 1
        seq = count & 0xFFFF
        out[pos - 1] = seq >> 8
        out[pos] = count & 0xFF
        slot = count & _MASK
        self._sent[slot] = now
        self._sizes[slot] = len(out)  # a UDP payload: always < 65536
        self._seqs[slot] = seq

    def stamp_next(self, size: int, now: float) -> int:
        """Record the next transport-wide number for a packet of ``size`` octets; return it.

        :meth:`stamp` without the search for the placeholder and the write: for
        the C send path (:mod:`realtime.sfu.sendpath`), which finds the
        placeholder once per packet for every copy and writes the number itself.
        """
        count = self.stamped
        self.stamped = count + 1
        seq = count & 0xFFFF
        slot = count & _MASK
        self._sent[slot] = now
        self._sizes[slot] = size
        self._seqs[slot] = seq
        return seq

    @property
    def last_sequence_number(self) -> int:
        """Return the transport-wide number stamped last."""
        return (self.stamped - 1) & 0xFFFF

    # -- feedback ---------------------------------------------------------------------

    def receive_feedback(self, feedback: TransportFeedback, now: float) -> float | None:
        """Take a subscriber's transport-cc feedback; return the new estimate."""
        if not self.transport_cc:
            return self.estimate
        sent, sizes, seqs = self._sent, self._sizes, self._seqs
        packets: list[tuple[float, float | None, int]] = []
        for seq, arrival_us in feedback.packet_results():
            slot = seq & _MASK
            if seqs[slot] != seq:
                continue  # older than the ring, or never sent
            packets.append((sent[slot], None if arrival_us is None else arrival_us / 1e6,
                            sizes[slot]))
            self._probe_feedback(seq, arrival_us, sizes[slot])
        if packets:
            self.feedback_received += 1
            self.gcc.update(packets, now)
        self._finish_probe(now)
        return self.estimate

    def receive_remb(self, bitrate: int) -> None:
        """Take a REMB: the estimate of a subscriber without transport-cc (or whose
        transport-cc feedback never came)."""
        self.remb = bitrate

    def set_rtt(self, rtt: float) -> None:
        """Use the subscriber leg's measured round trip."""
        self.gcc.set_rtt(rtt)

    # -- probing ------------------------------------------------------------------------

    def want(self, bitrate: float | None, now: float) -> None:
        """The allocator would use ``bitrate`` if it fitted (None: the estimate suffices)."""
        self.wanted = bitrate
        if bitrate is not None and self._probe is None and now >= self._next_probe \
                and self.transport_cc and self.feedback_received:
            # at most three times the estimate per step: a thin link is not flooded
            self._probe = _Probe(now, min(bitrate * 1.1, 3 * self.gcc.estimate))

    def get_timer(self) -> float | None:
        """Return when the next probe burst is due, or None."""
        probe = self._probe
        return None if probe is None or probe.sent_all else probe.next_burst

    def probe_due(self, now: float) -> list[int]:
        """Return the padding sizes of the probe packets to send now (empty: none)."""
        probe = self._probe
        if probe is None or probe.sent_all or now < probe.next_burst:
            return []
        elapsed = min(now, probe.end) - probe.start
        owed = int(probe.rate * elapsed / 8) - probe.octets  # what it should have sent by now
        count = max(0, owed // (PADDING + 40))
        probe.octets += count * (PADDING + 40)
        if now >= probe.end:
            probe.sent_all = True  # now wait for its feedback
            self.probes_sent += 1
        else:
            probe.next_burst = now + PROBE_BURST
        return [PADDING] * count

    def probe_stamped(self, seq: int) -> None:
        """Note that the packet just stamped with ``seq`` belongs to the probe."""
        probe = self._probe
        if probe is not None:
            if probe.first is None:
                probe.first = seq
            probe.last = seq

    def _probe_feedback(self, seq: int, arrival_us: int | None, size: int) -> None:
        probe = self._probe
        if probe is None or probe.first is None or probe.last is None:
            return
        if (seq - probe.first) & 0xFFFF <= (probe.last - probe.first) & 0xFFFF:
            probe.results.append((arrival_us, size))

    def _finish_probe(self, now: float) -> None:
        probe = self._probe
        if probe is None or not probe.sent_all:
            return
        if probe.first is None or probe.last is None:
            self._end_probe(now)  # nothing could be sent
            return
        expected = ((probe.last - probe.first) & 0xFFFF) + 1
        if len(probe.results) < expected and now < probe.end + 1.0:
            return  # more feedback to come
        arrived = sorted((t, s) for t, s in probe.results if t is not None)
        delivered = 0.0
        if len(arrived) >= 10:
            # the train's dispersion over its second half: what the path carried once a
            # token bucket's burst (which passes the first packets at line rate) was spent
            half = arrived[len(arrived) // 2 :]
            span = (half[-1][0] - half[0][0]) / 1e6
            if span > 0:
                delivered = min(sum(s for _, s in half[1:]) * 8 / span, probe.rate)
        if delivered > self.gcc.estimate:
            self.gcc.probe_result(delivered)
            self.probes_succeeded += 1
        if delivered >= 0.8 * probe.rate:
            self._probe_backoff = PROBE_AGAIN  # it carried all: go on soon
        else:  # it did not: a queue (and loss) for the media, so not again soon
            self._probe_backoff = min(max(self._probe_backoff, PROBE_INTERVAL) * 2,
                                      MAX_PROBE_INTERVAL)
        self._end_probe(now)

    def _end_probe(self, now: float) -> None:
        self._probe = None
        self._next_probe = now + self._probe_backoff
        self.gcc.overuse_since_probe = False

    def diagnostics(self) -> dict[str, object]:
        """Return what ``/diagnostics`` shows for this subscriber."""
        estimate = self.estimate
        gcc = self.gcc
        return {
            "source": "transport-cc" if self.transport_cc else ("remb" if self.remb else "none"),
            "estimate": None if estimate is None else int(estimate),
            "ackedBitrate": None if gcc.acked is None else int(gcc.acked),
            "lossFraction": round(gcc.loss_fraction, 3),
            "delaySignal": gcc.signal,
            "wanted": None if self.wanted is None else int(self.wanted),
            "probes": self.probes_sent,
            "probesSucceeded": self.probes_succeeded,
            "feedbackReceived": self.feedback_received,
        }


class _Probe:
    """One probe: paced padding at ``rate`` from ``start`` to ``end``, and what came back."""

    __slots__ = ("start", "end", "rate", "next_burst", "octets", "sent_all", "first", "last",
                 "results")

    def __init__(self, now: float, rate: float) -> None:
        self.start = now
        self.end = now + PROBE_DURATION
        self.rate = rate
        self.next_burst = now
        self.octets = 0
        self.sent_all = False
        self.first: int | None = None  # transport-wide numbers of its packets
        self.last: int | None = None
        self.results: list[tuple[int | None, int]] = []  # (arrival µs | None, size)


def padding_packet(ssrc: int, payload_type: int, sequence_number: int, timestamp: int,
                   extension: bytes, padding: int) -> bytearray:
    """Return a padding-only RTP packet (RFC 3550 §5.1 P bit) carrying ``extension``
    (an RFC 8285 block, profile included) and ``padding`` octets, the last one counting them."""
    out = bytearray(12)
    out[0] = 0xA0 | (0x10 if extension else 0)
    out[1] = payload_type & 0x7F
    out[2:4] = (sequence_number & 0xFFFF).to_bytes(2, "big")
    out[4:8] = (timestamp & 0xFFFFFFFF).to_bytes(4, "big")
    out[8:12] = ssrc.to_bytes(4, "big")
    out += extension
    out += bytes(padding - 1)
    out.append(padding)
    return out


def transport_cc_block(ext_id: int) -> bytes:
    """Return an extension block holding only the transport-wide placeholder for ``ext_id``."""
    if 1 <= ext_id <= 14:
        return b"\xbe\xde\x00\x01" + bytes([ext_id << 4 | 1]) + PLACEHOLDER + b"\x00"
    return b"\x10\x00\x00\x01" + bytes([ext_id, 2]) + PLACEHOLDER

