"""
Events the TURN server reports (past tense, docs/design.md §1).

:class:`~realtime.turn.server.TurnServer` queues these; its adapter
(:class:`~realtime.net.turn_port.TurnHost`) drains them with ``next_event()``
and logs them.  Usage is not an event: it is drained in bulk
(``drain_usage``) for the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.addresses import Address
from realtime.turn.allocation import Route


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """Base class of everything :meth:`TurnServer.next_event` returns."""


@dataclass(frozen=True, slots=True)
class AllocationCreated(TurnEvent):
    """An allocation was created for ``client`` at ``relay``."""

    client: Route
    relay: Address
    username: str
    lifetime: float


@dataclass(frozen=True, slots=True)
class AllocationDeleted(TurnEvent):
    """An allocation was deleted; ``reason`` is refresh, expired, credential or closed."""

    client: Route
    relay: Address
    username: str
    reason: str
