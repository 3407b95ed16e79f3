"""
The node-to-node relay link: media between nodes, once per node, sealed with AES-GCM.

When a subscriber on node B pulls a track published on node A, A sends each
RTP/RTCP packet of that track to B *once*, however many subscribers B has; B
fans it out.  The link runs over UDP between the nodes' ``--relay-address``
ports and is a sans-I/O machine like every protocol here (DESIGN.md §1):
:meth:`RelayLink.send` and :meth:`RelayLink.receive_datagram` in,
:meth:`RelayLink.datagrams_to_send` and :meth:`RelayLink.next_event` out.

Frame (one UDP datagram)::

     0               1               2               3
     0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
    +---------------+---------------+---------------+---------------+
    | version 0xC1  |     kind      |  sender len n |  sender id    |
    +---------------+---------------+---------------+   (n bytes)   |
    |                      ... sender id (UTF-8) ...                |
    +---------------------------------------------------------------+
    |                  epoch (64 bits, ms at sender start)          |
    +---------------------------------------------------------------+
    |                  sequence (64 bits, from 0 per epoch)         |
    +---------------------------------------------------------------+
    |                  stream id (32 bits)                          |
    +---------------------------------------------------------------+
    |        AES-128-GCM ciphertext of the payload | 16-byte tag    |
    +---------------------------------------------------------------+

Everything before the ciphertext is in clear but authenticated (GCM's
additional data, RFC 5116 §2.1).  ``0xC1`` lies outside every range of the
RFC 7983 / RFC 9443 first-byte demultiplexer (STUN 0-3, DTLS 20-63, TURN
channels 64-79, RTP/RTCP 128-191), so a relay frame that strays onto a media
port is classified "unknown" and dropped there.

Keys.  Every member knows one cluster secret (``REALTIME_CLUSTER_SECRET``).
Each sender seals with a key of its own per epoch,
``HKDF-SHA256(secret, salt=epoch, info="realtime relay v1 " + sender)``
(RFC 5869), so the 96-bit nonce ``0x00000000 || sequence`` is never reused
under one key, and one sealed frame can go to every receiving node unchanged
(one encryption per packet, not per destination).  A restarted sender picks
a later epoch; a receiver moves to a later epoch, and drops earlier ones.

Replay.  Per sender, a 128-packet sliding window over the sequence
(the scheme of RFC 4303 §3.4.3 and RFC 3711 §3.3.2) rejects duplicates and
packets older than the window.

Drops, each counted in :attr:`RelayLink.dropped` by reason, never raised,
never logged per packet: ``malformed``, ``non_member`` (source address is not
a member's relay address, or the sender id does not match it),
``authentication`` (tag check failed: wrong secret or altered bytes),
``stale_epoch``, ``replay``.
"""

from __future__ import annotations

import struct
from collections import Counter, deque
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from realtime.errors import DecodeError, LocalProtocolError

VERSION = 0xC1
TAG_LENGTH = 16
#: Packets the replay window remembers behind the highest sequence seen.
REPLAY_WINDOW = 128
#: Shortest cluster secret accepted (bytes).
MIN_SECRET = 16
MAX_SENDER = 64
_TAIL = struct.Struct("!QQI")      # epoch, sequence, stream id

Address = tuple[str, int]


class RelayKind(IntEnum):
    """What a relay frame carries (a registry of this project, not IANA's)."""

    RTP = 1          #: one RTP packet of a relayed track (RFC 3550 §5.1), SRTP removed
    RTCP = 2         #: one RTCP packet about a relayed track (RFC 3550 §6)
    DATACHANNEL = 3  #: one DataChannel message (RFC 8831), relayed to subscribing nodes
    RTP_REPAIR = 4   #: an RTP packet resent from the owner's buffer for a node's NACK (pulls.py)
    KEEPALIVE = 5    #: empty: "I still relay to you", 4 per second to each child node (pulls.py)
    LAYERS = 6       #: child -> parent: the simulcast rids its subtree wants of a track (mirror.py)
    #: child -> parent: resend these DataChannel fragments (datachannel_repair.py)
    DATACHANNEL_NACK = 9
    # Kinds of the link itself (not of a track) from 16 up: their own range.
    PING = 16        #: an 8-byte nonce to a member, every 2 s: "echo this" (rtt.py)
    PONG = 17        #: the nonce of a member's PING echoed back to it (rtt.py)


