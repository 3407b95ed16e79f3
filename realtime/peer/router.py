"""
The media port's router: one dict lookup from a source address to its
PeerConnection.

Every PeerConnection of the server shares one UDP port (the seed design's
"one port for all").  :class:`PeerRouter` is the :class:`DatagramRouter` the
port hands every classified datagram to::

    route(kind, data, addr, now)
      |
      +-- STUN --> SessionDemultiplexer.route_stun()      (USERNAME ufrag -> session;
      |              |                                     binds addr only after the
      |              |                                     check authenticated)
      |              +-- a session --> connection.receive_stun(response)
      |              +-- nobody    --> fallback (the plain STUN Binding service)
      |
      +-- DTLS / RTP / RTCP --> demux.session_for_address(addr)   <- the one lookup
                     |
                     +-- a session --> connection.receive_datagram()
                     +-- nobody    --> None (the port counts "unrouted-<kind>")

After any input the router calls ``after_input(session)``; the Twisted side
uses it to pump the session's output and re-arm its single timer
(:class:`realtime.net.driver.MachineDriver`).  The router is pure: no
Twisted import, ``now`` is a parameter.
"""

from __future__ import annotations

from typing import Callable, Generic, Protocol, TypeVar

from realtime.addresses import Address
from realtime.demux import PacketKind
from realtime.ice.demultiplexer import SessionDemultiplexer
from realtime.ice.lite import IceLiteAgent
from realtime.peer.connection import PeerConnection



class RoutedSession(Protocol):
    """What the router needs of a session: its ICE agent and its connection."""

    ice: IceLiteAgent
    connection: PeerConnection


#: The kind of session a router delivers to.
R = TypeVar("R", bound=RoutedSession)


class Fallback(Protocol):
    """Answers what no session takes (the STUN Binding service)."""

    def route(self, kind: PacketKind, data: bytes, addr: Address, now: float): ...


class PeerRouter(Generic[R]):
    """Deliver each datagram of the media port to the PeerConnection it belongs to.

    :param demux: the port-wide address/ufrag map.
    :param fallback: router for STUN that no session claims.
    :param after_input: called with the session after it consumed input.
    """

    __slots__ = ("demux", "fallback", "after_input")

    def __init__(
        self,
        demux: SessionDemultiplexer[R],
        fallback: Fallback,
        after_input: Callable[[R], None],
    ) -> None:
        self.demux = demux
        self.fallback = fallback
        self.after_input = after_input

    def route(self, kind: PacketKind, data: bytes, addr: Address, now: float):
        """Deliver ``data``; return replies for the port, ``[]`` or ``None`` (unrouted)."""
        if kind is PacketKind.STUN:
            routed = self.demux.route_stun(data, addr, now)
            session = routed.session
            if session is None:
                return self.fallback.route(kind, data, addr, now)
            session.connection.receive_stun(data, addr, now, routed.response, handled=True)
            self.after_input(session)
            return []
        session = self.demux.session_for_address(addr)
        if session is None:
            return None
        session.connection.receive_classified(kind, data, addr, now)
        self.after_input(session)
        return []
