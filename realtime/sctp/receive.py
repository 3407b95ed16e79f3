"""
The receiving half of an SCTP association: DATA in, SACKs out.

* **TSN tracking** (RFC 9260 §6.2): the Cumulative TSN is the highest TSN
  below which everything arrived; TSNs received above it are reported as gap
  ack blocks, repeats as duplicate TSNs::

        cumulative_tsn
             |   gap 1     gap 2
        ....#|..##..#......##....      # received, . missing
             +1 +3-4  +7      +14-15   (block offsets from the cumulative TSN)

* **Reassembly** (§6.9): fragments of a message have consecutive TSNs from
  the B-flagged chunk to the E-flagged one; a complete message is delivered
  at once when unordered (U flag), or in stream sequence number order per
  stream when ordered (§6.6).
* **SACK timing** (§6.2): at least every second packet with DATA, within
  200 ms otherwise, and at once when something arrives out of order or twice.
* **FORWARD TSN** (RFC 3758 §3.6): the cumulative TSN jumps ahead, partial
  messages below it are dropped and each named stream skips to the SSN after
  the one given.
* **Stream reset** (RFC 6525 §5.2.2): an incoming stream's next SSN goes back
  to 0.

The receive window (``a_rwnd``) is ``capacity`` minus the bytes held for
reassembly or ordering; a chunk that would overflow it is dropped unacknowledged
(the sender retransmits it later), which bounds memory per association.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.sctp.chunks import DataChunk, SackChunk
from realtime.serial import serial_diff

MASK = 0xFFFFFFFF
SACK_DELAY = 0.2
"""Seconds a SACK may be delayed (RFC 9260 §6.2, at most 500 ms; 200 ms is usual)."""
MAX_GAP_BLOCKS = 64
MAX_DUPLICATES = 16
MAX_TSN_AHEAD = 1 << 16
"""A DATA chunk this far beyond the cumulative TSN is dropped (bounds the gap set)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One reassembled user message."""

    stream_id: int
    stream_seq: int
    ppid: int
    data: bytes
    unordered: bool


class _InboundStream:
    __slots__ = ("next_ssn", "pending")

    def __init__(self) -> None:
        self.next_ssn = 0
        self.pending: dict[int, Message] = {}


class Receiver:
    """Track received TSNs, reassemble and order messages, build SACKs.

    :param initial_tsn: the peer's Initial TSN.
    :param capacity: the receive window we advertise when empty (bytes).
    :param max_message_size: larger reassembled messages are discarded (RFC 8841).
    """

    def __init__(self, initial_tsn: int, capacity: int = 1 << 20,
                 max_message_size: int = 1 << 18) -> None:
        self.cumulative_tsn = initial_tsn - 1
        self.capacity = capacity
        self.max_message_size = max_message_size
        self._above: set[int] = set()
        self._fragments: dict[int, DataChunk] = {}
        self._duplicates: list[int] = []
        self._streams: dict[int, _InboundStream] = {}
        self.buffered = 0
        #: Complete messages in delivery order, drained by the association.
        self.delivered: list[Message] = []
        #: When the next SACK is due (None: nothing to acknowledge).
        self.sack_deadline: float | None = None
        self._unacked_packets = 0
        #: Messages discarded for exceeding ``max_message_size``.
        self.oversized = 0

    @property
    def a_rwnd(self) -> int:
        """The window to advertise: capacity minus bytes held."""
        return max(0, self.capacity - self.buffered)

    def unwrap(self, tsn: int) -> int:
        """Place a 32-bit TSN from the peer next to the cumulative TSN."""
        return self.cumulative_tsn + serial_diff(tsn, self.cumulative_tsn & MASK, 32)

    # -- DATA --------------------------------------------------------------

    def receive_data(self, chunk: DataChunk) -> None:
        """Accept one DATA chunk (duplicates are noted for the next SACK)."""
        tsn = self.unwrap(chunk.tsn)
        if tsn <= self.cumulative_tsn or tsn in self._above:
            if len(self._duplicates) < MAX_DUPLICATES:
                self._duplicates.append(chunk.tsn)
            return
        size = len(chunk.user_data)
        if tsn - self.cumulative_tsn > MAX_TSN_AHEAD or (
                self.buffered + size > self.capacity and tsn != self.cumulative_tsn + 1):
            return
        self._above.add(tsn)
        self._fragments[tsn] = chunk
        self.buffered += size
        while self.cumulative_tsn + 1 in self._above:
            self.cumulative_tsn += 1
            self._above.discard(self.cumulative_tsn)
        self._assemble(tsn)

    def packet_done(self, now: float, had_data: bool) -> None:
        """Schedule the SACK after a packet: delayed, or at once on gaps/duplicates."""
        if not had_data:
            return
        self._unacked_packets += 1
        if self._above or self._duplicates or self._unacked_packets >= 2:
            self.sack_deadline = now
        elif self.sack_deadline is None:
            self.sack_deadline = now + SACK_DELAY

    def _assemble(self, tsn: int) -> None:
        """Deliver the message that ``tsn`` completes, if it completes one."""
        fragments = self._fragments
        chunk = fragments[tsn]
        first = tsn
        while not fragments[first].beginning:
            previous = fragments.get(first - 1)
            if previous is None or previous.ending or previous.stream_id != chunk.stream_id:
                return
            first -= 1
        last = tsn
        while not fragments[last].ending:
            following = fragments.get(last + 1)
            if following is None or following.beginning or following.stream_id != chunk.stream_id:
                return
            last += 1
        parts = [fragments.pop(t) for t in range(first, last + 1)]
        data = b"".join(part.user_data for part in parts)
        self.buffered -= len(data)
        head = parts[0]
        if len(data) > self.max_message_size:
            self.oversized += 1
            return
        message = Message(head.stream_id, head.stream_seq, head.ppid, data, head.unordered)
        if head.unordered:
            self.delivered.append(message)
            return
        stream = self._streams.get(head.stream_id)
        if stream is None:
            stream = self._streams[head.stream_id] = _InboundStream()
        if serial_diff(head.stream_seq, stream.next_ssn, 16) < 0:
            return  # an SSN already delivered or skipped
        stream.pending[head.stream_seq] = message
        self.buffered += len(data)
        self._deliver_in_order(stream)

    def _deliver_in_order(self, stream: _InboundStream) -> None:
        while (message := stream.pending.pop(stream.next_ssn, None)) is not None:
            self.buffered -= len(message.data)
            self.delivered.append(message)
            stream.next_ssn = (stream.next_ssn + 1) & 0xFFFF

    # -- FORWARD TSN and stream reset -------------------------------------

    def forward_tsn(self, new_cumulative_tsn: int, streams: tuple[tuple[int, int], ...],
                    now: float) -> None:
        """Skip abandoned TSNs and SSNs as the sender asks (RFC 3758 §3.6)."""
        self.sack_deadline = now
        target = self.unwrap(new_cumulative_tsn)
        if target <= self.cumulative_tsn or target - self.cumulative_tsn > MAX_TSN_AHEAD:
            return
        for tsn in [t for t in self._fragments if t <= target]:
            self.buffered -= len(self._fragments.pop(tsn).user_data)
        self._above = {t for t in self._above if t > target}
        self.cumulative_tsn = target
        while self.cumulative_tsn + 1 in self._above:
            self.cumulative_tsn += 1
            self._above.discard(self.cumulative_tsn)
        for stream_id, ssn in streams:
            stream = self._streams.get(stream_id)
            if stream is None:
                stream = self._streams[stream_id] = _InboundStream()
            if serial_diff(ssn, stream.next_ssn, 16) >= 0:
                for old in [s for s in stream.pending if serial_diff(s, ssn, 16) <= 0]:
                    self.buffered -= len(stream.pending.pop(old).data)
                stream.next_ssn = (ssn + 1) & 0xFFFF
            self._deliver_in_order(stream)

    def reset_streams(self, stream_ids: tuple[int, ...]) -> None:
        """Restart the expected SSN of ``stream_ids`` (all if empty) at 0."""
        for stream_id in stream_ids or tuple(self._streams):
            stream = self._streams.pop(stream_id, None)
            if stream is not None:
                for message in stream.pending.values():
                    self.buffered -= len(message.data)

    # -- SACK --------------------------------------------------------------

    def sack(self) -> SackChunk:
        """Return the SACK describing what arrived, and forget the duplicates."""
        blocks: list[list[int]] = []  # [start, end] offsets, the last one growing
        cumulative = self.cumulative_tsn
        for tsn in sorted(self._above):
            offset = tsn - cumulative
            if blocks and offset == blocks[-1][1] + 1:
                blocks[-1][1] = offset
            elif len(blocks) < MAX_GAP_BLOCKS:
                blocks.append([offset, offset])
            else:
                break
        duplicates, self._duplicates = tuple(self._duplicates), []
        self.sack_deadline = None
        self._unacked_packets = 0
        return SackChunk(cumulative & MASK, self.a_rwnd,
                         tuple((start, end) for start, end in blocks if end <= 0xFFFF),
                         duplicates)
