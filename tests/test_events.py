"""
Every machine package reports events from one ``events.py``, under one base class
(docs/design.md §1): frozen dataclasses with past-tense names.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

BASES = {
    "realtime.dtls.events": "DtlsEvent",
    "realtime.ice.events": "IceEvent",
    "realtime.peer.events": "PeerEvent",
    "realtime.sctp.events": "AssociationEvent",
    "realtime.turn.events": "TurnEvent",
}


@pytest.mark.parametrize("module_name", sorted(BASES))
def test_events_derive_from_the_package_base_and_are_frozen(module_name: str) -> None:
    module = importlib.import_module(module_name)
    base = getattr(module, BASES[module_name])
    events = [cls for _, cls in inspect.getmembers(module, inspect.isclass)
              if cls.__module__ == module_name and cls is not base]
    assert events, f"{module_name} declares no events"
    for cls in events:
        assert issubclass(cls, base), f"{cls.__name__} does not derive from {base.__name__}"
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
        assert hasattr(cls, "__slots__")


def test_machines_queue_their_events_in_deques() -> None:
    """Event queues are deques: popleft is O(1) where list.pop(0) is O(n)."""
    import collections

    from realtime.ice.lite import IceLiteAgent
    from realtime.sctp.association import Association
    from realtime.turn.allocation import RelayPortPool
    from realtime.turn.credentials import StaticUsers
    from realtime.turn.server import TurnServer

    machines = [
        IceLiteAgent("ufrag", "p" * 22, tiebreaker=1),
        Association(),
        TurnServer(StaticUsers({}), RelayPortPool({1: "127.0.0.1"}, 50000, 50001)),
    ]
    for machine in machines:
        assert type(machine._events) is collections.deque, type(machine).__name__
