"""
The states of an SCTP association (RFC 9260 §4), as :class:`AssociationState`.

The state diagram is drawn in :mod:`realtime.sctp.association`.  The members
are strings (a :class:`~enum.StrEnum`), so they print and compare as the
lower-case names used in logs and in the DataChannel layer.
"""

from __future__ import annotations

from enum import StrEnum


class AssociationState(StrEnum):
    """Where an association is in its life (RFC 9260 §4)."""

    #: no association: INITs are answered statelessly (§5.1.3)
    CLOSED = "closed"
    #: our INIT is out, waiting for INIT ACK (T1-init runs)
    COOKIE_WAIT = "cookie-wait"
    #: our COOKIE ECHO is out, waiting for COOKIE ACK (T1-init runs)
    COOKIE_ECHOED = "cookie-echoed"
    #: data flows both ways
    ESTABLISHED = "established"
    #: shutdown() called; our queued data drains before SHUTDOWN (§9.2)
    SHUTDOWN_PENDING = "shutdown-pending"
    #: SHUTDOWN sent, waiting for SHUTDOWN ACK (T2-shutdown runs)
    SHUTDOWN_SENT = "shutdown-sent"
    #: the peer sent SHUTDOWN; our queued data drains before SHUTDOWN ACK
    SHUTDOWN_RECEIVED = "shutdown-received"
    #: SHUTDOWN ACK sent, waiting for SHUTDOWN COMPLETE (T2-shutdown runs)
    SHUTDOWN_ACK_SENT = "shutdown-ack-sent"
