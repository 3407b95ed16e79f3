"""
The sending half of an SCTP association: DATA out, SACKs in.

Everything RFC 9260 asks of a sender lives here, without I/O:

* **Fragmentation** (§6.9): a user message larger than one packet becomes
  DATA chunks with consecutive TSNs, B set on the first and E on the last.
  TSNs and stream sequence numbers are assigned when the message is queued.
* **Retransmission** (§6.3): one T3-rtx timer for the association, RTO from
  :class:`RtoEstimator`; on expiry every outstanding chunk is marked again,
  ``cwnd`` drops to one MTU and the RTO doubles (§6.3.3).
* **SACK processing** (§6.2.1): the cumulative TSN ack removes chunks, gap
  ack blocks mark chunks received out of order, and a chunk below the
  highest newly acknowledged TSN that misses three SACKs is fast-retransmitted
  (§7.2.4) with fast recovery.
* **Congestion control** (§7.2): slow start below ``ssthresh``, congestion
  avoidance above it with ``partial_bytes_acked``; the peer's window ``rwnd``
  bounds data in flight too (§6.1 rules A-C).
* **Partial reliability** (RFC 3758): a message with ``max_retransmits`` or an
  ``expiry`` time is *abandoned* instead of retransmitted past its limit;
  the Advanced.Peer.Ack.Point then moves over abandoned chunks and a
  FORWARD TSN tells the peer to skip them (§3.5).

TSNs are kept *unwrapped* (Python integers that never wrap) and converted to
32 bits only on the wire, so comparisons are plain ``<``::

     cumulative_ack        advanced_peer_ack     unsent            next_tsn
          |                      |                 |                  |
     ..acked][ abandoned...      ][ in flight / gap-acked ][ queued   ]
"""

from __future__ import annotations

import heapq
from collections import deque

from realtime.sctp.chunks import DataChunk, ForwardTsnChunk, SackChunk
from realtime.serial import serial_diff

MASK = 0xFFFFFFFF
DATA_HEADER = 16


class RtoEstimator:
    """Compute the retransmission timeout from RTT samples (RFC 9260 §6.3.1)."""

    __slots__ = ("initial", "minimum", "maximum", "srtt", "rttvar", "rto")

    ALPHA = 1 / 8
    BETA = 1 / 4

    def __init__(self, initial: float = 1.0, minimum: float = 1.0, maximum: float = 60.0) -> None:
        self.initial, self.minimum, self.maximum = initial, minimum, maximum
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = initial

    def observe(self, rtt: float) -> None:
        """Fold one round-trip measurement into SRTT, RTTVAR and RTO (rules C2-C3)."""
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = (1 - self.BETA) * self.rttvar + self.BETA * abs(self.srtt - rtt)
            self.srtt = (1 - self.ALPHA) * self.srtt + self.ALPHA * rtt
        self.rto = min(self.maximum, max(self.minimum, self.srtt + 4 * self.rttvar))

    def back_off(self) -> None:
        """Double the RTO after a timeout, up to RTO.Max (rule E2)."""
        self.rto = min(self.maximum, self.rto * 2)


class _Message:
    """The partial-reliability policy shared by a message's fragments."""

    __slots__ = ("max_retransmits", "expiry", "chunks")

    def __init__(self, max_retransmits: int | None, expiry: float | None) -> None:
        self.max_retransmits = max_retransmits
        self.expiry = expiry
        self.chunks: list[_Outgoing] = []


class _Outgoing:
    """One DATA chunk from queueing to cumulative acknowledgement."""

    __slots__ = ("tsn", "chunk", "size", "message", "sent_at", "transmissions", "acked",
                 "in_flight", "marked", "fast", "misses", "abandoned")

    def __init__(self, tsn: int, chunk: DataChunk, message: _Message) -> None:
        self.tsn = tsn
        self.chunk = chunk
        self.size = len(chunk.user_data)
        self.message = message
        self.sent_at = 0.0
        self.transmissions = 0
        self.acked = False
        self.in_flight = False
        self.marked = False
        self.fast = False
        self.misses = 0
        self.abandoned = False


