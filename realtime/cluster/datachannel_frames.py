"""
DataChannel messages between nodes: the relay payload, fragmentation, sequence and gaps.

When a subscriber on node B subscribes to a DataChannel published by a
session on node A (Cloudflare's ``datachannels/new`` with ``location:
"remote"``), A sends each message of that publication *once* to B over the
relay link (:mod:`realtime.cluster.relay`, kind ``DATACHANNEL``) and B fans
it out to its local subscribers.  This module is the pure part of that: the
payload codec (:class:`DataChannelFragment`), the sender's sequencing and
fragmentation (:class:`FeedSender`) and the receiver's reassembly, ordering
and gap counting (:class:`FeedReceiver`).  No I/O, no clock.

The payload (inside the relay frame's AES-GCM ciphertext)::

     0               1               2               3
     0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
    +---------------+---------------+---------------+---------------+
    | flags (b0:    |          sequence (32 bits, per publication   |
    | binary, b1:   |          and direction)                       |
    | reply, b2:    |                                               |
    | unreliable)   +---------------+---------------+---------------+
    +---------------+ fragment index (16)           | fragment      |
    | count (16)    | session id    | session id (n bytes) ...      |
    +---------------+ length n      +-------------------------------+
    | name length m (16)            | name (m bytes, UTF-8) ...     |
    +-------------------------------+-------------------------------+
    | this fragment of the message (the rest of the payload)        |
    +---------------------------------------------------------------+

The publication is named by (sender node, publisher session id, channel
name) in every fragment: one dict lookup at the receiver, no state to agree
on beforehand.  ``flags`` bit 0 keeps the message's type (RFC 8831 §8: a
string is sent as UTF-8 with PPID 51, binary with PPID 53; empty ones too);
bit 1 marks a *reply*: a ``canReply`` subscriber's message going back from
its node to the publisher's, with a sequence of its own; bit 2 marks a
partially reliable publication's frames (below).

Fragmentation.  The relay link is UDP between nodes; a datagram larger than
the path MTU would be fragmented by IP, and losing one IP fragment loses the
datagram.  So a message is cut into pieces that keep each relay datagram
within :data:`TARGET_DATAGRAM` bytes, each a fragment ``index/count`` of the
same sequence number.  The largest message relayed is :data:`MAX_MESSAGE`
(256 KiB, the largest message our SCTP association accepts from a client,
docs/datachannels.md; Cloudflare documents no DataChannel message limit of
its own, browsers send up to the ``a=max-message-size`` we announce); a
larger one is dropped and counted (``too-large``), never cut short.

What holds across the link (say it honestly).  The relay link is UDP; on
top of it:

* **Order, always.**  The receiver never delivers a message older than one
  it delivered or skipped (a late one, a second repair, a tail probe is
  dropped and counted ``late``), so each subscriber sees the publisher's
  messages in send order.
* **Reliable channels (the default): reliable within bounds.**  Each hop
  keeps what it sent (:mod:`realtime.cluster.datachannel_repair`: 512
  fragments, 1 MiB, 5 s per feed); the receiver holds what follows a gap
  (:data:`HOLD_TIME` 0.5 s, :data:`HOLD_FRAMES` fragments) and asks again
  (``DATACHANNEL_NACK``) at once and every :meth:`FeedReceiver.retry_interval`;
  a silent tail is probed.  A message lost for longer than the hold (a link
  down for more than ~0.5 s, a burst of more than 512 messages, a hop that
  restarted and lost its buffer) is skipped and counted ``lost``: the feed
  goes on rather than block forever.  So "reliable" across nodes means
  "every message, unless a relay link is lost for about half a second",
  which SCTP's own retransmission towards the subscriber cannot hide.
  A receiving node starts at the first fragment it hears after subscribing:
  a message lost before that one is not seen as missing (the owner does not
  say where a new subscriber's feed starts).
* **Partially reliable channels** (``maxRetransmits`` / ``maxPacketLifeTime``,
  RFC 8831 §6.1, which the owner reads from the publication's
  :class:`~realtime.sfu.datachannels.ChannelPolicy`): their frames carry the
  ``unreliable`` flag (bit 2); they are not kept, never held, never asked
  for: a complete message is delivered at once, past any gap, which is
  counted ``lost`` (the publisher asked for timeliness over completeness).

Every hole is counted (``lost``, ``incomplete``) at the receiving node,
every repair (``recovered``) too.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from realtime.errors import DecodeError, LocalProtocolError

#: Largest DataChannel message relayed (bytes); larger ones are dropped and counted.
MAX_MESSAGE = 256 * 1024
#: Relay datagram size the fragments aim at (IPv6 minimum MTU 1280 minus headroom).
TARGET_DATAGRAM = 1200
#: Bytes of relay frame around the payload: version, kind, sender length, sender id
#: (at most 64), epoch, sequence, stream id, GCM tag; plus IPv6 and UDP headers.
FRAME_OVERHEAD = 3 + 64 + 20 + 16 + 48
#: Smallest piece of a message per fragment, whatever the names' length.
MIN_PIECE = 256
#: Longest publisher session id and channel name carried.
MAX_SESSION_ID = 64
MAX_NAME = 1024

_FIXED = struct.Struct("!BIHHB")       # flags, sequence, index, count, session id length
_NAME_LENGTH = struct.Struct("!H")
BINARY = 0x01
REPLY = 0x02
UNRELIABLE = 0x04
SEQUENCE_SPACE = 1 << 32

#: A receiver holds messages behind a gap for at most this long (seconds) ...
HOLD_TIME = 0.5
#: ... and at most this many fragments (then the oldest gap is skipped, counted ``lost``).
HOLD_FRAMES = 512
#: Sequence numbers a gap may span: a message further ahead skips the older ones at once.
MAX_SPAN = 512
#: Times one missing message is asked for, and the bounds of the interval between asks.
MAX_ASKS = 3
MIN_RETRY = 0.02
MAX_RETRY = 0.2
#: The NACK -> repair time assumed before one was measured (seconds).
INITIAL_RTT = 0.05
#: Ranges one NACK carries at most (realtime.cluster.datachannel_repair).
MAX_NACK_RANGES = 32
#: A range's last index meaning "to the end of the message".
WHOLE = 0xFFFF


@dataclass(frozen=True, slots=True)
class DataChannelFragment:
    """One relay payload: a fragment of one DataChannel message of one publication."""

    session_id: str
    name: str
    sequence: int
    index: int
    count: int
    binary: bool
    data: bytes
    reply: bool = False
    #: the publication's channel is partially reliable: no retransmission between nodes
    unreliable: bool = False

    def encode(self) -> bytes:
        """Return the payload's bytes (the layout in the module docstring)."""
        session_id, name = self.session_id.encode(), self.name.encode()
        if not 0 < len(session_id) <= MAX_SESSION_ID or not 0 < len(name) <= MAX_NAME:
            raise LocalProtocolError("session id or channel name out of range")
        flags = ((BINARY if self.binary else 0) | (REPLY if self.reply else 0)
                 | (UNRELIABLE if self.unreliable else 0))
        return (_FIXED.pack(flags, self.sequence, self.index, self.count, len(session_id))
                + session_id + _NAME_LENGTH.pack(len(name)) + name + self.data)

    @classmethod
    def decode(cls, data: bytes) -> DataChannelFragment:
        """Parse a payload; raise :class:`DecodeError` on anything malformed."""
        if len(data) < _FIXED.size:
            raise DecodeError(f"DataChannel relay payload of {len(data)} bytes is too short")
        flags, sequence, index, count, n = _FIXED.unpack_from(data)
        if flags & ~(BINARY | REPLY | UNRELIABLE):
            raise DecodeError(f"DataChannel relay flags 0x{flags:02x} unknown")
        if count == 0 or index >= count:
            raise DecodeError(f"DataChannel relay fragment {index}/{count} out of range")
        offset = _FIXED.size
        if not 0 < n <= MAX_SESSION_ID or len(data) < offset + n + _NAME_LENGTH.size:
            raise DecodeError("DataChannel relay session id truncated or out of range")
        session_id = bytes(data[offset:offset + n])
        offset += n
        (m,) = _NAME_LENGTH.unpack_from(data, offset)
        offset += _NAME_LENGTH.size
        if not 0 < m <= MAX_NAME or len(data) < offset + m:
            raise DecodeError("DataChannel relay channel name truncated or out of range")
        name = bytes(data[offset:offset + m])
        try:
            return cls(session_id.decode(), name.decode(), sequence, index, count,
                       bool(flags & BINARY), bytes(data[offset + m:]), bool(flags & REPLY),
                       bool(flags & UNRELIABLE))
        except UnicodeDecodeError:
            raise DecodeError("DataChannel relay names are not UTF-8") from None


