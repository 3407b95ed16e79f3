"""
DataChannels over one PeerConnection: SCTP association + DCEP, sans I/O.

RFC 8831 stacks the pieces like this; this module is the box in the middle
that turns SCTP messages into channel events and channel calls into SCTP
sends::

        open_channel / send / close_channel        next_event()
                   |                                   ^  ChannelOpened,
                   v                                   |  MessageReceived, ChannelClosed
        +---------------------------------------------------------+
        |  SctpTransport: ChannelTable + DCEP (RFC 8832) + PPIDs  |
        +---------------------------------------------------------+
        |  Association (RFC 9260, 3758, 6525)                     |
        +---------------------------------------------------------+
            ^ receive_packet(data, now)      | packets_to_send(now)
            | (PeerConnection ApplicationData)  v (connection.send_application_data)
                          DTLS (RFC 8261)

Opening: in-band channels send DATA_CHANNEL_OPEN and are usable at once;
until the peer's DATA_CHANNEL_ACK (or any data) arrives, their messages go
ordered so none overtakes the OPEN (RFC 8832 §6).  Negotiated channels open
as soon as the association is up.  Closing resets the stream both ways
(RFC 8831 §6.7): our reset of the outgoing stream, and the peer's of its
own; a channel is closed when both are done.

Both sides send INIT when started (browsers do too); the association
resolves the collision (RFC 9260 §5.2.1).
"""

from __future__ import annotations

import os
from collections import Counter, deque
from typing import Callable

from realtime.datachannel.channels import (
    ChannelState, ChannelTable, DataChannel, Ppid, decode_message, encode_message,
)
from realtime.datachannel.dcep import DataChannelAck, decode_dcep
from realtime.errors import DecodeError, LocalProtocolError
from realtime.sctp.association import Association, AssociationConfig
from realtime.sctp.events import (
    AssociationAborted, AssociationClosed, AssociationEstablished, AssociationRestarted,
    DataReceived, OutgoingStreamsReset, StreamsReset,
)
from realtime.peer.events import (
    ChannelClosed, ChannelOpened, DataChannelEvent, MessageReceived, TransportClosed,
)

DEFAULT_REMOTE_MAX_MESSAGE_SIZE = 65536
"""What to assume when the peer's SDP has no a=max-message-size (RFC 8841 §6.1)."""


