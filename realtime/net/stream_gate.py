"""
Admission of TURN stream connections (TCP and TLS): deadlines, caps and shedding.

TURN over TCP and TLS (RFC 8656 §3.1) is the fallback of the users who need
a relay most, and a connection costs its server a socket and a slot before
the client has proved anything.  Without bounds, 4,096 idle connections
opened in 1.4 s (TLS: 2.4 s) from one host filled the listener and every
legitimate client was refused (issue 10 item 1).  RFC 8656 §21.2.1 leaves
the defence to the server; the bounds here are the usual ones (coturn and
eturnal bound the same things)::

    accept ──> per-address cap full? ── shed that address's oldest unauthenticated
       │                                 connection, or refuse if it has none
       ├─> global cap full? ─────────── shed the oldest unauthenticated connection
       │                                 of any address, or refuse if there is none
       v
    TLS handshake done within handshake_timeout (TLS only) ──── else closed
       v
    an authenticated Allocate succeeded within auth_timeout ──── else closed
       v   (from here on the connection cannot be shed)
    idle: nothing received for idle_timeout and no allocation ── closed

A flood of idle connections therefore holds slots for at most
``auth_timeout`` seconds each, and while it lasts every new connection
pushes out the oldest one that has not authenticated: a legitimate client,
which authenticates within a few round trips, keeps its slot unless the
flood opens more than ``max_connections`` connections in that time.

:class:`ConnectionGate` is the bookkeeping alone (no sockets, no clock): the
Twisted connections in :mod:`realtime.net.turn_port` call :meth:`admit`,
:meth:`authenticated` and :meth:`release`, and the gate calls ``shed()`` on
the connection it evicts.  One gate is shared by every TCP and TLS listener,
so the caps are global.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The bounds on TURN stream connections, each a ``twistd realtime`` option.

    :ivar max_connections: TCP+TLS connections in all (``--turn-max-connections``).
    :ivar per_address: connections from one IP address (``--turn-connections-per-address``).
    :ivar handshake_timeout: seconds for the TLS handshake (``--turn-handshake-timeout``).
    :ivar auth_timeout: seconds from accept to a successful authenticated Allocate
        (``--turn-auth-timeout``).
    :ivar idle_timeout: seconds of silence after which a connection that holds no
        allocation is closed (``--turn-idle-timeout``).
    """

    max_connections: int = 1024
    per_address: int = 64
    handshake_timeout: float = 5.0
    auth_timeout: float = 10.0
    idle_timeout: float = 120.0


class Sheddable(Protocol):
    """What the gate needs of a connection: a way to close it at once."""

    def shed(self, reason: str) -> None:
        """Close the connection now (the gate has already forgotten it)."""


class ConnectionGate:
    """Count stream connections globally and per address; evict unauthenticated ones first.

    :param limits: the caps (timeouts are for the connections themselves).
    """

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        #: connections admitted and not released
        self.total = 0
        #: connections per source address
        self.per_address: Counter[str] = Counter()
        # connection -> address for the unauthenticated ones, oldest first (dicts keep order)
        self._pending: dict[Sheddable, str] = {}
        self._pending_by_address: dict[str, dict[Sheddable, None]] = {}
        self._known: dict[Sheddable, str] = {}

    def admit(self, connection: Sheddable, address: str) -> str | None:
        """Admit ``connection`` from ``address``; return ``None``, or why it is refused.

        Making room sheds the oldest unauthenticated connection of the same
        address (per-address cap) or of any address (global cap).
        """
        limits = self.limits
        if self.per_address[address] >= limits.per_address:
            victims = self._pending_by_address.get(address)
            if not victims:
                return "per-address-limit"
            self._shed(next(iter(victims)), "shed-per-address")
        if self.total >= limits.max_connections:
            if not self._pending:
                return "connection-limit"
            self._shed(next(iter(self._pending)), "shed-global")
        self.total += 1
        self.per_address[address] += 1
        self._known[connection] = address
        self._pending[connection] = address
        self._pending_by_address.setdefault(address, {})[connection] = None
        return None

    def authenticated(self, connection: Sheddable) -> None:
        """Mark ``connection`` as authenticated: it is never shed from now on."""
        address = self._pending.pop(connection, None)
        if address is not None:
            self._forget_pending(connection, address)

    def is_pending(self, connection: Sheddable) -> bool:
        """Return True if ``connection`` is admitted and not yet authenticated."""
        return connection in self._pending

    def release(self, connection: Sheddable) -> None:
        """Forget ``connection`` (closed); releasing twice is harmless."""
        address = self._known.pop(connection, None)
        if address is None:
            return
        self.total -= 1
        self.per_address[address] -= 1
        if self.per_address[address] <= 0:
            del self.per_address[address]
        if self._pending.pop(connection, None) is not None:
            self._forget_pending(connection, address)

    def _forget_pending(self, connection: Sheddable, address: str) -> None:
        victims = self._pending_by_address[address]
        del victims[connection]
        if not victims:
            del self._pending_by_address[address]

    def _shed(self, victim: Sheddable, reason: str) -> None:
        self.release(victim)
        victim.shed(reason)
