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
estimate (a better layer waits), the session sends a *probe*: padding-only
RTP packets on the RTX SSRC of one of the subscriber's video streams (RFC
4588 streams may carry padding; browsers discard them after counting them),
paced in bursts every 10 ms, that top the media (its acknowledged rate) up
to 1.1 x the rate wanted (at most PROBE_FACTOR x the estimate).

A probe is sized by *duration*, not by volume: a token bucket passes any
burst smaller than its depth at line rate, so a short probe (0.2 s at 0.9
Mbit/s is 22.5 kB: less than a 15 kB bucket plus what refills it) reads as
success on a 400 kbit/s link.  A probe therefore runs PROBE_DURATION (0.5 s)
and is judged from what the feedback says about *every* packet sent while it
ran (media and padding), the way draft-ietf-rmcat-gcc-02 §5 judges any
traffic, by the one-way delay::

    delay(i) = arrival(i) - sent(i)              (clocks need not agree: only growth counts)
    growth   = delay now - the smallest delay seen since the probe started
    growth > PROBE_DELAY_GROWTH or a loss  ─> failed: stop sending at once (the bottleneck
                  queues, and the audio behind it waits); GCC's delay-based part sees the
                  same queue and decreases the estimate (§5.5)
    the probe ran its course without growth ─> carried: the acknowledged receive rate over
                  the probe (bytes over the span of their arrivals) raises the estimate
                  to 95 % of it (:meth:`GoogCc.probe_result`)

A probe that carried is followed by the next PROBE_AGAIN later, at up to
PROBE_FACTOR_AFTER_SUCCESS x the estimate; one that failed (it cost the media
a queue) by PROBE_INTERVAL, then MAX_PROBE_INTERVAL after each further failure,
each at most halfway between the estimate and the rate that failed: the
excess over a thin path, hence the queue a failure costs, shrinks.
"""

from __future__ import annotations

from array import array
from realtime.errors import DecodeError
from realtime.media.gcc import GoogCc
from realtime.rtcp.transport_cc import TransportFeedback
from realtime.rtp.packet import last_extension

__all__ = ["INITIAL_BITRATE", "PROBE_DURATION", "PROBE_INTERVAL", "RING", "SubscriberEstimate",
           "padding_packet", "transport_cc_block"]

INITIAL_BITRATE = 300_000
"""bit/s a subscriber with transport-cc is assumed to take before any feedback: a modest
start (browsers start their own sends at 300 kbit/s), raised by probes within seconds."""
SILENT_AFTER = 300
"""Packets stamped without any feedback after which transport-cc is taken as unanswered
(the estimate falls back to REMB, or to none: the best layer)."""
SILENT_FOR = 1.0
"""Seconds from the first packet stamped without any feedback after which the same holds
(:meth:`SubscriberEstimate.check_silent`; browsers answer within 100 ms)."""
RING = 1024
"""Packets remembered for feedback (20 Mbit/s of 1200-byte packets for 0.5 s)."""
_MASK = RING - 1
PLACEHOLDER = b"\xff\xff"
"""The value the ExtensionPlan appends; stamp() overwrites it."""
PROBE_INTERVAL = 2.0
"""Seconds from a failed probe to the next (doubled after each failure, up to
MAX_PROBE_INTERVAL)."""
MAX_PROBE_INTERVAL = 4.0
PROBE_AGAIN = 0.5
"""Seconds to the next probe after one that the path carried in full."""
PROBE_DURATION = 0.5
"""Seconds a probe runs unless its feedback shows a queue first: long enough that the
excess over a thin path exceeds a token bucket's depth (see the module docstring)."""
PROBE_FACTOR = 2.0
"""A probe sends at most this times the estimate (PROBE_FACTOR_AFTER_SUCCESS right after a
probe that carried: a path just lifted is climbed in few steps), and after a failure at
most halfway between the estimate and the rate that failed."""
PROBE_FACTOR_AFTER_SUCCESS = 2.5
PROBE_DELAY_GROWTH = 0.02
"""Seconds of one-way delay growth during a probe that mean the path queues: it failed."""
PROBE_BURST = 0.01
PADDING = 240
"""Padding octets per probe packet (RFC 3550 §5.1: the last octet counts them, <= 255)."""


