"""
DataChannel frames between nodes made reliable: a NACK shield per hop (pure part).

The relay link is UDP (:mod:`realtime.cluster.relay`); a reliable, ordered
DataChannel (RFC 8831 §6.1, the browsers' default) must not lose a message
because one datagram between two nodes was lost.  So every *hop* that sends
DataChannel frames (the publication's owner, each relay node of its tree
towards its children, and a ``canReply`` subscriber's node towards the owner)
keeps what it sent in a :class:`RetransmissionBuffer`; the receiving node's
:class:`~realtime.cluster.datachannel_frames.FeedReceiver` holds the messages
behind a gap and names what is missing; the node sends that to the hop that
feeds it as a ``DATACHANNEL_NACK`` relay frame (sealed like every frame), and
the hop resends from its buffer, as the media's NACK shield does (RFC 4585
§6.2.1 generic NACK, RFC 4588 retransmission, done here between nodes)::

    owner A ── seq 7, 8, 9 ──> relay B ── 7, 9 (8 lost) ──> C
                                 ^  buffer: 7 8 9             FeedReceiver: 9 held, 8 missing
                                 └──── DATACHANNEL_NACK 8..8 ─┘  at once, then every
                                 ── 8 (from B's buffer) ──>  C   2 x RTT, three times at most
                                                              C delivers 8, 9 in order

A relay node answers its children from its own buffer and asks its parent
only for its own gaps; a repair it receives is new to it, so it passes it on
to its children like any new fragment.  A *tail* loss (the last message of a
burst, after which nothing arrives to reveal the gap) is caught by a tail
probe (RFC 8985 §7, TLP's idea): a hop that sent nothing for
:data:`PROBE_DELAY` resends the last fragment it sent, and again after twice
and four times that (:data:`PROBES` in all, so a lost probe is not the end of
it); a receiver that had it counts it ``late``, one that lost the message
sees the gap.

Bounds, all counted when hit: the buffer keeps :data:`BUFFER_FRAMES` fragments,
:data:`BUFFER_BYTES` bytes and :data:`BUFFER_AGE` seconds per feed and hop; a
receiver holds at most ``HOLD_FRAMES`` fragments for ``HOLD_TIME`` seconds
(:mod:`realtime.cluster.datachannel_frames`) and then delivers past the gap
(``lost``); a NACK carries at most ``MAX_NACK_RANGES`` ranges, a range's
length counts at most :data:`MAX_RANGE` sequence numbers, one NACK looks at
most :data:`MAX_LOOKUPS` messages up, and each asking node may make a hop
resend at most :data:`RESEND_RATE` fragments per second (bursts of
:data:`RESEND_BURST`).  A NACK for sequence numbers never sent (or evicted)
costs those lookups and resends nothing.

The NACK payload (inside the relay frame's AES-GCM ciphertext)::

     0               1               2               3
     0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
    +---------------+---------------+-------------------------------+
    | flags (b1:    | session id    | session id (n bytes) ...      |
    | replies)      | length n      |                               |
    +---------------+---------------+-------------------------------+
    | name length m (16)            | name (m bytes, UTF-8) ...     |
    +---------------+---------------+-------------------------------+
    | range count r | then r ranges of 12 bytes:                    |
    +---------------+-----------------------------------------------+
    |                first sequence (32)                            |
    +---------------------------------------------------------------+
    |                last sequence (32)                             |
    +-------------------------------+-------------------------------+
    | first fragment index (16)     | last fragment index (16)      |
    +-------------------------------+-------------------------------+

A range asks for the fragments from (``first``, first index) to (``last``,
last index) in send order: the messages ``first`` .. ``last`` (RFC 1982
order), from the first index of the first message to the last index of the
last one (``0xFFFF``: its end).  A receiver names whole lost messages as one
range ``(a, b, 0, 0xFFFF)`` and each run of a message's missing fragments as
``(s, s, i, j)``.  The publication is named as in its frames; flag
``replies`` means "the replies you send me" (a ``canReply`` feed).
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass

from realtime.cluster.datachannel_frames import (
    MAX_NACK_RANGES, MAX_NAME, MAX_SESSION_ID, REPLY, SEQUENCE_SPACE,
)
from realtime.errors import DecodeError, LocalProtocolError
from realtime.turn.policy import TokenBucket

__all__ = ["BUFFER_AGE", "BUFFER_BYTES", "BUFFER_FRAMES", "DataChannelNack", "MAX_LOOKUPS",
           "MAX_RANGE", "PROBE_DELAY", "PROBES", "RESEND_BURST", "RESEND_RATE", "ResendBudget",
           "RetransmissionBuffer"]

#: A hop keeps at most this many fragments per feed for its receivers' NACKs ...
BUFFER_FRAMES = 512
#: ... this many bytes of them ...
BUFFER_BYTES = 1 << 20
#: ... for at most this long (seconds).
BUFFER_AGE = 5.0
#: A hop that sent nothing for this long resends its last fragment (a tail probe) ...
PROBE_DELAY = 0.1
#: ... this many times at most, each after twice the wait before it (0.1, 0.3, 0.7 s).
PROBES = 3
#: Sequence numbers one range covers at most (a longer one is cut, ``nack-range-cut``).
MAX_RANGE = 512
#: Messages one NACK looks up at most, over all its ranges.
MAX_LOOKUPS = 1024
#: Fragments a hop resends per second to one asking node, and the burst allowed.
RESEND_RATE = 2048
RESEND_BURST = 512

_HEAD = struct.Struct("!BB")           # flags, session id length
_NAME_LENGTH = struct.Struct("!H")
_RANGE = struct.Struct("!IIHH")        # first, last, first and last fragment index


@dataclass(frozen=True, slots=True)
class DataChannelNack:
    """A receiving node's request: resend these fragments of one feed (the layout above)."""

    session_id: str
    name: str
    ranges: tuple[tuple[int, int, int, int], ...]
    reply: bool = False

    def encode(self) -> bytes:
        """Return the payload's bytes."""
        session_id, name = self.session_id.encode(), self.name.encode()
        if not 0 < len(session_id) <= MAX_SESSION_ID or not 0 < len(name) <= MAX_NAME:
            raise LocalProtocolError("session id or channel name out of range")
        if not 0 < len(self.ranges) <= MAX_NACK_RANGES:
            raise LocalProtocolError(f"a NACK carries 1-{MAX_NACK_RANGES} ranges")
        return b"".join([_HEAD.pack(REPLY if self.reply else 0, len(session_id)), session_id,
                         _NAME_LENGTH.pack(len(name)), name, bytes((len(self.ranges),)),
                         *(_RANGE.pack(*r) for r in self.ranges)])

    @classmethod
    def decode(cls, data: bytes) -> DataChannelNack:
        """Parse a payload; raise :class:`DecodeError` on anything malformed."""
        if len(data) < _HEAD.size:
            raise DecodeError(f"DataChannel NACK of {len(data)} bytes is too short")
        flags, n = _HEAD.unpack_from(data)
        if flags & ~REPLY:
            raise DecodeError(f"DataChannel NACK flags 0x{flags:02x} unknown")
        offset = _HEAD.size
        if not 0 < n <= MAX_SESSION_ID or len(data) < offset + n + _NAME_LENGTH.size:
            raise DecodeError("DataChannel NACK session id truncated or out of range")
        session_id = bytes(data[offset:offset + n])
        offset += n
        (m,) = _NAME_LENGTH.unpack_from(data, offset)
        offset += _NAME_LENGTH.size
        if not 0 < m <= MAX_NAME or len(data) < offset + m + 1:
            raise DecodeError("DataChannel NACK channel name truncated or out of range")
        name = bytes(data[offset:offset + m])
        offset += m
        count = data[offset]
        offset += 1
        if not 0 < count <= MAX_NACK_RANGES:
            raise DecodeError(f"DataChannel NACK with {count} ranges")
        if len(data) != offset + count * _RANGE.size:
            raise DecodeError("DataChannel NACK ranges truncated or followed by bytes")
        ranges = tuple(_RANGE.unpack_from(data, offset + i * _RANGE.size) for i in range(count))
        try:
            return cls(session_id.decode(), name.decode(), ranges, bool(flags & REPLY))
        except UnicodeDecodeError:
            raise DecodeError("DataChannel NACK names are not UTF-8") from None