#: The first of the link's own kinds (a relay port hands these to the node, not the tracks).
LINK_KINDS = int(RelayKind.PING)


@dataclass(frozen=True, slots=True)
class RelayHeader:
    """The clear, authenticated part of a relay frame."""

    kind: int
    sender: str
    epoch: int
    sequence: int
    stream_id: int

    def encode(self) -> bytes:
        """Return the header's bytes (also the AEAD additional data)."""
        sender = self.sender.encode()
        if not 0 < len(sender) <= MAX_SENDER:
            raise LocalProtocolError(f"node id must be 1-{MAX_SENDER} bytes of UTF-8")
        return (bytes((VERSION, self.kind, len(sender))) + sender
                + _TAIL.pack(self.epoch, self.sequence, self.stream_id))

    @classmethod
    def decode(cls, data: bytes) -> tuple[RelayHeader, int]:
        """Parse the header at the start of ``data``; return it and its length."""
        if len(data) < 3:
            raise DecodeError(f"relay frame of {len(data)} bytes is too short")
        if data[0] != VERSION:
            raise DecodeError(f"relay frame version 0x{data[0]:02x} is not 0xC1")
        n = data[2]
        end = 3 + n + _TAIL.size
        if n == 0 or n > MAX_SENDER or len(data) < end + TAG_LENGTH:
            raise DecodeError("relay frame truncated or sender id length out of range")
        try:
            sender = bytes(data[3:3 + n]).decode()
        except UnicodeDecodeError:
            raise DecodeError("relay frame sender id is not UTF-8") from None
        epoch, sequence, stream_id = _TAIL.unpack_from(data, 3 + n)
        return cls(data[1], sender, epoch, sequence, stream_id), end


@dataclass(frozen=True, slots=True)
class RelayPacketReceived:
    """A member's packet passed authentication and the replay check."""

    sender: str
    kind: int
    stream_id: int
    payload: bytes


class ReplayWindow:
    """Accept each sequence number once, within :data:`REPLAY_WINDOW` of the highest."""

    __slots__ = ("highest", "_bits")

    def __init__(self) -> None:
        self.highest = -1
        self._bits = 0          # bit i set: highest - i was seen

    def check(self, sequence: int) -> bool:
        """Return whether ``sequence`` is new (without recording it)."""
        if sequence > self.highest:
            return True
        offset = self.highest - sequence
        return offset < REPLAY_WINDOW and not (self._bits >> offset) & 1

    def record(self, sequence: int) -> None:
        """Mark ``sequence`` seen (after it authenticated)."""
        if sequence > self.highest:
            shift = sequence - self.highest
            self._bits = ((self._bits << shift) | 1) & ((1 << REPLAY_WINDOW) - 1)
            self.highest = sequence
        else:
            self._bits |= 1 << (self.highest - sequence)


