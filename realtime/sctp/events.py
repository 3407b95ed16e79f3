"""
Events an SCTP association reports (past tense, docs/design.md §1).

:class:`~realtime.sctp.association.Association` queues these; the caller
drains them with ``next_event()``.  The DataChannel layer
(:mod:`realtime.peer.sctp_transport`) turns :class:`DataReceived` into DCEP
handling or channel messages and :class:`StreamsReset` into channel closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class AssociationEvent:
    """Base class of everything :meth:`Association.next_event` returns."""


@dataclass(frozen=True, slots=True)
class AssociationEstablished(AssociationEvent):
    """The handshake finished (COOKIE ECHO accepted or COOKIE ACK received)."""


@dataclass(frozen=True, slots=True)
class AssociationRestarted(AssociationEvent):
    """The peer restarted (RFC 9260 §5.2.4 case A): streams and TSNs start over."""


@dataclass(frozen=True, slots=True)
class AssociationAborted(AssociationEvent):
    """The association ended abruptly: ABORT either way, or too many timeouts."""

    reason: str


@dataclass(frozen=True, slots=True)
class AssociationClosed(AssociationEvent):
    """The SHUTDOWN sequence completed (RFC 9260 §9.2)."""


@dataclass(frozen=True, slots=True)
class DataReceived(AssociationEvent):
    """A complete user message arrived on ``stream_id`` with payload protocol ``ppid``."""

    stream_id: int
    ppid: int
    data: bytes
    unordered: bool = False


@dataclass(frozen=True, slots=True)
class StreamsReset(AssociationEvent):
    """The peer reset its outgoing ``stream_ids`` (our incoming ones, RFC 6525)."""

    stream_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class OutgoingStreamsReset(AssociationEvent):
    """The peer confirmed the reset of our outgoing ``stream_ids``."""

    stream_ids: tuple[int, ...]


Event = Union[AssociationEstablished, AssociationRestarted, AssociationAborted,
              AssociationClosed, DataReceived, StreamsReset, OutgoingStreamsReset]