class SubscriberEstimate:
    """Stamp, remember and estimate for one subscribing PeerConnection.

    :param initial: bit/s assumed before any feedback.
    """

    __slots__ = ("gcc", "_sent", "_sizes", "_seqs", "remb", "transport_cc",
                 "feedback_received", "stamped", "unstampable", "silent", "_probe", "_next_probe",
                 "_probe_backoff", "_failed_rate",
                 "probes_sent", "probes_succeeded", "wanted")

    def __init__(self, initial: float = INITIAL_BITRATE, transport_cc: bool = True) -> None:
        self.gcc = GoogCc(initial=initial)
        self.transport_cc = transport_cc
        # the ring: assigned here only (realtime.srtp._fanout.Sender writes these arrays as
        # stamp_next does, holding them from bind_send_path on)
        self._sent = array("d", bytes(8 * RING)) if transport_cc else array("d")
        self._sizes = array("H", bytes(2 * RING)) if transport_cc else array("H")
        self._seqs = array("l", [-1]) * RING if transport_cc else array("l")
        self.remb: int | None = None
        self.feedback_received = 0
        self.stamped = 0
        self.unstampable = 0
        #: transport-cc negotiated but unanswered for SILENT_FOR seconds
        self.silent = False
        #: the probe in flight, if any
        self._probe: _Probe | None = None
        self._next_probe = 0.0
        self._probe_backoff = 1.0  # neither after a success nor after a failure
        self._failed_rate: float | None = None  # the rate of the last probe, if it failed
        self.probes_sent = 0
        self.probes_succeeded = 0
        #: what the allocator would use if the estimate allowed it (bit/s), or None
        self.wanted: float | None = None

    @property
    def estimate(self) -> float | None:
        """Return the available bitrate towards the subscriber in bit/s, or None if unknown."""
        if self.transport_cc:
            if not self.feedback_received and (self.silent or self.stamped > SILENT_AFTER):
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

    def check_silent(self, now: float) -> bool:
        """Return whether transport-cc went unanswered SILENT_FOR seconds after the first
        packet stamped (the session's timer asks while no feedback came)."""
        if not self.silent and self.stamped and not self.feedback_received \
                and now - self._sent[0] >= SILENT_FOR:  # slot 0: the first packet's time
            self.silent = True
        return self.silent

    @property
    def pacing_bitrate(self) -> float | None:
        """Return the bitrate the pacer paces at a factor of (realtime/sfu/pacer.py): the
        larger of the estimate, the acknowledged rate and a probe's rate while one is sent;
        None (no pacing) without transport-cc feedback."""
        estimate = self.estimate
        if estimate is None or not self.transport_cc or not self.feedback_received:
            # REMB is the receiver's own estimate of what it receives: pacing to it would
            # hold the media back and the receiver would estimate the holding (measured:
            # a Chromium subscriber forced to f fell to 4 frames/s); no pacing then
            return None
        acked = self.gcc.acked  # what the media needs: the pacer must not be the bottleneck
        if acked is not None and acked > estimate:
            estimate = acked
        probe = self._probe
        if probe is None or probe.sent_all:
            return estimate
        return max(estimate, probe.rate)

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
        seq = self.stamp_next(len(out), now)  # a UDP payload: always < 65536
        out[pos - 1] = seq >> 8
        out[pos] = seq & 0xFF

    def stamp_next(self, size: int, now: float) -> int:
        """Record the next transport-wide number for a packet of ``size`` octets; return it.

        :meth:`stamp` without the search for the placeholder and the write: for
        the C send path (:mod:`realtime.sfu.sendpath`), which finds the
        placeholder once per packet for every copy and writes the number itself.
        ``realtime/srtp/_fanout_send.h`` (``ring_store``) does these same writes
        in C per copy; change both together (tests/sfu/test_sendpath.py compares).
        """
        count = self.stamped
        self.stamped = count + 1
        seq = count & 0xFFFF
        slot = count & _MASK
        self._sent[slot] = now
        self._sizes[slot] = size
        self._seqs[slot] = seq
        return seq

    def stamped_number(self, data: bytes) -> int:
        """Return the transport-wide number stamped in ``data`` (an SRTP packet), or -1.

        Read once, when the pacer holds the packet back (it keeps the number
        with the packet for :meth:`departed`).  The number was stamped before
        SRTP (the authentication tag covers the header, so it cannot be stamped
        later); the header extension block stays in the clear (RFC 3711 §3.1),
        and the plan appends the number as the block's last element
        (:func:`~realtime.rtp.packet.last_extension`, the RFC 8285 walk).
        """
        if not self.transport_cc:
            return -1
        try:
            value = last_extension(data)
        except DecodeError:
            return -1
        return value[0] << 8 | value[1] if value is not None and len(value) == 2 else -1

    def departed(self, seq: int, now: float) -> None:
        """The packet stamped ``seq`` that the pacer held left at ``now``: its send time.

        Without this, time spent in our own pacer would read as queueing on the
        path (draft-ietf-rmcat-gcc-02 §5: send times are departure times).
        """
        slot = seq & _MASK
        if self._seqs[slot] == seq and now > self._sent[slot]:
            self._sent[slot] = now

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
        if packets:
            self.feedback_received += 1
            self.gcc.update(packets, now)
            if self._probe is not None:
                self._probe_feedback(packets, now)
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
            # at most PROBE_FACTOR times the estimate per step: a thin link is not flooded;
            # the padding tops up what the media sends (acknowledged) to that rate
            factor = PROBE_FACTOR_AFTER_SUCCESS if self._probe_backoff == PROBE_AGAIN \
                else PROBE_FACTOR
            estimate = self.gcc.estimate
            rate = min(bitrate * 1.1, factor * estimate)
            failed = self._failed_rate
            if failed is not None:  # bisect towards the rate that queued last time
                rate = min(rate, max((estimate + failed) / 2, 1.2 * estimate))
            media = self.gcc.acked or 0.0
            self._probe = _Probe(now, rate, max(rate - media, 0.25 * rate))

    def get_timer(self) -> float | None:
        """Return when the next probe burst is due, or None."""
        probe = self._probe
        return None if probe is None or probe.sent_all else probe.next_burst

    def probe_due(self, now: float) -> list[int]:
        """Return the padding sizes of the probe packets to send now (empty: none)."""
        probe = self._probe
        if probe is None or probe.sent_all or now < probe.next_burst:
            return []
        elapsed = min(now, probe.stop) - probe.start
        owed = int(probe.padding_rate * elapsed / 8) - probe.octets  # what it should have sent by now
        count = max(0, owed // (PADDING + 20))  # RTP header and the extension block
        probe.octets += count * (PADDING + 20)
        if now >= probe.stop:
            probe.sent_all = True  # now wait for its feedback
            self.probes_sent += 1
        else:
            probe.next_burst = now + PROBE_BURST
        return [PADDING] * count

    def probe_stamped(self, seq: int) -> None:
        """Note that the packet just stamped with ``seq`` belongs to the probe."""
        probe = self._probe
        if probe is not None:
            probe.packets += 1

    def _probe_feedback(self, packets: list[tuple[float, float | None, int]],
                        now: float) -> None:
        """Keep what the feedback says of packets sent while the probe ran; stop the probe
        at once if their one-way delay grew (the path queues: see the module docstring)."""
        probe = self._probe
        assert probe is not None
        start, stop = probe.start, probe.stop
        results = probe.results
        for sent, arrived, size in packets:
            if sent < start or sent > stop:
                if sent > stop:
                    probe.after = True  # the feedback has passed the probe's end
                continue
            results.append((sent, arrived, size))
            if arrived is None:
                probe.lost += 1
                continue
            delay = arrived - sent
            if delay < probe.min_delay:
                probe.min_delay = delay
            elif delay - probe.min_delay > probe.growth:
                probe.growth = delay - probe.min_delay
        if probe.growth > PROBE_DELAY_GROWTH and not probe.sent_all:
            probe.sent_all = True  # failed: no more padding into the queue
            probe.stop = now
            self.probes_sent += 1

    def _finish_probe(self, now: float) -> None:
        probe = self._probe
        if probe is None or not probe.sent_all:
            return
        if not probe.packets:
            self._end_probe(now)  # nothing could be sent
            return
        if not probe.after and now < probe.stop + 1.0:
            return  # more feedback to come
        arrived = sorted((a, a - t, s) for t, a, s in probe.results if a is not None)
        failed = probe.growth > PROBE_DELAY_GROWTH or probe.lost > 0.1 * len(probe.results)
        delivered = 0.0
        if not failed and len(arrived) >= 10:
            span = arrived[-1][0] - arrived[0][0]
            if span > 0:
                # the acknowledged receive rate over the probe (no more than it aimed at)
                delivered = min(sum(s for _, _, s in arrived[1:]) * 8 / span, probe.rate)
        if delivered > self.gcc.estimate:
            self.gcc.probe_result(delivered)
            self.probes_succeeded += 1
        if not failed:
            self._probe_backoff = PROBE_AGAIN  # it carried all: go on soon
            self._failed_rate = None
        else:
            self._failed_rate = probe.rate  # it did not: a queue for the media, so not again soon
            self._probe_backoff = (PROBE_INTERVAL if self._probe_backoff < PROBE_INTERVAL
                                   else MAX_PROBE_INTERVAL)
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
    """One probe: paced padding that tops the media up to ``rate`` from ``start`` to ``stop``,
    and what came back."""

    __slots__ = ("start", "stop", "rate", "padding_rate", "next_burst", "octets", "sent_all", "packets",
                 "results", "min_delay", "growth", "lost", "after")

    def __init__(self, now: float, rate: float, padding_rate: float) -> None:
        self.start = now
        self.stop = now + PROBE_DURATION  # moved earlier when the probe fails
        self.rate = rate  # what media and padding together send
        self.padding_rate = padding_rate
        self.next_burst = now
        self.octets = 0
        self.sent_all = False
        self.packets = 0  # padding packets sent
        #: (sent, arrived | None, size) of every packet sent while the probe ran
        self.results: list[tuple[float, float | None, int]] = []
        self.min_delay = float("inf")  # the smallest one-way delay seen (arrived - sent)
        self.growth = 0.0  # the largest delay growth over it
        self.lost = 0
        self.after = False  # feedback on a packet sent after the probe came in


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