class Transmitter:
    """Queue, send, retransmit and abandon DATA chunks for one association.

    :param initial_tsn: our Initial TSN (from our INIT or INIT ACK).
    :param mtu: the largest SCTP packet we send (bytes).
    :param peer_rwnd: the peer's advertised receiver window (a_rwnd).
    :param rto: the association's RTO estimator (shared with HEARTBEAT).
    """

    def __init__(self, initial_tsn: int, mtu: int, peer_rwnd: int, rto: RtoEstimator) -> None:
        self.mtu = mtu
        self.rto = rto
        self.max_fragment = (mtu - 12 - DATA_HEADER - 16) & ~3
        self.next_tsn = initial_tsn
        self.cumulative_ack = initial_tsn - 1
        self.advanced_peer_ack = initial_tsn - 1
        self.unsent = initial_tsn
        self._queue: deque[_Outgoing] = deque()
        self._by_tsn: dict[int, _Outgoing] = {}
        self._marked: list[int] = []
        self.stream_seq: dict[int, int] = {}
        self.cwnd = min(4 * mtu, max(2 * mtu, 4380))
        self.ssthresh = peer_rwnd
        self.peer_rwnd = peer_rwnd
        self.partial_bytes_acked = 0
        self.flight_size = 0
        self.fast_recovery_exit: int | None = None
        self.t3_rtx: float | None = None
        self.forward_tsn_due = False
        #: Consecutive T3 expiries without progress (the association's error counter).
        self.timeouts = 0
        #: Bytes of user data queued and not yet acknowledged.
        self.buffered_amount = 0

    # -- queueing ----------------------------------------------------------

    def enqueue(self, stream_id: int, ppid: int, data: bytes, *, ordered: bool = True,
                max_retransmits: int | None = None, expiry: float | None = None) -> None:
        """Fragment a user message into DATA chunks and queue them."""
        if ordered:
            ssn = self.stream_seq.get(stream_id, 0)
            self.stream_seq[stream_id] = (ssn + 1) & 0xFFFF
        else:
            ssn = 0
        message = _Message(max_retransmits, expiry)
        size = self.max_fragment
        pieces = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            tsn = self.next_tsn
            self.next_tsn += 1
            chunk = DataChunk(tsn & MASK, stream_id, ssn, ppid, piece, not ordered,
                              index == 0, index == last)
            record = _Outgoing(tsn, chunk, message)
            message.chunks.append(record)
            self._queue.append(record)
            self._by_tsn[tsn] = record
            self.buffered_amount += record.size

    def reset_stream_seq(self, stream_ids: list[int]) -> None:
        """Restart the outgoing SSNs of ``stream_ids`` at 0 (RFC 6525 §5.2.2)."""
        for stream_id in stream_ids or list(self.stream_seq):
            self.stream_seq.pop(stream_id, None)

    @property
    def last_assigned_tsn(self) -> int:
        """The 32-bit TSN of the newest queued chunk (for RE-CONFIG requests)."""
        return (self.next_tsn - 1) & MASK

    @property
    def idle(self) -> bool:
        """True when every queued chunk has been acknowledged or skipped."""
        return not self._queue

    # -- sending -----------------------------------------------------------

    def take(self, now: float, room: int) -> DataChunk | None:
        """Return the next DATA chunk to send in ``room`` bytes, or None.

        Retransmissions come first; new data only while ``flight_size`` is
        below ``cwnd`` and the peer's window has space (§6.1 rules B and C).
        """
        while self._marked:
            record = self._by_tsn.get(self._marked[0])
            if record is None or not record.marked:
                heapq.heappop(self._marked)
                continue
            if self._expired(record, now):
                heapq.heappop(self._marked)
                self._abandon(record.message)
                continue
            if DATA_HEADER + record.size > room:
                return None
            if not record.fast and self.flight_size >= self.cwnd:
                return None
            heapq.heappop(self._marked)
            return self._send(record, now)
        while self.unsent < self.next_tsn:
            record = self._by_tsn.get(self.unsent)
            if record is None or record.abandoned:
                self.unsent += 1
                continue
            if record.message.expiry is not None and now >= record.message.expiry:
                self._abandon(record.message)
                continue
            if DATA_HEADER + record.size > room or self.flight_size >= self.cwnd:
                return None
            if self.peer_rwnd < record.size and self.flight_size > 0:
                return None
            self.unsent += 1
            return self._send(record, now)
        return None

    def _send(self, record: _Outgoing, now: float) -> DataChunk:
        record.marked = record.fast = False
        record.transmissions += 1
        record.sent_at = now
        record.in_flight = True
        self.flight_size += record.size
        self.peer_rwnd = max(0, self.peer_rwnd - record.size)
        if self.t3_rtx is None:
            self.t3_rtx = now + self.rto.rto
        return record.chunk

    # -- acknowledgements --------------------------------------------------

    def unwrap(self, tsn: int) -> int:
        """Place a 32-bit TSN from the peer next to our cumulative ack."""
        return self.cumulative_ack + serial_diff(tsn, self.cumulative_ack & MASK, 32)

    def handle_sack(self, sack: SackChunk, now: float) -> None:
        """Process a SACK: acknowledgements, RTT, cwnd, fast retransmit, T3 (§6.2.1)."""
        cumulative = self.unwrap(sack.cumulative_tsn_ack)
        if cumulative < self.cumulative_ack or cumulative >= self.unsent:
            return  # stale (older than what we know) or acknowledges unsent data
        flight_before = self.flight_size
        bytes_acked = 0
        rtt_sample = None
        advanced = cumulative > self.cumulative_ack
        queue = self._queue
        while queue and queue[0].tsn <= cumulative:
            record = queue.popleft()
            del self._by_tsn[record.tsn]
            self.buffered_amount -= record.size
            if not record.acked and not record.abandoned:
                bytes_acked += record.size
                if record.transmissions == 1:
                    rtt_sample = now - record.sent_at
            if record.in_flight:
                self.flight_size -= record.size
        self.cumulative_ack = cumulative
        highest_newly_acked = cumulative
        for start, end in sack.gap_blocks:
            for tsn in range(cumulative + start, min(cumulative + end, self.unsent - 1) + 1):
                gapped = self._by_tsn.get(tsn)
                if gapped is None or gapped.acked:
                    continue
                gapped.acked = True
                gapped.marked = False
                if gapped.in_flight:
                    gapped.in_flight = False
                    self.flight_size -= gapped.size
                if not gapped.abandoned:
                    bytes_acked += gapped.size
                    if gapped.transmissions == 1:
                        rtt_sample = now - gapped.sent_at
                highest_newly_acked = max(highest_newly_acked, tsn)
        if rtt_sample is not None:
            self.rto.observe(rtt_sample)
        if bytes_acked:
            self.timeouts = 0
        self._count_misses(highest_newly_acked)
        if advanced:
            self._open_cwnd(bytes_acked, flight_before)
        if self.fast_recovery_exit is not None and cumulative >= self.fast_recovery_exit:
            self.fast_recovery_exit = None
        self.peer_rwnd = max(0, sack.a_rwnd - self.flight_size)
        self._advance_peer_ack_point()
        if self.flight_size == 0 and not self._marked and not self.forward_tsn_due:
            self.t3_rtx = None
        elif advanced or self.t3_rtx is None:
            self.t3_rtx = now + self.rto.rto

    def _count_misses(self, highest_newly_acked: int) -> None:
        """Give a miss indication to every chunk below the HTNA; three trigger §7.2.4."""
        entered = False
        for record in self._queue:
            if record.tsn >= highest_newly_acked:
                break
            if record.acked or record.abandoned or not record.in_flight:
                continue
            record.misses += 1
            if record.misses == 3 and record.transmissions == 1:  # fast-retransmit once
                if self._retransmission_allowed(record):
                    self._mark(record, fast=True)
                    entered = True
        if entered and self.fast_recovery_exit is None:
            self.ssthresh = max(self.cwnd // 2, 4 * self.mtu)
            self.cwnd = self.ssthresh
            self.partial_bytes_acked = 0
            self.fast_recovery_exit = self.unsent - 1

    def _open_cwnd(self, bytes_acked: int, flight_before: int) -> None:
        """Grow cwnd: slow start (§7.2.1) or congestion avoidance (§7.2.2)."""
        if self.fast_recovery_exit is not None or flight_before + self.mtu < self.cwnd:
            return
        if self.cwnd <= self.ssthresh:
            self.cwnd += min(bytes_acked, self.mtu)
            return
        self.partial_bytes_acked += bytes_acked
        if self.partial_bytes_acked >= self.cwnd:
            self.partial_bytes_acked -= self.cwnd
            self.cwnd += self.mtu

    # -- retransmission and abandonment -----------------------------------

    def handle_t3(self, now: float) -> None:
        """T3-rtx expired: mark everything outstanding, shrink cwnd, back off (§6.3.3)."""
        self.t3_rtx = None
        if not self._queue:
            return
        self.timeouts += 1
        self.ssthresh = max(self.cwnd // 2, 4 * self.mtu)
        self.cwnd = self.mtu
        self.partial_bytes_acked = 0
        self.fast_recovery_exit = None
        self.rto.back_off()
        for record in self._queue:
            if record.tsn >= self.unsent:
                break
            if record.acked or record.abandoned or record.marked:
                continue
            if record.in_flight:
                record.in_flight = False
                self.flight_size -= record.size
            if self._retransmission_allowed(record, now):
                self._mark(record, fast=False)
        self._advance_peer_ack_point()
        if self.advanced_peer_ack > self.cumulative_ack or self._marked:
            self.t3_rtx = now + self.rto.rto

    def _retransmission_allowed(self, record: _Outgoing, now: float | None = None) -> bool:
        """Return False (and abandon the message) if its PR-SCTP limit is reached."""
        message = record.message
        if (message.max_retransmits is not None
                and record.transmissions > message.max_retransmits) or (
                message.expiry is not None and now is not None and now >= message.expiry):
            self._abandon(message)
            return False
        return True

    def _expired(self, record: _Outgoing, now: float) -> bool:
        message = record.message
        return message.expiry is not None and now >= message.expiry

    def _mark(self, record: _Outgoing, fast: bool) -> None:
        if record.in_flight:
            record.in_flight = False
            self.flight_size -= record.size
        record.marked = True
        record.fast = fast
        record.misses = 0
        heapq.heappush(self._marked, record.tsn)

    def _abandon(self, message: _Message) -> None:
        """Give up on every fragment of ``message`` (RFC 3758 §3.5 A1-A3)."""
        for record in message.chunks:
            if record.abandoned:
                continue
            record.abandoned = True
            record.marked = False
            if record.in_flight:
                record.in_flight = False
                self.flight_size -= record.size
        self.forward_tsn_due = True

    def _advance_peer_ack_point(self) -> None:
        """Move Advanced.Peer.Ack.Point over abandoned chunks (RFC 3758 §3.5 C1-C2)."""
        point = max(self.advanced_peer_ack, self.cumulative_ack)
        while True:
            record = self._by_tsn.get(point + 1)
            if record is None or not record.abandoned or record.tsn >= self.unsent:
                break
            point += 1
        self.advanced_peer_ack = point
        if point > self.cumulative_ack:
            self.forward_tsn_due = True

    def forward_tsn(self) -> ForwardTsnChunk | None:
        """Return the FORWARD TSN to send now, or None (clears the due flag)."""
        if not self.forward_tsn_due:
            return None
        self.forward_tsn_due = False
        self._advance_peer_ack_point()
        if self.advanced_peer_ack <= self.cumulative_ack:
            return None
        self.forward_tsn_due = False
        last_ssn: dict[int, int] = {}
        for record in self._queue:
            if record.tsn > self.advanced_peer_ack:
                break
            chunk = record.chunk
            if not chunk.unordered:
                last_ssn[chunk.stream_id] = chunk.stream_seq
        return ForwardTsnChunk(self.advanced_peer_ack & MASK, tuple(sorted(last_ssn.items())))