class SctpTransport:
    """The DataChannels of one PeerConnection, without I/O.

    :param dtls_role: ``"client"`` or ``"server"``: picks even or odd stream ids.
    :param config: SCTP tunables (ports, MTU, windows, max-message-size we accept).
    :param remote_max_message_size: the peer's a=max-message-size (0 means no limit).
    :param secret: State Cookie HMAC key; ``random`` supplies tags, TSNs, nonces.
    """

    def __init__(self, dtls_role: str, *, config: AssociationConfig | None = None,
                 remote_max_message_size: int = DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
                 secret: bytes | None = None,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.association = Association(config or AssociationConfig(), secret=secret,
                                       random=random)
        self.channels = ChannelTable(dtls_client=dtls_role == "client")
        self.remote_max_message_size = remote_max_message_size
        #: Messages and DCEP packets dropped, by reason.
        self.drops: Counter[str] = Counter()
        self._events: deque[DataChannelEvent] = deque()
        self._now = 0.0

    @property
    def connected(self) -> bool:
        """True while the association is established."""
        return self.association.state == "established"

    # -- the machine interface ---------------------------------------------

    def start(self, now: float) -> None:
        """Send INIT (call when DTLS is connected); harmless if already started."""
        self._now = now
        if self.association.state == "closed":
            self.association.connect(now)

    def receive_packet(self, data: bytes, now: float) -> None:
        """Handle one SCTP packet from DTLS application data."""
        self._now = now
        self.association.receive_packet(data, now)
        self._drain()

    def handle_timer(self, now: float) -> None:
        """Run the association's due timers."""
        self._now = now
        self.association.handle_timer(now)
        self._drain()

    def get_timer(self) -> float | None:
        """Return the association's next deadline, or None."""
        return self.association.get_timer()

    def packets_to_send(self, now: float) -> list[bytes]:
        """Return the SCTP packets to send as DTLS application data."""
        self._now = now
        return self.association.packets_to_send(now)

    def next_event(self) -> DataChannelEvent | None:
        """Return the oldest pending channel event, or None."""
        return self._events.popleft() if self._events else None

    # -- channel commands --------------------------------------------------

    def open_channel(self, label: str, id: int | None = None, negotiated: bool = False,
                     ordered: bool = True, max_retransmits: int | None = None,
                     max_packet_life_time: int | None = None, protocol: str = "",
                     priority: int = 0) -> DataChannel:
        """Create a channel and return it; :class:`ChannelOpened` follows when usable.

        :raises LocalProtocolError: for a negotiated channel without ``id``, an
            id in use, or both reliability limits.
        """
        if negotiated and id is None:
            raise LocalProtocolError("a negotiated channel needs an id")
        if max_retransmits is not None and max_packet_life_time is not None:
            raise LocalProtocolError("maxRetransmits and maxPacketLifeTime are exclusive")
        channel = DataChannel(self.channels.allocate() if id is None else id, label, protocol,
                              ordered, max_retransmits, max_packet_life_time, negotiated, priority)
        entry = self.channels.add(channel)
        if self.connected:
            self._announce(entry)
        return channel

    def send(self, channel_id: int, data: bytes | str, now: float | None = None) -> None:
        """Send a message on an open channel (``now`` defaults to the last input's time).

        :raises LocalProtocolError: if the channel is not open or the message
            exceeds the peer's max-message-size.
        """
        entry = self.channels.get(channel_id)
        if entry is None or entry.state != "open" or not self.connected:
            raise LocalProtocolError(f"DataChannel {channel_id} is not open")
        ppid, payload = encode_message(data)
        limit = self.remote_max_message_size
        if limit and len(payload) > limit:
            raise LocalProtocolError(f"message of {len(payload)} bytes exceeds the peer's "
                                     f"max-message-size {limit}")
        channel = entry.channel
        lifetime = channel.max_packet_life_time
        self.association.send(
            channel_id, ppid, payload, self._now if now is None else now,
            ordered=channel.ordered or not entry.acknowledged,
            max_retransmits=channel.max_retransmits,
            lifetime=None if lifetime is None else lifetime / 1000)

    def close_channel(self, channel_id: int) -> None:
        """Close a channel by resetting its outgoing stream (RFC 8831 §6.7)."""
        entry = self.channels.get(channel_id)
        if entry is None or entry.state in ("closing", "closed"):
            return
        if not self.connected:
            self._finish_close(entry)
            return
        entry.state = "closing"
        self.association.reset_streams([channel_id])

    def shutdown(self, now: float) -> None:
        """Close the association gracefully (SHUTDOWN)."""
        self._now = now
        self.association.shutdown(now)

    @property
    def buffered_amount(self) -> int:
        """Bytes of user data queued and not yet acknowledged by the peer."""
        transfer = self.association.transfer
        return transfer.transmitter.buffered_amount if transfer is not None else 0

    # -- association events ------------------------------------------------

    def _drain(self) -> None:
        association = self.association
        while (event := association.next_event()) is not None:
            match event:  # the association's events are final classes: no subclass matches
                case DataReceived():
                    self._data(event)
                case AssociationEstablished():
                    for entry in self.channels.states():
                        if entry.state == "connecting":
                            self._announce(entry)
                case StreamsReset(stream_ids=stream_ids):
                    for entry in self._entries(stream_ids):
                        entry.incoming_reset = True
                        if entry.state == "open":
                            entry.state = "closing"
                            association.reset_streams([entry.channel.id])
                        self._maybe_closed(entry)
                case OutgoingStreamsReset(stream_ids=stream_ids):
                    for entry in self._entries(stream_ids):
                        entry.outgoing_reset = True
                        self._maybe_closed(entry)
                case AssociationRestarted():
                    for entry in self.channels.states():  # the peer forgot its channels
                        self._finish_close(entry)
                case AssociationAborted() | AssociationClosed():
                    for entry in self.channels.states():
                        self._finish_close(entry)
                    reason = event.reason if isinstance(event, AssociationAborted) \
                        else "shutdown"
                    self._events.append(TransportClosed(reason))

    def _entries(self, stream_ids: tuple[int, ...]) -> list[ChannelState]:
        if not stream_ids:
            return self.channels.states()
        return [e for e in map(self.channels.get, stream_ids) if e is not None]

    def _data(self, event: DataReceived) -> None:
        entry = self.channels.get(event.stream_id)
        if event.ppid == Ppid.DCEP:
            self._dcep(event.stream_id, event.data, entry)
            return
        if entry is None or entry.state not in ("open", "closing"):
            self.drops["message-without-channel"] += 1
            return
        entry.acknowledged = True  # any data implies the peer saw our OPEN (RFC 8832 §6)
        try:
            message = decode_message(event.ppid, event.data)
        except DecodeError:
            self.drops["message"] += 1
            return
        self._events.append(MessageReceived(event.stream_id, message, event.ppid))

    def _dcep(self, stream_id: int, data: bytes, entry: ChannelState | None) -> None:
        try:
            message = decode_dcep(data)
        except DecodeError:
            self.drops["dcep"] += 1
            return
        if isinstance(message, DataChannelAck):
            if entry is not None:
                entry.acknowledged = True
            return
        if entry is not None:
            self.drops["dcep-open-on-used-stream"] += 1
            return
        channel = DataChannel.from_open(stream_id, message)
        try:
            entry = self.channels.add(channel, "open")
        except LocalProtocolError:
            self.drops["dcep-open-refused"] += 1
            return
        entry.acknowledged = True
        self.association.send(stream_id, Ppid.DCEP, DataChannelAck().encode(), self._now)
        self._events.append(ChannelOpened(channel))

    def _announce(self, entry: ChannelState) -> None:
        """Open a connecting channel now that the association is up."""
        channel = entry.channel
        if not channel.negotiated:
            self.association.send(channel.id, Ppid.DCEP, channel.open_message().encode(),
                                  self._now)
        entry.state = "open"
        self._events.append(ChannelOpened(channel))

    def _maybe_closed(self, entry: ChannelState) -> None:
        if entry.incoming_reset and entry.outgoing_reset:
            self._finish_close(entry)

    def _finish_close(self, entry: ChannelState) -> None:
        if entry.state == "closed":
            return
        entry.state = "closed"
        self.channels.remove(entry.channel.id)
        self._events.append(ChannelClosed(entry.channel.id))


__all__ = [
    "ChannelClosed", "ChannelOpened", "DataChannel", "DataChannelEvent", "MessageReceived",
    "SctpTransport", "TransportClosed",
]