class FeedSender:
    """A sending node's side of one feed: its sequence and its fragments.

    One :class:`FeedSender` per publication at its owner (and one per
    ``canReply`` subscription's replies at the replier's node), however many
    nodes subscribe: each message gets one sequence number and is sealed once
    per fragment; the relay link sends the same sealed frames to every
    subscribing node.

    :param unreliable: the publication's channel is partially reliable
        (``maxRetransmits`` / ``maxPacketLifeTime``): frames carry the flag and
        are not kept for retransmission.
    :param buffer: keeps each payload for the receivers' NACKs
        (:class:`~realtime.cluster.datachannel_repair.RetransmissionBuffer`), or None.
    """

    __slots__ = ("session_id", "name", "reply", "unreliable", "buffer", "sequence", "piece",
                 "nodes", "replier_node", "replies", "dropped")

    def __init__(self, session_id: str, name: str, reply: bool = False,
                 unreliable: bool = False, buffer: Any = None) -> None:
        self.session_id = session_id
        self.name = name
        #: a sender of replies (subscriber's node -> publisher's node)
        self.reply = reply
        self.unreliable = unreliable
        self.buffer = None if unreliable else buffer
        self.sequence = 0
        overhead = FRAME_OVERHEAD + _FIXED.size + _NAME_LENGTH.size
        overhead += len(session_id.encode()) + len(name.encode())
        self.piece = max(MIN_PIECE, TARGET_DATAGRAM - overhead)
        #: the nodes that asked for this publication (node ids)
        self.nodes: set[str] = set()
        #: the node whose subscription holds ``canReply``, if not one of ours
        self.replier_node: str | None = None
        #: reassembly of the replies that node sends back
        self.replies = FeedReceiver()
        #: messages not relayed, by reason (``too-large``)
        self.dropped: Counter[str] = Counter()

    def fragments(self, data: bytes | str, now: float = 0.0) -> list[bytes]:
        """Return the payloads of the next message (one sequence number), or ``[]`` if dropped;
        keep them in the buffer, if any."""
        binary = not isinstance(data, str)
        body = data.encode() if isinstance(data, str) else bytes(data)
        if len(body) > MAX_MESSAGE:
            self.dropped["too-large"] += 1
            return []
        sequence = self.sequence
        self.sequence = (sequence + 1) % SEQUENCE_SPACE
        piece = self.piece
        count = max(1, -(-len(body) // piece))
        payloads = [DataChannelFragment(self.session_id, self.name, sequence, i, count, binary,
                                        body[i * piece:(i + 1) * piece], self.reply,
                                        self.unreliable).encode()
                    for i in range(count)]
        buffer = self.buffer
        if buffer is not None:
            for i, payload in enumerate(payloads):
                buffer.keep(sequence, i, payload, now)
        return payloads


class _Held:
    """A message being reassembled or waiting for an older one (:class:`FeedReceiver`)."""

    __slots__ = ("count", "parts", "have", "size", "binary", "arrived")

    def __init__(self, count: int, binary: bool, arrived: float) -> None:
        self.count = count
        self.parts: list[bytes | None] = [None] * count
        self.have = 0
        self.size = 0
        self.binary = binary
        self.arrived = arrived


def _missing_runs(sequence: int, parts: list[bytes | None], begin: int, end: int,
                  room: int) -> list[tuple[int, int, int, int]]:
    """Return the runs of missing fragments among ``parts[begin:end]`` as ranges (at most
    ``room``)."""
    runs: list[tuple[int, int, int, int]] = []
    start = None
    for i in range(begin, end + 1):
        missing = i < end and parts[i] is None
        if missing and start is None:
            start = i
        elif not missing and start is not None:
            if len(runs) == room:
                break
            runs.append((sequence, sequence, start, i - 1))
            start = None
    return runs


def _earliest(at: float | None, other: float) -> float:
    return other if at is None or other < at else at


class FeedReceiver:
    """A receiving node's side of one feed: reassemble, hold behind gaps, ask, deliver in order.

    :meth:`receive` takes each fragment (it returns whether it was new: a relay
    node passes on only those); the messages that became deliverable, in
    sequence order, are in :attr:`ready` (:meth:`take` empties it).  A gap in
    the sequence (a missing message, or a missing fragment of one) holds the
    later messages for at most :data:`HOLD_TIME` seconds and
    :data:`HOLD_FRAMES` fragments while :meth:`nack` names what is missing
    (the node sends that to its parent, :mod:`realtime.cluster.datachannel_repair`),
    at once, then again every :meth:`retry_interval`, :data:`MAX_ASKS` times
    (counted afresh while repairs of a message keep arriving);
    what has not arrived by then is skipped and counted ``lost``.  Fragments
    flagged ``unreliable`` are never held: a complete later message is
    delivered at once, past the gap (the old "ordered, not reliable" rule).

    :ivar counters: ``messages`` delivered, ``lost`` (sequence numbers skipped),
        ``incomplete`` (of those, messages some fragment of which had come),
        ``late`` (behind what was delivered or skipped: retransmitted twice, a
        tail probe, a stray), ``duplicate`` (a held fragment again),
        ``recovered`` (fragments that filled a hole), ``mismatched``
        (fragments that disagree on their message's count), ``too-large``,
        ``malformed`` (bytes that are not UTF-8 in a string message).
    """

    __slots__ = ("expected", "_next", "_highest", "_held", "_frames", "_asks", "nack_at",
                 "_nacked_at", "srtt", "unreliable", "ready", "counters")

    def __init__(self) -> None:
        self.expected: int | None = None      # the next sequence number to deliver
        self._next = (0, 0)                   # the (sequence, index) due next in send order
        self._highest = 0                     # the newest sequence held
        self._held: dict[int, _Held] = {}     # sequence -> message (arrival order)
        self._frames = 0                      # fragments held
        #: sequence -> (times asked, last asked, its fragments then, fragments due then)
        self._asks: dict[int, tuple[int, float, int, int]] = {}
        #: when :meth:`nack` has something to ask (None: nothing missing or asked enough)
        self.nack_at: float | None = None
        self._nacked_at: float | None = None
        #: smoothed NACK -> repair time (RFC 6298 §2 weights), seconds
        self.srtt = INITIAL_RTT
        self.unreliable = False
        self.ready: list[bytes | str] = []
        self.counters: Counter[str] = Counter()

    def take(self) -> Sequence[bytes | str]:
        """Return the messages ready for delivery, in order, and forget them (an empty
        tuple, never the live list, when there are none)."""
        ready = self.ready
        if not ready:
            return ()
        self.ready = []
        return ready

    def receive(self, fragment: DataChannelFragment, now: float = 0.0) -> bool:
        """Take one fragment; return whether it was new (neither old nor a duplicate)."""
        sequence, index = fragment.sequence, fragment.index
        expected = self.expected
        if expected is None:
            expected = self.expected = sequence
            self._next = (sequence, 0)
        ahead = (sequence - expected) % SEQUENCE_SPACE
        if ahead >= SEQUENCE_SPACE // 2:          # behind what was delivered (RFC 1982)
            self.counters["late"] += 1
            return False
        self.unreliable = fragment.unreliable
        if ahead >= MAX_SPAN:                     # too far ahead to wait for the rest
            self._skip_to(sequence)
            ahead = 0
        if fragment.count == 1 and ahead == 0 and not self._held:     # the common case
            self.expected = (sequence + 1) % SEQUENCE_SPACE
            self._next = (self.expected, 0)
            self._deliver(fragment.data, fragment.binary)
            return True
        held = self._held.get(sequence)
        if held is None:
            held = self._held[sequence] = _Held(fragment.count, fragment.binary, now)
            if (sequence - self._highest) % SEQUENCE_SPACE < SEQUENCE_SPACE // 2:
                self._highest = sequence
        elif held.count != fragment.count:
            self.counters["mismatched"] += 1
            return False
        elif held.parts[index] is not None:
            self.counters["duplicate"] += 1
            return False
        held.size += len(fragment.data)
        if held.size > MAX_MESSAGE:
            self.counters["too-large"] += 1
            return False
        held.parts[index] = fragment.data
        held.have += 1
        self._frames += 1
        self._arrived(sequence, index, fragment.count, now)
        if sequence == self.expected:
            self._drain()
        elif self.unreliable and held.have == held.count:
            while sequence in self._held:         # deliver past the gap at once
                self._give_up()
        while self._frames > HOLD_FRAMES:
            self._give_up()
        return True

    def _arrived(self, sequence: int, index: int, count: int, now: float) -> None:
        """Note a new fragment's place in send order: past the next one due, a gap opened;
        behind it, a hole was filled (an RTT sample if we asked for it)."""
        next_sequence, next_index = self._next
        behind = (sequence - next_sequence) % SEQUENCE_SPACE
        if behind >= SEQUENCE_SPACE // 2 or behind == 0 and index < next_index:
            self.counters["recovered"] += 1
            if self._nacked_at is not None:
                sample, self._nacked_at = now - self._nacked_at, None
                self.srtt += (sample - self.srtt) / 8
            return
        if (behind or index > next_index) and not self.unreliable:
            self.nack_at = now if self.nack_at is None else min(self.nack_at, now)
        self._next = (sequence, index + 1) if index + 1 < count else \
            ((sequence + 1) % SEQUENCE_SPACE, 0)

    def _drain(self) -> None:
        """Deliver every complete message from ``expected`` on."""
        held_messages, expected = self._held, self.expected
        assert expected is not None
        while (held := held_messages.get(expected)) is not None and held.have == held.count:
            del held_messages[expected]
            self._frames -= held.count
            self._asks.pop(expected, None)
            expected = self.expected = (expected + 1) % SEQUENCE_SPACE
            self._deliver(b"".join(held.parts), held.binary)  # type: ignore[arg-type]
        if not held_messages:
            self._asks.clear()
            self.nack_at = None

    def _give_up(self) -> None:
        """Skip the oldest gap: the message at ``expected`` (or up to the next held one)."""
        expected = self.expected
        assert expected is not None
        held = self._held.pop(expected, None)
        if held is not None:
            self._frames -= held.count
            self.counters["incomplete"] += 1
            skip = 1
        elif self._held:
            skip = min((s - expected) % SEQUENCE_SPACE for s in self._held)
        else:
            skip = 1
        self.counters["lost"] += skip
        self.expected = (expected + skip) % SEQUENCE_SPACE
        if (self._next[0] - self.expected) % SEQUENCE_SPACE >= SEQUENCE_SPACE // 2:
            self._next = (self.expected, 0)
        self._drain()

    def _skip_to(self, sequence: int) -> None:
        """Give up everything before ``sequence`` (complete held messages are delivered)."""
        while self._held:
            self._give_up()
        assert self.expected is not None
        self.counters["lost"] += (sequence - self.expected) % SEQUENCE_SPACE
        self.expected = sequence
        self._next = (sequence, 0)
        self._asks.clear()
        self.nack_at = None

    def _deliver(self, body: bytes, binary: bool) -> None:
        if binary:
            self.ready.append(body)
            self.counters["messages"] += 1
            return
        try:
            self.ready.append(body.decode())
        except UnicodeDecodeError:
            self.counters["malformed"] += 1
            return
        self.counters["messages"] += 1

    def retry_interval(self) -> float:
        """Return how long to wait for a repair before asking again (twice the NACK -> repair
        time seen, within [:data:`MIN_RETRY`, :data:`MAX_RETRY`])."""
        return min(MAX_RETRY, max(MIN_RETRY, 2 * self.srtt))

    def deadline(self) -> float | None:
        """Return when the oldest held message stops waiting for the gap before it."""
        if not self._held:
            return None
        return next(iter(self._held.values())).arrived + HOLD_TIME

    def get_timer(self) -> float | None:
        """Return the earliest of the next NACK and the hold deadline (absolute), or None."""
        deadline = self.deadline()
        if self.nack_at is None:
            return deadline
        return self.nack_at if deadline is None else min(deadline, self.nack_at)

    def handle_timer(self, now: float) -> None:
        """Skip the gaps held past :data:`HOLD_TIME` (counted ``lost``); messages now in
        order go to :attr:`ready`."""
        while (deadline := self.deadline()) is not None and now >= deadline:
            self._give_up()

    def nack(self, now: float) -> list[tuple[int, int, int, int]]:
        """Return what to ask the parent for now, as ``(first, last, first index, last
        index)`` ranges (:mod:`realtime.cluster.datachannel_repair`: a run of whole
        messages, or a run of one message's fragments), and note the asking; ``[]`` if
        nothing is due.  Sets :attr:`nack_at` to the next retry."""
        self.nack_at = None
        expected = self.expected
        if not self._held or expected is None or self.unreliable:
            return []
        retry = self.retry_interval()
        asks: dict[int, tuple[int, float, int, int]] = {}
        old_asks, held_messages, (next_sequence, next_index) = self._asks, self._held, self._next
        entries: list[tuple[int, int, int, int]] = []
        span = (self._highest - expected) % SEQUENCE_SPACE + 1
        due_again = None
        run = False             # the last range is of whole messages up to the one before
        for offset in range(min(span, MAX_SPAN)):
            sequence = (expected + offset) % SEQUENCE_SPACE
            held = held_messages.get(sequence)
            if held is not None and held.have == held.count:
                run = False
                continue
            times, last, had, covered = old_asks.get(sequence, (0, -1.0, 0, 0))
            asks[sequence] = (times, last, had, covered)
            room = MAX_NACK_RANGES - len(entries)
            recent = last >= 0 and now - last < retry
            if times >= MAX_ASKS and not (held is not None and held.have > had):
                run = False
                continue                # asked enough: the hold deadline decides
            if held is None:            # a whole message
                if recent or room == 0 and not run:
                    due_again = _earliest(due_again, last + retry)
                    run = False
                    continue
                if run:
                    entries[-1] = (entries[-1][0], sequence, 0, WHOLE)
                else:
                    entries.append((sequence, sequence, 0, WHOLE))
                asks[sequence] = (times + 1, now, 0, 0)
                run = True
            else:                       # some fragments: only those already due
                run = False
                if held.have > had:
                    times = 0           # repairs arrive: keep asking for the rest
                upto = next_index if sequence == next_sequence else held.count
                if recent and times < MAX_ASKS:    # only what fell due since the last ask
                    runs = _missing_runs(sequence, held.parts, covered, upto, room)
                    due_again = _earliest(due_again, last + retry)
                    if runs:
                        entries += runs
                        asks[sequence] = (times, last, had, upto)
                    continue
                runs = _missing_runs(sequence, held.parts, 0, upto, room)
                if not runs:
                    continue
                entries += runs
                asks[sequence] = (times + 1, now, held.have, upto)
            if asks[sequence][0] < MAX_ASKS:
                due_again = _earliest(due_again, now + retry)
        self._asks = asks
        self.nack_at = due_again
        if entries:
            self._nacked_at = now
            self.counters["nacks"] += 1
        return entries