class RetransmissionBuffer:
    """What one hop sent of one feed, kept for its receivers' NACKs; and its tail probe.

    Fragments are kept by (sequence, index) as they were sent (the same
    payload bytes, so a repair is sealed and judged like the original).
    Eviction is oldest message first, by count, bytes and age.

    :ivar counters: ``evicted`` fragments (over a bound),
        ``resent``, ``not-buffered`` (asked for but never sent, or gone),
        ``probes``.
    """

    __slots__ = ("max_frames", "max_bytes", "max_age", "_messages", "frames", "size",
                 "last", "probe_at", "_probes", "counters")

    def __init__(self, max_frames: int = BUFFER_FRAMES, max_bytes: int = BUFFER_BYTES,
                 max_age: float = BUFFER_AGE) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.max_age = max_age
        #: sequence -> (when kept, {fragment index: payload}), oldest first
        self._messages: dict[int, tuple[float, dict[int, bytes]]] = {}
        self.frames = 0
        self.size = 0
        #: the payload sent last (what a tail probe resends) and when to probe (None: done)
        self.last: bytes | None = None
        self.probe_at: float | None = None
        self._probes = 0
        self.counters: Counter[str] = Counter()

    def keep(self, sequence: int, index: int, payload: bytes, now: float) -> None:
        """Keep one fragment sent now (and arm the tail probe).  Over the count or bytes
        bound the oldest messages go now; past their age, when next looked up."""
        messages = self._messages
        entry = messages.get(sequence)
        if entry is None:
            messages[sequence] = (now, {index: payload})
        elif index in entry[1]:
            return
        else:
            entry[1][index] = payload
        self.frames += 1
        self.size += len(payload)
        self.last, self.probe_at, self._probes = payload, now + PROBE_DELAY, 0
        if self.frames > self.max_frames or self.size > self.max_bytes:
            self._evict(now)

    def _evict(self, now: float) -> None:
        messages = self._messages
        while messages:
            sequence = next(iter(messages))
            kept, fragments = messages[sequence]
            if (self.frames <= self.max_frames and self.size <= self.max_bytes
                    and now - kept <= self.max_age):
                return
            del messages[sequence]
            self.frames -= len(fragments)
            self.size -= sum(len(p) for p in fragments.values())
            self.counters["evicted"] += len(fragments)

    def find(self, ranges: tuple[tuple[int, int, int, int], ...], now: float,
             budget: TokenBucket | None = None) -> list[bytes]:
        """Return the kept payloads ``ranges`` ask for, in order, within ``budget`` (one token
        per fragment); what was never kept (or is gone) is counted ``not-buffered``."""
        self._evict(now)
        messages, lookups = self._messages, MAX_LOOKUPS
        out: list[bytes] = []
        for first, last, first_index, last_index in ranges:
            length = (last - first) % SEQUENCE_SPACE + 1
            if length > MAX_RANGE:
                self.counters["range-cut"] += 1
                length, last_index = MAX_RANGE, 0xFFFF
            end = length - 1
            for offset in range(min(length, lookups)):
                entry = messages.get((first + offset) % SEQUENCE_SPACE)
                if entry is None:
                    self.counters["not-buffered"] += 1
                    continue
                fragments = entry[1]
                for i in sorted(fragments):
                    if offset == 0 and i < first_index or offset == end and i > last_index:
                        continue
                    if budget is not None and not budget.take(1, now):
                        self.counters["over-budget"] += 1
                        return out
                    out.append(fragments[i])
            lookups -= min(length, lookups)
            if lookups == 0:
                self.counters["lookups-cut"] += 1
                break
        self.counters["resent"] += len(out)
        return out

    def probe(self, now: float) -> bytes | None:
        """Return the last payload if a tail probe is due (nothing sent for
        :data:`PROBE_DELAY`, then twice and four times that), else None."""
        if self.probe_at is None or now < self.probe_at or self.last is None:
            return None
        self._probes += 1
        self.probe_at = None if self._probes >= PROBES else \
            now + PROBE_DELAY * (1 << self._probes)
        self.counters["probes"] += 1
        return self.last


class ResendBudget:
    """One :class:`~realtime.turn.policy.TokenBucket` of resent fragments per asking node
    (bounded by the cluster's members: buckets of nodes gone are dropped on :meth:`prune`)."""

    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, node: str, now: float) -> TokenBucket:
        """Return ``node``'s bucket (full at first)."""
        bucket = self._buckets.get(node)
        if bucket is None:
            bucket = self._buckets[node] = TokenBucket(RESEND_RATE, RESEND_BURST, now)
        return bucket

    def prune(self, members: Container[str]) -> None:
        """Forget the buckets of nodes no longer members."""
        for node in [n for n in self._buckets if n not in members]:
            del self._buckets[node]
