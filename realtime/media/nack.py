"""
The NACK shield: a retransmission buffer per published stream and a NACK generator.

An SFU sits between one publisher and many subscribers.  Loss on a
subscriber's path must not reach the publisher, and loss on the publisher's
path must be repaired once, by the SFU, for everybody (RFC 4585 §3.2 lets
any RTP receiver send Generic NACKs; RFC 7667 §3.7 lets a Selective
Forwarding Middlebox terminate feedback)::

    publisher --RTP--> [ NackGenerator ] ---> [ RetransmissionBuffer ] --RTP--> subscribers
        ^                    |                        ^                            |
        |   NACK (upstream)  |                        |  lookup by original seq    |
        +--------------------+                        +----- NACK (terminated) ----+

:class:`RetransmissionBuffer` is a ring of ``capacity`` slots (a power of
two) indexed by ``sequence_number & (capacity - 1)``; a slot remembers the
full number it holds, so a stale slot never answers for a newer one::

    capacity = 2048, slot = seq & 2047
    slot:    0      1      2      3     ...  2047
           +------+------+------+------+----+------+
    seq:   | 4096 | 4097 | 2050 | 4099 |    | 4095 |
           +------+------+------+------+----+------+
    get(4097) -> the packet;  get(4098) -> None (slot 2 still holds 2050)

:class:`NackGenerator` watches the extended sequence numbers of one source
(RFC 3550 Appendix A.1 style unwrapping) and keeps the missing ones::

    received:  100 101 102 . . 105 106 . 108
    missing:               103 104        107
    NACK (RFC 4585 §6.2.1):  PID=103 BLP=0b0000_0000_0000_1001  (bit 0: 104, bit 3: 107)

Each missing number is NACKed first ``reorder_delay`` after the gap was seen,
then again every ``max(min_interval, rtt * rtt_factor)`` until it arrives, it
has been asked ``max_retries`` times, or it is older than ``max_age``; then
it is given up (:attr:`NackGenerator.abandoned` counts it and
:attr:`NackGenerator.keyframe_wanted` is raised, since a decoder that lost
a packet for good needs a refresh point).  A jump larger than ``max_gap``
is not loss but a restart: the list is cleared.

Both objects are bounded: the buffer by ``capacity``, the missing list by
``max_missing`` (the oldest entries are abandoned first).
"""

from __future__ import annotations

from realtime.serial import Unwrapper

__all__ = ["NackGenerator", "RetransmissionBuffer"]


class RetransmissionBuffer:
    """Keep the last ``capacity`` packets of one source, found again by sequence number.

    :param capacity: number of slots, a power of two (1024 holds about 3 s of
        a 3 Mbit/s video stream).

    The two rings (~16 KiB at 1024 slots) are made by the first :meth:`store`: a
    source that never sends (an idle session's announced track) costs a few
    dozen bytes, not 16 KiB.
    """

    __slots__ = ("capacity", "_mask", "_seqs", "_packets", "stored", "hits", "misses")

    #: the rings before the first store: no slot matches a sequence number (0..65535)
    _NOTHING: tuple[int, ...] = (-1,)

    def __init__(self, capacity: int = 1024) -> None:
        if capacity <= 0 or capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self.capacity = capacity
        self._mask = 0  # until the first store, every number maps to _NOTHING's one slot
        self._seqs: list[int] | tuple[int, ...] = self._NOTHING
        self._packets: list[bytes | None] = []
        self.stored = 0
        self.hits = 0
        self.misses = 0

    def store(self, sequence_number: int, packet: bytes) -> None:
        """Remember ``packet`` under ``sequence_number``, evicting whatever used the slot."""
        if not self.stored:
            self._allocate()
        slot = sequence_number & self._mask
        self._seqs[slot] = sequence_number  # type: ignore[index]  # a list once allocated
        self._packets[slot] = packet
        self.stored += 1

    def _allocate(self) -> None:
        self._mask = self.capacity - 1
        self._seqs = [-1] * self.capacity
        self._packets = [None] * self.capacity

    def get(self, sequence_number: int) -> bytes | None:
        """Return the packet stored under ``sequence_number``, or None (evicted or never seen)."""
        slot = sequence_number & self._mask
        if self._seqs[slot] == sequence_number:
            self.hits += 1
            return self._packets[slot]
        self.misses += 1
        return None

    def __contains__(self, sequence_number: int) -> bool:
        """Return True if the packet is still in the buffer."""
        return self._seqs[sequence_number & self._mask] == sequence_number

    def __len__(self) -> int:
        """Return how many slots hold a packet."""
        return sum(1 for p in self._packets if p is not None)

    def clear(self) -> None:
        """Forget every packet (the source restarted); the rings are kept if made."""
        if self.stored:
            self._seqs = [-1] * self.capacity
            self._packets = [None] * self.capacity


