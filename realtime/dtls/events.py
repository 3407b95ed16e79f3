"""
Events a DTLS endpoint reports (past tense, docs/design.md §1).

:class:`~realtime.dtls.endpoint.DtlsEndpoint` queues these; its owner
(:class:`~realtime.peer.connection.PeerConnection`) drains them with
``next_event()``: keys for SRTP on :class:`HandshakeCompleted`, SCTP packets
in :class:`ApplicationDataReceived`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DtlsEvent:
    """Base class of everything :meth:`DtlsEndpoint.next_event` returns."""


@dataclass(frozen=True, slots=True)
class HandshakeCompleted(DtlsEvent):
    """The peer is authenticated and SRTP keys are agreed.

    :ivar srtp_profile: the selected RFC 5764 profile name, "" if none.
    :ivar local_keying: ``(master_key, master_salt)`` we protect with.
    :ivar remote_keying: ``(master_key, master_salt)`` the peer protects with.
    :ivar peer_fingerprint: sha-256 fingerprint of the peer certificate.
    """

    srtp_profile: str
    local_keying: tuple[bytes, bytes]
    remote_keying: tuple[bytes, bytes]
    peer_fingerprint: str


@dataclass(frozen=True, slots=True)
class ApplicationDataReceived(DtlsEvent):
    """The peer sent application data (an SCTP packet in WebRTC)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class HandshakeFailed(DtlsEvent):
    """The handshake ended without a connection; ``reason`` says why."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed(DtlsEvent):
    """The peer closed the connection (close_notify or fatal alert)."""


#: Every event a DTLS endpoint reports.
Event = HandshakeCompleted | ApplicationDataReceived | HandshakeFailed | ConnectionClosed