def derive_key(secret: bytes, sender: str, epoch: int) -> bytes:
    """Return ``sender``'s AES-128 key for ``epoch`` (HKDF-SHA256, RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=epoch.to_bytes(8, "big"),
                info=b"realtime relay v1 " + sender.encode()).derive(secret)


class _Peer:
    """What a receiver keeps per member: address, epoch, cipher, replay window."""

    __slots__ = ("node_id", "address", "epoch", "cipher", "window")

    def __init__(self, node_id: str, address: Address) -> None:
        self.node_id = node_id
        self.address = address
        self.epoch = -1
        self.cipher: AESGCM | None = None
        self.window = ReplayWindow()


class RelayLink:
    """This node's end of every relay link: seal outgoing packets, open incoming ones.

    :param node_id: this node's id (the frames' sender).
    :param secret: the cluster secret every member shares (at least 16 bytes).
    :param epoch: this start's epoch, larger than any earlier start's
        (the service passes the start time in milliseconds).
    """

    def __init__(self, node_id: str, secret: bytes, epoch: int) -> None:
        if len(secret) < MIN_SECRET:
            raise LocalProtocolError(f"the cluster secret must be at least {MIN_SECRET} bytes")
        if not 0 <= epoch < 2**64:
            raise LocalProtocolError("epoch must fit 64 bits")
        self.node_id = node_id
        self.epoch = epoch
        self._secret = secret
        self._cipher = AESGCM(derive_key(secret, node_id, epoch))
        self._sequence = 0
        self._by_address: dict[Address, _Peer] = {}
        self._outbox: deque[tuple[bytes, Address]] = deque()
        self._events: deque[RelayPacketReceived] = deque()
        #: Drops by reason (see the module docstring).
        self.dropped: Counter[str] = Counter()
        #: Frames sealed (one per payload), sent (one per destination) and opened.
        self.sealed = 0
        self.sent = 0
        self.opened = 0
        #: Per link (the other node's id): frames and bytes sent to it and opened from it
        #: (kept by node id, so a member that moves address keeps counting; bounded by
        #: the number of nodes).
        self.frames_out: Counter[str] = Counter()
        self.bytes_out: Counter[str] = Counter()
        self.frames_in: Counter[str] = Counter()
        self.bytes_in: Counter[str] = Counter()

    def set_members(self, members: dict[str, Address]) -> None:
        """Replace the member list (node id -> relay address); known peers keep their state."""
        old = {peer.node_id: peer for peer in self._by_address.values()}
        table = {}
        for node_id, address in members.items():
            if node_id == self.node_id:
                continue
            peer = old.get(node_id)
            if peer is None or peer.address != address:
                peer = _Peer(node_id, address)
            table[address] = peer
        self._by_address = table

    def member_ids(self) -> list[str]:
        """Return the ids of the members frames are accepted from, sorted."""
        return sorted(peer.node_id for peer in self._by_address.values())

    def send(self, kind: RelayKind, stream_id: int, payload: bytes,
             destinations: list[Address]) -> None:
        """Seal ``payload`` once and queue it to every address in ``destinations``."""
        header = RelayHeader(kind, self.node_id, self.epoch, self._sequence, stream_id).encode()
        self._sequence += 1
        nonce = b"\0\0\0\0" + header[-12:-4]
        frame = header + self._cipher.encrypt(nonce, payload, header)
        self.sealed += 1
        self.sent += len(destinations)
        size = len(frame)
        by_address = self._by_address
        for address in destinations:
            self._outbox.append((frame, address))
            peer = by_address.get(address)
            if peer is not None:
                self.frames_out[peer.node_id] += 1
                self.bytes_out[peer.node_id] += size

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        """Open a frame from ``address``; queue a :class:`RelayPacketReceived` or count a drop."""
        peer = self._by_address.get(address)
        if peer is None:
            self.dropped["non_member"] += 1
            return
        try:
            header, end = RelayHeader.decode(data)
        except DecodeError:
            self.dropped["malformed"] += 1
            return
        if header.sender != peer.node_id:
            self.dropped["non_member"] += 1
            return
        if header.epoch < peer.epoch:
            self.dropped["stale_epoch"] += 1
            return
        fresh = header.epoch > peer.epoch
        window = ReplayWindow() if fresh else peer.window
        if not window.check(header.sequence):
            self.dropped["replay"] += 1
            return
        cipher = peer.cipher
        if fresh or cipher is None:     # None only before the first frame (epoch -1)
            cipher = AESGCM(derive_key(self._secret, peer.node_id, header.epoch))
        nonce = b"\0\0\0\0" + data[end - 12:end - 4]
        try:
            payload = cipher.decrypt(nonce, data[end:], data[:end])
        except InvalidTag:
            self.dropped["authentication"] += 1
            return
        if fresh:       # only an authenticated frame may move a peer to a new epoch
            peer.epoch, peer.cipher, peer.window = header.epoch, cipher, window
        window.record(header.sequence)
        self.opened += 1
        self.frames_in[peer.node_id] += 1
        self.bytes_in[peer.node_id] += len(data)
        self._events.append(
            RelayPacketReceived(peer.node_id, header.kind, header.stream_id, payload))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Return and forget the frames queued by :meth:`send`."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def next_event(self) -> RelayPacketReceived | None:
        """Return the next received packet, or ``None``."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The link has no timers (membership comes from the registry)."""
        return None
