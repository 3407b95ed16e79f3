"""
Events of one PeerConnection and of its DataChannels (past tense, docs/design.md §1).

:class:`~realtime.peer.connection.PeerConnection` reports :class:`Connected`,
:class:`Disconnected` and :class:`ApplicationData` (an SCTP packet out of
DTLS); :class:`~realtime.peer.sctp_transport.SctpTransport` turns those SCTP
packets into the DataChannel events :class:`ChannelOpened`,
:class:`MessageReceived`, :class:`ChannelClosed` and :class:`TransportClosed`.
Both derive from :class:`PeerEvent`.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.addresses import Address
from realtime.datachannel.channels import DataChannel


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """Base class of the events of this package's machines."""


@dataclass(frozen=True, slots=True)
class Connected(PeerEvent):
    """ICE has a selected pair and DTLS-SRTP keys are in place."""

    address: Address
    srtp_profile: str


@dataclass(frozen=True, slots=True)
class Disconnected(PeerEvent):
    """The connection failed or lost consent; ``reason`` says which."""

    reason: str


@dataclass(frozen=True, slots=True)
class ApplicationData(PeerEvent):
    """DTLS application data arrived: an SCTP packet (RFC 8261)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ChannelOpened(PeerEvent):
    """A channel is usable: we opened it, the peer opened it, or it was negotiated."""

    channel: DataChannel


@dataclass(frozen=True, slots=True)
class MessageReceived(PeerEvent):
    """A message arrived on ``channel_id``: ``str`` for text, ``bytes`` for binary."""

    channel_id: int
    data: bytes | str
    ppid: int

    @property
    def is_binary(self) -> bool:
        """True for binary messages (PPID 53, 57 or the deprecated 52)."""
        return isinstance(self.data, bytes)


@dataclass(frozen=True, slots=True)
class ChannelClosed(PeerEvent):
    """The channel's streams are reset both ways; its id may be reused."""

    channel_id: int


@dataclass(frozen=True, slots=True)
class TransportClosed(PeerEvent):
    """The SCTP association ended (ABORT, SHUTDOWN or timeouts); ``reason`` says how."""

    reason: str


#: What :meth:`SctpTransport.next_event` returns.
DataChannelEvent = ChannelOpened | MessageReceived | ChannelClosed | TransportClosed

#: What :meth:`PeerConnection.next_event` returns: its own events, and those of
#: the SCTP transport it carries (passed on by ``flush_sctp``).
ConnectionEvent = Connected | Disconnected | ApplicationData | DataChannelEvent
