"""
Reception statistics for RTCP report blocks (RFC 3550 §6.4.1, Appendix A.1, A.3, A.8).

One :class:`ReceiverStatistics` per received SSRC, fed every packet's
sequence number, RTP timestamp and arrival time::

    packet --> A.1 source validation --> counted? --> A.8 jitter
                 |  probation: MIN_SEQUENTIAL in-order packets
                 |  jump > MAX_DROPOUT: resync after two in a row
                 v
      extended highest seq = cycles + max_seq     (cycles += 65536 on wrap)
      expected  = extended highest - base_seq + 1                    (A.3)
      lost      = expected - received        (clamped to signed 24 bits)
      fraction  = 256 * lost_interval / expected_interval  (since last RR)

Jitter (A.8): with ``transit = arrival (RTP units) - rtp_timestamp`` and
``D = |transit - previous transit|``, ``J += (D - J) / 16``.

LSR / DLSR: the middle 32 bits of the last SR's NTP timestamp and the delay
since it arrived in 1/65536 s.  :class:`SenderStatistics` counts what we
send for our SRs.  Times are float seconds; SR timestamps use the Unix
epoch shifted to NTP's 1900 epoch (RFC 5905 §6).
"""

from __future__ import annotations

from realtime.rtcp.reports import ReportBlock

NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch)."""

MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
RTP_SEQ_MOD = 1 << 16


def ntp_timestamp(unix_seconds: float) -> int:
    """Return the 64-bit NTP timestamp (32.32 fixed point) of a Unix time."""
    return int((unix_seconds + NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_to_unix(ntp: int) -> float:
    """Return the Unix time in seconds of a 64-bit NTP timestamp (era 0)."""
    return ntp / (1 << 32) - NTP_EPOCH_OFFSET


def ntp_middle32(ntp: int) -> int:
    """Return the middle 32 bits of an NTP timestamp (the LSR field, §6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


class ReceiverStatistics:
    """Per-SSRC reception state of RFC 3550 Appendix A.1/A.3/A.8.

    :param ssrc: the source the report blocks describe.
    :param clock_rate: RTP timestamp units per second (jitter is in these).
    """

    __slots__ = (
        "ssrc", "clock_rate", "max_seq", "cycles", "base_seq", "bad_seq", "probation",
        "received", "expected_prior", "received_prior", "transit", "jitter",
        "last_sr", "last_sr_arrival", "_started",
    )

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.max_seq = 0
        self.cycles = 0
        self.base_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.probation = MIN_SEQUENTIAL
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.transit: float | None = None
        self.jitter = 0.0
        self.last_sr = 0
        self.last_sr_arrival: float | None = None
        self._started = False

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def _update_seq(self, seq: int) -> bool:
        """Run A.1 ``update_seq``; return True when the packet counts."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        self.received += 1
        return True

    def receive(self, sequence_number: int, rtp_timestamp: int, arrival_time: float) -> bool:
        """Account for one packet; return False while on probation or after a wild jump."""
        if not self._started:
            self._started = True
            self._init_seq(sequence_number)
            self.max_seq = (sequence_number - 1) & 0xFFFF
            self.probation = MIN_SEQUENTIAL
        counted = self._update_seq(sequence_number)
        if counted:
            transit = arrival_time * self.clock_rate - rtp_timestamp
            if self.transit is not None:
                d = abs(transit - self.transit)
                self.jitter += (d - self.jitter) / 16
            self.transit = transit
        return counted

    def receive_sender_report(self, ntp_timestamp: int, arrival_time: float) -> None:
        """Remember an SR from this source for the LSR/DLSR fields."""
        self.last_sr = ntp_middle32(ntp_timestamp)
        self.last_sr_arrival = arrival_time

    @property
    def extended_highest_sequence(self) -> int:
        """Return ``cycles + max_seq`` (32 bits on the wire)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Return the number of packets expected so far (A.3)."""
        if self.received == 0 and self.probation:
            return 0
        return self.extended_highest_sequence - self.base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        """Return expected minus received, clamped to a signed 24-bit value."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    def report_block(self, now: float) -> ReportBlock:
        """Build the RR block and start a new interval for ``fraction_lost``."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self.last_sr_arrival is not None:
            dlsr = max(0, int((now - self.last_sr_arrival) * 65536)) & 0xFFFFFFFF
        return ReportBlock(
            self.ssrc,
            min(fraction, 255),
            self.cumulative_lost,
            self.extended_highest_sequence & 0xFFFFFFFF,
            int(self.jitter),
            self.last_sr,
            dlsr,
        )


class SenderStatistics:
    """Packet and octet counts of one sending SSRC, for SR sender info (§6.4.1)."""

    __slots__ = ("ssrc", "packet_count", "octet_count", "last_rtp_timestamp", "last_send_time")

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.packet_count = 0
        self.octet_count = 0
        self.last_rtp_timestamp: int | None = None
        self.last_send_time: float | None = None

    def sent(self, payload_size: int, rtp_timestamp: int, now: float) -> None:
        """Count one sent packet (payload octets only, §6.4.1)."""
        self.packet_count = (self.packet_count + 1) & 0xFFFFFFFF
        self.octet_count = (self.octet_count + payload_size) & 0xFFFFFFFF
        self.last_rtp_timestamp = rtp_timestamp
        self.last_send_time = now

    def rtp_timestamp_at(self, now: float, clock_rate: int) -> int:
        """Return the RTP timestamp corresponding to ``now`` for the SR (extrapolated)."""
        if self.last_rtp_timestamp is None or self.last_send_time is None:
            return 0
        elapsed = now - self.last_send_time
        return (self.last_rtp_timestamp + round(elapsed * clock_rate)) & 0xFFFFFFFF
