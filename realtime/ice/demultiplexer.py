"""
One UDP media port for every session: find the session a datagram belongs to.

Every PeerConnection announces the same host candidate (RFC 8445 §5.1.1.1),
so all of them share one socket.  A remote 5-tuple is tied to a session by
the first *authenticated* Binding request from it: its USERNAME is
``<our ufrag>:<peer ufrag>`` (RFC 8445 §7.2.2), our ufrag names the session,
and MESSAGE-INTEGRITY keyed with that session's ``ice-pwd`` proves the
sender knows the session's SDP.  From then on every datagram from that
address -- DTLS, SRTP, SRTCP or STUN (RFC 7983) -- finds its session with one
dict lookup::

    datagram from addr
         |
         v
    classify (realtime.demux) ---- not STUN ---> session_for_address(addr)
         |                                         one dict lookup -> session | drop
         | STUN
         v
    route_stun(data, addr, now)
         |  decode; USERNAME "ufrag:peer" -> session by ufrag
         |  (no USERNAME or unknown ufrag -> the session bound to addr, else drop;
         |   a cluster node drops an unknown ufrag for its directory lookup)
         v
    session.ice.receive_stun(...)  -- authenticates, returns the response
         |
         +-- addr now a valid pair of that agent?  bind addr -> session
         +-- addresses the agent dropped (eviction)? unbind them

Unauthenticated packets never create state here: a binding exists only for
an address the session's agent holds as a valid pair, so each session has at
most ``agent.max_pairs`` addresses.  The adapter calls :meth:`prune` after
the agent's timer fires (consent expiry, RFC 7675) and :meth:`unregister`
when the session closes.

Datagrams whose ufrag matches no session are dropped without an answer:
this port is not a public STUN server, and silence tells a scanner nothing.

A check whose ufrag is unknown but whose address is bound gets a 401 from
the bound session -- unless ``bound_answers_unknown`` is False, as on a
cluster node: there the ufrag may name a session another node made, so the
check is dropped here and goes to the directory lookup
(:mod:`realtime.cluster.jit`).  A client port that served an old session on
this node (a client that closed one PeerConnection and opened another on
the same port) must not hide its new session from the lookup.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, Protocol, TypeVar

from realtime.addresses import Address
from realtime.ice.lite import IceLiteAgent
from realtime.stun.attributes import Username
from realtime.stun.message import StunMessage

__all__ = ["IceSession", "Routed", "SessionDemultiplexer"]


class IceSession(Protocol):
    """What the demultiplexer needs of a session: its ICE agent, nothing else."""

    ice: IceLiteAgent


#: The kind of session a demultiplexer holds (anything with an ``ice`` agent).
S = TypeVar("S", bound=IceSession)


class Routed(NamedTuple, Generic[S]):
    """The result of :meth:`SessionDemultiplexer.route_stun`."""

    #: The session whose agent handled the message (None: dropped).
    session: S | None
    #: The datagram to send back to the source address at once, if any.
    response: bytes | None


_DROPPED = Routed(None, None)


class SessionDemultiplexer(Generic[S]):
    """Map remote addresses and local ufrags of one media port to sessions."""

    def __init__(self, bound_answers_unknown: bool = True) -> None:
        #: a check with an unknown ufrag from a bound address: 401 from that session (True),
        #: or dropped for the caller's own lookup (False, a cluster node)
        self.bound_answers_unknown = bound_answers_unknown
        self._by_address: dict[Address, S] = {}
        self._by_ufrag: dict[str, S] = {}
        self._ufrag_of: dict[S, str] = {}
        self._addresses_of: dict[S, set[Address]] = {}

    def __len__(self) -> int:
        """Return the number of bound addresses."""
        return len(self._by_address)

    def register(self, local_ufrag: str, session: S) -> None:
        """Route checks whose USERNAME starts with ``local_ufrag:`` to ``session``.

        Registering a session again (after an ICE restart) replaces its old
        ufrag and keeps its address bindings.

        :raises ValueError: if another session already holds ``local_ufrag``.
        """
        holder = self._by_ufrag.get(local_ufrag)
        if holder is not None and holder is not session:
            raise ValueError(f"ice-ufrag {local_ufrag!r} is already registered")
        old = self._ufrag_of.get(session)
        if old is not None:
            del self._by_ufrag[old]
        self._by_ufrag[local_ufrag] = session
        self._ufrag_of[session] = local_ufrag
        self._addresses_of.setdefault(session, set())

    def unregister(self, session: S) -> None:
        """Forget ``session``: its ufrag and every address bound to it."""
        ufrag = self._ufrag_of.pop(session, None)
        if ufrag is not None:
            del self._by_ufrag[ufrag]
        for addr in self._addresses_of.pop(session, ()):
            del self._by_address[addr]

    def session_for_address(self, addr: Address) -> S | None:
        """Return the session bound to ``addr`` (the per-packet hot path: one lookup)."""
        return self._by_address.get(addr)

    def session_for_ufrag(self, local_ufrag: str) -> S | None:
        """Return the session registered under ``local_ufrag``."""
        return self._by_ufrag.get(local_ufrag)

    def addresses_of(self, session: S) -> frozenset:
        """Return the addresses bound to ``session``."""
        return frozenset(self._addresses_of.get(session, ()))

    def route_stun(self, data: bytes, addr: Address, now: float) -> Routed[S]:
        """Let the right session's agent answer a STUN datagram; bind ``addr`` if it passed.

        :raises DecodeError: if ``data`` is not a well-formed STUN message.
        """
        message = StunMessage.decode(data)
        session: S | None = None
        for attribute in message.attributes:
            if type(attribute) is Username:
                session = self._by_ufrag.get(attribute.value.partition(":")[0])
                if session is None and not self.bound_answers_unknown:
                    return _DROPPED
                break
        if session is None:
            session = self._by_address.get(addr)
            if session is None:
                return _DROPPED
        agent = session.ice
        response = agent.receive_stun(data, addr, now, message)
        if agent.is_valid(addr) and self._by_address.get(addr) is not session:
            self._bind(addr, session)
        return Routed(session, response)

    def prune(self, session: S) -> list[Address]:
        """Unbind the addresses ``session``'s agent no longer holds; return them.

        Call after the agent's :meth:`~IceLiteAgent.handle_timer` (consent
        expiry) or on a :class:`~realtime.ice.lite.CandidatePairRemoved` event.
        """
        bound = self._addresses_of.get(session)
        if not bound:
            return []
        valid = session.ice.valid_addresses
        gone = [addr for addr in bound if addr not in valid]
        for addr in gone:
            self.unbind(addr)
        return gone

    def unbind(self, addr: Address) -> None:
        """Forget the binding of ``addr``, if any."""
        session = self._by_address.pop(addr, None)
        if session is not None:
            self._addresses_of[session].discard(addr)

    def _bind(self, addr: Address, session: S) -> None:
        """Bind ``addr`` to ``session`` (moving it from another one) and prune."""
        self.unbind(addr)
        self._by_address[addr] = session
        self._addresses_of.setdefault(session, set()).add(addr)
        self.prune(session)