class _Missing:
    """Book-keeping of one missing packet: when it is due next and how often it was asked."""

    __slots__ = ("first_seen", "due", "retries")

    def __init__(self, first_seen: float, due: float) -> None:
        self.first_seen = first_seen
        self.due = due
        self.retries = 0


class NackGenerator:
    """Find the gaps in one source's sequence numbers and say when to NACK each.

    :param reorder_delay: wait this long after a gap appears before the first
        NACK (a reordered packet usually arrives within a few ms).
    :param min_interval: never ask for the same packet more often than this.
    :param rtt_factor: ask again only after ``rtt * rtt_factor``.
    :param max_retries: give a packet up after this many NACKs.
    :param max_age: give a packet up this long after it went missing.
    :param max_missing: bound on the missing list; the oldest are abandoned.
    :param max_gap: a forward jump larger than this is a restart, not loss.
    """

    __slots__ = (
        "reorder_delay",
        "min_interval",
        "rtt_factor",
        "max_retries",
        "max_age",
        "max_missing",
        "max_gap",
        "rtt",
        "_unwrap",
        "_highest",
        "_missing",
        "abandoned",
        "recovered",
        "requested",
        "keyframe_wanted",
    )

    def __init__(
        self,
        reorder_delay: float = 0.005,
        min_interval: float = 0.02,
        rtt_factor: float = 1.2,
        max_retries: int = 10,
        max_age: float = 1.0,
        max_missing: int = 512,
        max_gap: int = 3000,
    ) -> None:
        self.reorder_delay = reorder_delay
        self.min_interval = min_interval
        self.rtt_factor = rtt_factor
        self.max_retries = max_retries
        self.max_age = max_age
        self.max_missing = max_missing
        self.max_gap = max_gap
        self.rtt = 0.1
        self._unwrap = Unwrapper(16)
        self._highest: int | None = None
        self._missing: dict[int, _Missing] = {}
        self.abandoned = 0
        self.recovered = 0
        self.requested = 0
        self.keyframe_wanted = False

    @property
    def missing(self) -> list[int]:
        """Return the 16-bit sequence numbers currently missing, oldest first."""
        return [ext & 0xFFFF for ext in sorted(self._missing)]

    def set_rtt(self, rtt: float) -> None:
        """Use ``rtt`` seconds (from RTCP or ICE consent) to space repeated NACKs."""
        self.rtt = max(0.0, rtt)

    def receive(self, sequence_number: int, now: float) -> None:
        """Account for one packet of the source (original or recovered via RTX)."""
        ext = self._unwrap.unwrap(sequence_number)
        highest = self._highest
        if highest is None:
            self._highest = ext
            return
        if ext > highest:
            gap = ext - highest - 1
            if gap > self.max_gap:
                self._missing.clear()
            elif gap:
                due = now + self.reorder_delay
                missing = self._missing
                for lost in range(highest + 1, ext):
                    missing[lost] = _Missing(now, due)
                self._trim()
            self._highest = ext
        elif self._missing.pop(ext, None) is not None:
            self.recovered += 1

    def _trim(self) -> None:
        excess = len(self._missing) - self.max_missing
        if excess > 0:
            for ext in sorted(self._missing)[:excess]:
                del self._missing[ext]
            self.abandoned += excess
            self.keyframe_wanted = True

    def nacks_due(self, now: float) -> list[int]:
        """Return the sequence numbers to NACK now; count and drop those given up."""
        if not self._missing:
            return []
        spacing = max(self.min_interval, self.rtt * self.rtt_factor)
        due: list[int] = []
        for ext, entry in list(self._missing.items()):
            if entry.retries >= self.max_retries or now >= entry.first_seen + self.max_age:
                del self._missing[ext]
                self.abandoned += 1
                self.keyframe_wanted = True
            elif entry.due <= now:
                entry.retries += 1
                entry.due = now + spacing
                due.append(ext & 0xFFFF)
        self.requested += len(due)
        return due

    def get_timer(self) -> float | None:
        """Return when :meth:`nacks_due` has something to do next, or None."""
        if not self._missing:
            return None
        deadline = min(entry.due for entry in self._missing.values())
        oldest = min(entry.first_seen for entry in self._missing.values())
        return min(deadline, oldest + self.max_age)

    def take_keyframe_wanted(self) -> bool:
        """Return True once after a packet was given up, then reset the flag."""
        wanted, self.keyframe_wanted = self.keyframe_wanted, False
        return wanted

    def reset(self) -> None:
        """Forget the source's history (it restarted with a new sequence space)."""
        self._unwrap = Unwrapper(16)
        self._highest = None
        self._missing.clear()
