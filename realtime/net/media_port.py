"""
The media port: one UDP socket for every PeerConnection (and its STUN).

WebRTC bundles ICE connectivity checks (STUN, RFC 8445 §7), DTLS (RFC 6347)
and SRTP/SRTCP (RFC 3711) on one 5-tuple, and this SFU puts every
PeerConnection on one server port, so one socket receives everything.  This
adapter moves bytes and nothing else::

     socket ──datagramReceived(data, addr)──> MediaPort
                                                 │ kind = classify(data)   RFC 7983 §7
                                                 │ now  = reactor.seconds()
                                                 v
                                   router.route(kind, data, addr, now)
                                    │         │             │
                  replies <─────────┘    None │   DecodeError│ / bug
                     │                        v             v
     socket <──transport.write──┘    drops["unrouted-dtls"]  drops["malformed-stun"]
                                     (logged once per key)   drops["internal-error"]

Reads and writes are batched where the kernel allows it
(:mod:`realtime.net.mmsg`): a ``recvmmsg`` batch arrives as one
:meth:`MediaPort.datagramsReceived`, and while each datagram is delivered the
port is corked, so everything it causes -- replies and an SFU fan-out to N
subscribers alike -- leaves in order with one ``sendmmsg``.

It holds no protocol state: the router (see :mod:`realtime.net.router`) owns
the machines, and :class:`realtime.net.driver.MachineDriver` pumps a
machine's later output and timer.  Drops are counted in :attr:`drops` and
each key is logged once with :mod:`twisted.logger` fields, so a flood of
garbage neither fills the log nor stops the reactor.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Sequence

from twisted.internet.error import MessageLengthError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from realtime.addresses import Address
from realtime.demux import PacketKind, classify
from realtime.errors import DecodeError
from realtime.net.router import DatagramRouter, Outgoing

#: Drop-counter keys per packet kind, built once (the hot path only indexes).
UNROUTED = {kind: f"unrouted-{kind.name.lower().replace('_', '-')}" for kind in PacketKind}
MALFORMED = {kind: f"malformed-{kind.name.lower().replace('_', '-')}" for kind in PacketKind}


class MediaPort(DatagramProtocol):
    """Classify each datagram, hand it to the router and send back what it returns.

    :param router: the :class:`~realtime.net.router.DatagramRouter` to deliver to.
    :param reactor: the clock that stamps ``now`` (``task.Clock`` in tests).
    :param name: how log lines name this port (``"media"``, ``"turn"``).
    """

    log = Logger()

    def __init__(self, router: DatagramRouter, reactor: IReactorTime, name: str = "media") -> None:
        self.router = router
        self.reactor = reactor
        self.name = name
        #: dropped datagrams per reason, e.g. ``drops["malformed-stun"]``
        self.drops: Counter[str] = Counter()
        self._logged: set[str] = set()
        #: datagrams queued while a received batch is delivered (see :meth:`datagramsReceived`)
        self._pending: list | None = None

    @property
    def port(self) -> int | None:
        """Return the bound UDP port number, or ``None`` before listening."""
        return None if self.transport is None else self.transport.getHost().port

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        """Deliver one datagram to the router and write its replies (and any fan-out) at once."""
        self.datagramsReceived(((data, addr),))

    def datagramsReceived(self, batch: Sequence[tuple[bytes, Address]]) -> None:
        """Deliver a batch read by one ``recvmmsg``; what each datagram causes leaves in one ``sendmmsg``.

        While a datagram is delivered the port is *corked*: :meth:`send`
        (what the session drivers call, so an SFU fan-out to N subscribers
        too) queues instead of writing, and the queue goes out in order as
        one :meth:`send_many` before the next datagram is routed -- a fan-out
        is one system call, and no subscriber waits for the rest of the batch.
        ``now`` is read once per batch.
        """
        now = self.reactor.seconds()
        route = self._route
        outer = self._pending
        try:
            for data, addr in batch:
                out: list = []
                self._pending = out
                replies = route(data, addr, now)
                if replies:
                    out += replies
                if out:
                    if outer is not None:
                        outer += out
                    else:
                        self._pending = None
                        self.send_many(out)
        finally:
            self._pending = outer

    def _route(self, data: bytes, addr: Address, now: float) -> Outgoing | None:
        kind = classify(data)
        try:
            replies = self.router.route(kind, data, addr, now)
        except DecodeError as error:
            self.drop(MALFORMED[kind], addr, str(error))
            return None
        except Exception:
            self.drops["internal-error"] += 1
            self.log.failure("{port} port: router failed on a {kind} datagram from {addr}",
                             port=self.name, kind=kind.name, addr=addr)
            return None
        if replies is None:
            self.drop(UNROUTED[kind], addr, "no session for this packet")
        return replies

    def send(self, data: bytes, addr: Address) -> None:
        """Send one datagram (queued while corked); a socket error is counted, never raised."""
        pending = self._pending
        if pending is not None:
            pending.append((data, addr))
            return
        transport = self.transport
        if transport is None:
            self.drop("not-listening", addr, "the port is not listening")
            return
        try:
            transport.write(data, addr)
        except (OSError, MessageLengthError) as error:
            self.drop("send-error", addr, str(error))

    def send_list(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Send ``[(bytes, address), ...]`` as :meth:`send` sends each: queued while corked.

        The SFU fan-out hands each subscriber connection's queue over whole.
        """
        pending = self._pending
        if pending is not None:
            pending += datagrams
        elif len(datagrams) == 1:
            self.send(*datagrams[0])
        else:
            self.send_many(datagrams)

    def send_many(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Write ``[(bytes, address), ...]`` in order: one ``sendmmsg`` on a batched port.

        Failures are counted as ``send-error`` drops, as :meth:`send` does.
        """
        transport = self.transport
        if transport is None:
            for _, addr in datagrams:
                self.drop("not-listening", addr, "the port is not listening")
            return
        write_many = getattr(transport, "write_many", None)
        if write_many is not None and len(datagrams) > 1:
            for addr, number in write_many(datagrams):
                self.drop("send-error", addr, os.strerror(number))
            return
        for data, addr in datagrams:
            try:
                transport.write(data, addr)
            except (OSError, MessageLengthError) as error:
                self.drop("send-error", addr, str(error))

    def drop(self, reason: str, addr: Address, detail: str) -> None:
        """Count a dropped datagram under ``reason``; log the first one of each reason."""
        self.drops[reason] += 1
        if reason not in self._logged:
            self._logged.add(reason)
            self.log.warn(
                "{port} port: dropped a datagram from {addr} ({reason}: {detail});"
                " further {reason} drops are only counted",
                port=self.name, addr=addr, reason=reason, detail=detail,
            )
