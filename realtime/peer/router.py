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
      |              +-- a session, no connection yet --> its agent's response, sent back
      |              +-- nobody, USERNAME present --> None: no unauthenticated answer
      |              +-- nobody    --> fallback (the plain STUN Binding service)
      |
      +-- DTLS / RTP / RTCP --> demux.session_for_address(addr)   <- the one lookup
                     |
                     +-- a session --> connection.receive_datagram()
                     +-- a session, no connection yet --> held (a few per session)
                     +-- nobody    --> None (the port counts "unrouted-<kind>")

Checks before the answer (RFC 8445 §7.3).  When the SFU offers, the client
starts its checks as soon as it has applied our offer and its own answer,
often before that answer has reached us (``PUT renegotiate``).  The
session's agent is registered when the offer is made
(:meth:`realtime.net.peers.PeerHost.expect`), so it answers those checks
with MESSAGE-INTEGRITY; the PeerConnection only exists once the answer
settles the DTLS role and fingerprint.  Until then the DTLS (or SRTP) that
follows a passed check is held, at most :data:`EARLY_DATAGRAMS` per session,
and replayed by the host when the connection is made: a ClientHello dropped
here would cost the client a 1 s DTLS retransmission.

A check whose USERNAME names no session is not passed to the fallback: a
Binding success without MESSAGE-INTEGRITY is discarded by a real ICE agent
(RFC 8489 §9.1.4): it only delays the client; a plain Binding request
without USERNAME (server-reflexive discovery, RFC 8489) is still answered.

After any input the router calls ``after_input(session)``; the Twisted side
uses it to pump the session's output and re-arm its single timer
(:class:`realtime.net.driver.MachineDriver`).  The router is pure: no
Twisted import, ``now`` is a parameter.
"""

from __future__ import annotations

from typing import Callable, Generic, Protocol, Sequence, TypeVar

from realtime.addresses import Address
from realtime.demux import PacketKind
from realtime.ice.demultiplexer import SessionDemultiplexer
from realtime.errors import DecodeError
from realtime.ice.lite import IceLiteAgent
from realtime.peer.connection import PeerConnection
from realtime.stun.attributes import Username
from realtime.stun.message import StunMessage


#: datagrams held per session between its first passed check and its answer
EARLY_DATAGRAMS = 8


class RoutedSession(Protocol):
    """What the router needs of a session: its ICE agent and its connection."""

    ice: IceLiteAgent
    connection: PeerConnection


#: The kind of session a router delivers to.
R = TypeVar("R", bound=RoutedSession)


#: datagrams for the port to send in answer: ``(data, address)``
Replies = Sequence[tuple[bytes, Address]]


class Fallback(Protocol):
    """Answers what no session takes (the STUN Binding service)."""

    def route(self, kind: PacketKind, data: bytes, addr: Address, now: float
              ) -> Replies | None: ...


class PeerRouter(Generic[R]):
    """Deliver each datagram of the media port to the PeerConnection it belongs to.

    :param demux: the port-wide address/ufrag map.
    :param fallback: router for STUN that no session claims.
    :param after_input: called with the session after it consumed input.
    :param unknown_checks: router for checks whose USERNAME names no session of this
        port (a cluster node's just-in-time lookup, :mod:`realtime.cluster.jit`);
        None: such checks are dropped, never answered without MESSAGE-INTEGRITY.
    """

    __slots__ = ("demux", "fallback", "after_input", "early", "unknown_checks")

    def __init__(
        self,
        demux: SessionDemultiplexer[R],
        fallback: Fallback,
        after_input: Callable[[R], None],
        unknown_checks: Fallback | None = None,
    ) -> None:
        self.demux = demux
        self.fallback = fallback
        self.after_input = after_input
        self.unknown_checks = unknown_checks
        #: per session without a connection yet: the datagrams held for it
        self.early: dict[RoutedSession, list[tuple[PacketKind, bytes, Address, float]]] = {}

    def route(self, kind: PacketKind, data: bytes, addr: Address, now: float) -> Replies | None:
        """Deliver ``data``; return replies for the port, ``[]`` or ``None`` (unrouted)."""
        if kind is PacketKind.STUN:
            routed = self.demux.route_stun(data, addr, now)
            session = routed.session
            if session is None:
                if _names_username(data):  # a check for no session of ours
                    if self.unknown_checks is None:
                        return None  # no unauthenticated answer
                    return self.unknown_checks.route(kind, data, addr, now)
                return self.fallback.route(kind, data, addr, now)
            connection = session.connection
            if connection is None:  # offered, not yet answered: the agent answers alone
                return [] if routed.response is None else [(routed.response, addr)]
            connection.receive_stun(data, addr, now, routed.response, handled=True)
            self.after_input(session)
            return []
        session = self.demux.session_for_address(addr)
        if session is None:
            return None
        connection = session.connection
        if connection is None:
            held = self.early.setdefault(session, [])
            if len(held) >= EARLY_DATAGRAMS:
                return None
            held.append((kind, data, addr, now))
            return []
        connection.receive_classified(kind, data, addr, now)
        self.after_input(session)
        return []

    def take_early(self, session: RoutedSession) -> list[tuple[PacketKind, bytes, Address, float]]:
        """Return (and forget) what was held for ``session`` before it had a connection."""
        return self.early.pop(session, [])


def _names_username(data: bytes) -> bool:
    """Return whether the STUN message ``data`` carries USERNAME (an ICE check)."""
    try:
        message = StunMessage.decode(data)
    except DecodeError:
        return False
    return any(type(attribute) is Username for attribute in message.attributes)
