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
    | reply)        +---------------+---------------+---------------+
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
its node to the publisher's, with a sequence of its own.

Fragmentation.  The relay link is UDP between nodes; a datagram larger than
the path MTU would be fragmented by IP, and losing one IP fragment loses the
datagram.  So a message is cut into pieces that keep each relay datagram
within :data:`TARGET_DATAGRAM` bytes, each a fragment ``index/count`` of the
same sequence number.  The largest message relayed is :data:`MAX_MESSAGE`
(256 KiB, the largest message our SCTP association accepts from a client,
docs/datachannels.md; Cloudflare documents no DataChannel message limit of
its own, browsers send up to the ``a=max-message-size`` we announce); a
larger one is dropped and counted (``too-large``), never cut short.

What holds across the link (say it honestly): the relay link is **not
reliable**.  A lost datagram loses its whole message; nothing retransmits
it.  Order **is** kept: the receiver never delivers a message older than
one it already delivered (a late one is dropped and counted ``late``), so
each subscriber sees the publisher's messages in send order, possibly with
holes.  Every hole is counted (``lost``, from the sequence numbers) at the
receiving node.  On loopback or a LAN the link loses nothing in practice; a
reliable link (retransmission from a buffer at the sender) is not built.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

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
SEQUENCE_SPACE = 1 << 32


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

    def encode(self) -> bytes:
        """Return the payload's bytes (the layout in the module docstring)."""
        session_id, name = self.session_id.encode(), self.name.encode()
        if not 0 < len(session_id) <= MAX_SESSION_ID or not 0 < len(name) <= MAX_NAME:
            raise LocalProtocolError("session id or channel name out of range")
        flags = (BINARY if self.binary else 0) | (REPLY if self.reply else 0)
        return (_FIXED.pack(flags, self.sequence, self.index, self.count, len(session_id))
                + session_id + _NAME_LENGTH.pack(len(name)) + name + self.data)

    @classmethod
    def decode(cls, data: bytes) -> DataChannelFragment:
        """Parse a payload; raise :class:`DecodeError` on anything malformed."""
        if len(data) < _FIXED.size:
            raise DecodeError(f"DataChannel relay payload of {len(data)} bytes is too short")
        flags, sequence, index, count, n = _FIXED.unpack_from(data)
        if flags & ~(BINARY | REPLY):
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
                       bool(flags & BINARY), bytes(data[offset + m:]), bool(flags & REPLY))
        except UnicodeDecodeError:
            raise DecodeError("DataChannel relay names are not UTF-8") from None


class FeedSender:
    """The publisher node's side of one publication: its sequence and its fragments.

    One :class:`FeedSender` per publication, however many nodes subscribe:
    each message gets one sequence number and is sealed once per fragment;
    the relay link sends the same sealed frames to every subscribing node.
    """

    __slots__ = ("session_id", "name", "reply", "sequence", "piece", "nodes", "replier_node",
                 "replies", "dropped")

    def __init__(self, session_id: str, name: str, reply: bool = False) -> None:
        self.session_id = session_id
        self.name = name
        #: a sender of replies (subscriber's node -> publisher's node)
        self.reply = reply
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

    def fragments(self, data: bytes | str) -> list[bytes]:
        """Return the payloads of the next message (one sequence number), or ``[]`` if dropped."""
        binary = not isinstance(data, str)
        body = data.encode() if isinstance(data, str) else bytes(data)
        if len(body) > MAX_MESSAGE:
            self.dropped["too-large"] += 1
            return []
        sequence = self.sequence
        self.sequence = (sequence + 1) % SEQUENCE_SPACE
        piece = self.piece
        count = max(1, -(-len(body) // piece))
        return [DataChannelFragment(self.session_id, self.name, sequence, i, count, binary,
                                    body[i * piece:(i + 1) * piece], self.reply).encode()
                for i in range(count)]


class FeedReceiver:
    """A subscribing node's side of one publication: reassemble, keep order, count gaps.

    :meth:`receive` takes each fragment and returns the message once it is
    whole and not older than the last one delivered (``None`` otherwise).

    :ivar counters: ``messages`` delivered, ``lost`` (sequence numbers never
        seen), ``late`` (older than one delivered: dropped to keep order),
        ``incomplete`` (a message missing a fragment), ``too-large``,
        ``malformed`` (bytes that are not UTF-8 in a string message).
    """

    __slots__ = ("expected", "_sequence", "_count", "_parts", "_size", "counters")

    def __init__(self) -> None:
        self.expected: int | None = None      # the next sequence number in order
        self._sequence = -1                   # the message being reassembled
        self._count = 0                       # ... and its number of fragments
        self._parts: list[bytes] = []
        self._size = 0
        self.counters: Counter[str] = Counter()

    def receive(self, fragment: DataChannelFragment) -> bytes | str | None:
        """Take one fragment; return its whole message when it completes in order."""
        sequence = fragment.sequence
        expected = self.expected
        if expected is not None:
            ahead = (sequence - expected) % SEQUENCE_SPACE
            if ahead >= SEQUENCE_SPACE // 2:          # behind what was delivered (RFC 1982)
                self.counters["late"] += 1
                return None
        body = fragment.data if fragment.count == 1 else self._reassemble(fragment)
        if body is None:
            return None
        if expected is not None:
            self.counters["lost"] += (sequence - expected) % SEQUENCE_SPACE
        self.expected = (sequence + 1) % SEQUENCE_SPACE
        if fragment.binary:
            message: bytes | str = body
        else:
            try:
                message = body.decode()
            except UnicodeDecodeError:
                self.counters["malformed"] += 1
                return None
        self.counters["messages"] += 1
        return message

    def _reassemble(self, fragment: DataChannelFragment) -> bytes | None:
        if fragment.sequence != self._sequence:
            if self._parts:
                self.counters["incomplete"] += 1     # the one being built never finished
            self._sequence, self._parts, self._size = fragment.sequence, [], 0
            self._count = fragment.count
        if fragment.index != len(self._parts) or fragment.count != self._count:
            # a piece is missing (or reordered), or the pieces disagree on their number
            if self._parts:
                self.counters["incomplete"] += 1
            self._sequence, self._parts, self._size = -1, [], 0
            return None
        self._size += len(fragment.data)
        if self._size > MAX_MESSAGE:
            self.counters["too-large"] += 1
            self._sequence, self._parts, self._size = -1, [], 0
            return None
        self._parts.append(fragment.data)
        if len(self._parts) < fragment.count:
            return None
        body = b"".join(self._parts)
        self._sequence, self._parts, self._size = -1, [], 0
        return body
