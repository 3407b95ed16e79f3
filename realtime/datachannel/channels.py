"""
WebRTC DataChannels on SCTP streams (RFC 8831): ids, messages and PPIDs.

A DataChannel is a pair of SCTP streams with the same id, one each way
(§6.4).  Its messages are SCTP user messages whose Payload Protocol
Identifier says how to read them (§6.6, §8)::

    PPID  meaning                    on the wire
    ----  -------------------------  ------------------------------
     50   WebRTC DCEP                DATA_CHANNEL_OPEN / ACK (RFC 8832)
     51   WebRTC String              UTF-8 text
     53   WebRTC Binary              bytes
     56   WebRTC String Empty        one 0x00 byte, meaning ""
     57   WebRTC Binary Empty        one 0x00 byte, meaning b""
     52, 54  deprecated partial binary/string (read like 53/51)

Empty messages get their own PPIDs because SCTP cannot carry a zero-length
user message.  Stream ids: the DTLS client uses even ids and the DTLS
server odd ones for in-band channels (RFC 8832 §6), so both sides can
open channels at the same time without clashing; negotiated channels take
whatever id the application agreed on.  Each channel moves through::

    connecting --(DCEP OPEN sent, or received and ACKed, or negotiated)--> open
    open --(our reset or the peer's)--> closing --(both directions reset)--> closed
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from realtime.datachannel.dcep import DataChannelOpen
from realtime.errors import DecodeError, LocalProtocolError

MAX_STREAM_ID = 65534
"""Highest usable stream id (65535 is reserved, RFC 8831 §6.5)."""


class Ppid(IntEnum):
    """SCTP Payload Protocol Identifiers of WebRTC (RFC 8831 §8)."""

    DCEP = 50
    STRING = 51
    BINARY_PARTIAL = 52  #: deprecated
    BINARY = 53
    STRING_PARTIAL = 54  #: deprecated
    STRING_EMPTY = 56
    BINARY_EMPTY = 57


def encode_message(data: bytes | str) -> tuple[int, bytes]:
    """Return ``(ppid, payload)`` for a user message (text as UTF-8)."""
    if isinstance(data, str):
        return (Ppid.STRING, data.encode()) if data else (Ppid.STRING_EMPTY, b"\0")
    return (Ppid.BINARY, bytes(data)) if data else (Ppid.BINARY_EMPTY, b"\0")


def decode_message(ppid: int, payload: bytes) -> bytes | str:
    """Return the user message carried with ``ppid``: ``str`` for text, ``bytes`` otherwise.

    :raises DecodeError: for a PPID that is not a WebRTC message, or text that
        is not UTF-8.
    """
    if ppid == Ppid.BINARY or ppid == Ppid.BINARY_PARTIAL:
        return payload
    if ppid == Ppid.STRING or ppid == Ppid.STRING_PARTIAL:
        try:
            return payload.decode()
        except UnicodeDecodeError:
            raise DecodeError("WebRTC String message is not UTF-8") from None
    if ppid == Ppid.STRING_EMPTY:
        return ""
    if ppid == Ppid.BINARY_EMPTY:
        return b""
    raise DecodeError(f"PPID {ppid} is not a WebRTC DataChannel message")


@dataclass(frozen=True, slots=True)
class DataChannel:
    """What a channel is: its stream id and the options it was opened with."""

    id: int
    label: str
    protocol: str = ""
    ordered: bool = True
    max_retransmits: int | None = None
    max_packet_life_time: int | None = None  #: milliseconds
    negotiated: bool = False
    priority: int = 0

    def open_message(self) -> DataChannelOpen:
        """Return the DATA_CHANNEL_OPEN announcing this channel."""
        return DataChannelOpen.for_channel(
            self.label, self.protocol, ordered=self.ordered, max_retransmits=self.max_retransmits,
            max_packet_life_time=self.max_packet_life_time, priority=self.priority)

    @classmethod
    def from_open(cls, stream_id: int, message: DataChannelOpen) -> "DataChannel":
        """Return the channel a received DATA_CHANNEL_OPEN describes."""
        return cls(stream_id, message.label, message.protocol, message.ordered,
                   message.max_retransmits, message.max_packet_life_time, False, message.priority)


class ChannelState:
    """Where one channel is in its life, and which directions are reset."""

    __slots__ = ("channel", "state", "acknowledged", "outgoing_reset", "incoming_reset")

    def __init__(self, channel: DataChannel, state: str = "connecting") -> None:
        self.channel = channel
        #: "connecting", "open", "closing" or "closed".
        self.state = state
        #: The peer's DATA_CHANNEL_ACK arrived (or none is expected).
        self.acknowledged = channel.negotiated
        self.outgoing_reset = False
        self.incoming_reset = False


class ChannelTable:
    """The DataChannels of one association, by stream id.

    :param dtls_client: True if we are the DTLS client (we then open even ids).
    :param limit: the most channels at once (bounds state per peer).
    """

    def __init__(self, dtls_client: bool, limit: int = 1024) -> None:
        self.parity = 0 if dtls_client else 1
        self.limit = limit
        self._channels: dict[int, ChannelState] = {}

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._channels

    def __len__(self) -> int:
        return len(self._channels)

    def get(self, stream_id: int) -> ChannelState | None:
        """Return the channel on ``stream_id``, or None."""
        return self._channels.get(stream_id)

    def states(self) -> list[ChannelState]:
        """Return every channel, in the order they were added."""
        return list(self._channels.values())

    def allocate(self) -> int:
        """Return the lowest free stream id of our parity.

        :raises LocalProtocolError: if every id is taken.
        """
        for stream_id in range(self.parity, MAX_STREAM_ID + 1, 2):
            if stream_id not in self._channels:
                return stream_id
        raise LocalProtocolError("no free DataChannel stream id")

    def add(self, channel: DataChannel, state: str = "connecting") -> ChannelState:
        """Register ``channel``.

        :raises LocalProtocolError: if its id is in use or out of range, or
            the table is full.
        """
        if not 0 <= channel.id <= MAX_STREAM_ID:
            raise LocalProtocolError(f"stream id {channel.id} is out of range")
        if channel.id in self._channels:
            raise LocalProtocolError(f"stream id {channel.id} is already in use")
        if len(self._channels) >= self.limit:
            raise LocalProtocolError("too many DataChannels")
        entry = self._channels[channel.id] = ChannelState(channel, state)
        return entry

    def remove(self, stream_id: int) -> None:
        """Forget the channel on ``stream_id`` (its id becomes free)."""
        self._channels.pop(stream_id, None)
