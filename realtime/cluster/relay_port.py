"""
The Twisted adapter of the relay link: one UDP port, one :class:`~realtime.cluster.relay.RelayLink`.

It holds no protocol state (DESIGN.md §1): a received datagram goes into
``link.receive_datagram``, every :class:`~realtime.cluster.relay.RelayPacketReceived`
that comes out goes to ``on_packet``, and ``send`` writes what
``link.datagrams_to_send`` returns.  Drops are counted by the machine, never
logged per packet.  ``twistd realtime --cluster`` binds it (``realtime.cluster.node``).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.protocol import DatagramProtocol

from realtime.cluster.relay import (LINK_KINDS, Address, RelayKind, RelayLink,
                                    RelayPacketReceived)


class RelayPort(DatagramProtocol):
    """Carry relay frames between this node's UDP port and ``link``.

    :param on_packet: called with every authenticated packet from a member.
    :param on_link: called instead for the link's own kinds (``PING``, ``PONG``:
        :data:`~realtime.cluster.relay.LINK_KINDS` and up); default ``on_packet``.
    """

    def __init__(self, link: RelayLink, reactor,
                 on_packet: Callable[[RelayPacketReceived], None],
                 on_link: Callable[[RelayPacketReceived], None] | None = None) -> None:
        self.link = link
        self.reactor = reactor
        self.on_packet = on_packet
        self.on_link = on_link or on_packet

    def send(self, kind: RelayKind, stream_id: int, payload: bytes,
             destinations: list[Address]) -> None:
        """Seal ``payload`` once and send it to each node address in ``destinations``."""
        self.link.send(kind, stream_id, payload, destinations)
        transport: Any = self.transport   # Twisted's IUDPTransport stubs lack ``self``
        write = transport.write
        for frame, address in self.link.datagrams_to_send(self.reactor.seconds()):
            write(frame, address)

    def datagramReceived(self, data: bytes, addr: Address) -> None:  # noqa: N802 (Twisted)
        link = self.link
        link.receive_datagram(data, addr, self.reactor.seconds())
        while (event := link.next_event()) is not None:
            if event.kind < LINK_KINDS:
                self.on_packet(event)
            else:
                self.on_link(event)
