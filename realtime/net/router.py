"""
The router seam between a port adapter and the machines behind it.

A port adapter (:class:`~realtime.net.media_port.MediaPort`) reads a
datagram, classifies it by its first byte (RFC 7983 §7, see
:mod:`realtime.demux`) and hands ``(kind, data, addr, now)`` to a router.
The router returns the packets to send straight back (``[]`` when the
answer leaves later through a :class:`~realtime.net.driver.MachineDriver`),
or ``None`` when nobody takes the packet (the port counts that as an
``unrouted`` drop)::

     MediaPort.datagramReceived(data, addr)              realtime/net/media_port.py
          │ kind = classify(data)                          (one table lookup)
          v
     router.route(kind, data, addr, now)
          │  the media port: PeerRouter                    realtime/peer/router.py
          ├─ STUN with an ICE USERNAME ──> that session's IceLiteAgent
          ├─ DTLS/RTP/RTCP ──────────────> the session bound to addr (one dict lookup)
          ├─ STUN without a session ─────> fallback: BindingRouter (below)
          └─ nobody ─────────────────────> None
          │
          └─ raises DecodeError on malformed bytes (the port counts "malformed")

This module holds the contract (:class:`DatagramRouter`) and its smallest
implementation, :class:`BindingRouter`, the plain STUN Binding service
(RFC 8489 §6.3.1; classic RFC 3489 requests per RFC 8489 §12) that answers
with XOR-MAPPED-ADDRESS and routes nothing else.  The TURN listeners do not
use a router: they feed :class:`~realtime.net.turn_port.TurnHost`, which runs
the TURN machine and answers Binding requests itself.  Routers are pure: no
Twisted import, ``now`` is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from realtime.addresses import Address
from realtime.demux import PacketKind
from realtime.stun.binding import answer_binding


#: What a router hands back: packets to send, each to an address.
Outgoing = Sequence[tuple[bytes, Address]]

#: The Binding answerer's signature (``realtime.stun.binding.answer_binding``).
Answerer = Callable[[bytes, Address], "bytes | None"]


class DatagramRouter(Protocol):
    """Take one classified packet; return replies, or ``None`` if nobody wants it."""

    def route(self, kind: PacketKind, data: bytes, addr: Address, now: float) -> Outgoing | None:
        """Deliver ``data`` from ``addr``; raise :class:`~realtime.errors.DecodeError` if malformed."""
        ...


class BindingRouter:
    """Answer STUN Binding requests; leave every other packet unrouted.

    :param answer: ``answer(data, source) -> response bytes | None`` (default
        :func:`realtime.stun.binding.answer_binding`); it raises
        :class:`~realtime.errors.DecodeError` on malformed STUN.
    """

    __slots__ = ("_answer",)

    def __init__(self, answer: Answerer | None = None) -> None:
        self._answer = answer if answer is not None else answer_binding

    def route(self, kind: PacketKind, data: bytes, addr: Address, now: float) -> Outgoing | None:
        """Return ``[(response, addr)]`` for a Binding request, ``[]`` for other STUN, else ``None``."""
        if kind is not PacketKind.STUN:
            return None
        response = self._answer(data, addr)
        return [] if response is None else [(response, addr)]
