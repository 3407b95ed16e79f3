"""
Events an ICE-lite agent reports (past tense, docs/design.md §1).

:class:`~realtime.ice.lite.IceLiteAgent` queues these as checks arrive and
consent lapses (RFC 8445 §7.3, RFC 7675); the PeerConnection follows the
selected pair from them, and the port's demultiplexer unbinds addresses on
:class:`CandidatePairRemoved`.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.addresses import Address


@dataclass(frozen=True, slots=True)
class IceEvent:
    """Base class of everything :meth:`IceLiteAgent.next_event` returns."""


@dataclass(frozen=True, slots=True)
class CandidatePairValidated(IceEvent):
    """An address passed its first authenticated check: a valid pair (RFC 8445 §7.3.1.3)."""

    addr: Address


@dataclass(frozen=True, slots=True)
class CandidatePairNominated(IceEvent):
    """The peer nominated the pair to ``addr`` (USE-CANDIDATE, or a DTLS record)."""

    addr: Address


@dataclass(frozen=True, slots=True)
class SelectedPairChanged(IceEvent):
    """Media now goes to ``addr``; None means there is no selected pair any more."""

    addr: Address | None


@dataclass(frozen=True, slots=True)
class CandidatePairRemoved(IceEvent):
    """The pair to ``addr`` is gone (consent expired or evicted): stop accepting from it."""

    addr: Address


@dataclass(frozen=True, slots=True)
class ConsentExpired(IceEvent):
    """Consent on the selected pair lapsed (RFC 7675 §5.1): stop sending to ``addr``."""

    addr: Address | None = None
