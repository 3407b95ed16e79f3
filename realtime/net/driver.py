"""
Driving a sans-I/O machine from the reactor: output pump and one timer.

Every protocol machine here (ICE-lite agent, DTLS endpoint, SCTP
association, TURN allocation ...) has the same surface (docs/design.md §1):
inputs ``receive_datagram(data, addr, now)`` and ``handle_timer(now)``,
outputs ``datagrams_to_send(now)`` and ``get_timer()`` (an absolute
deadline or ``None``).  :class:`MachineDriver` is the only glue a machine
needs, and it keeps **exactly one** :class:`IDelayedCall` per machine::

      input (datagram, API command)        reactor fires the one IDelayedCall
               │                                      │
               v                                      v
      machine.receive_datagram(...)          machine.handle_timer(now)
               └───────────────┬──────────────────────┘
                               v
                     driver.pump()  ── datagrams_to_send(now) ──> send(data, addr)
                               │
                               v
                     deadline = machine.get_timer()
                     None            -> cancel the call
                     same as armed   -> leave it
                     different       -> call.reset(...) or callLater(...)

Call :meth:`MachineDriver.pump` after every input you give the machine;
events (``next_event()``) stay with whoever owns the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from realtime.addresses import Address

#: Where a datagram goes: an :data:`~realtime.addresses.Address` for a PeerConnection,
#: a ``(socket key, address)`` route for the TURN server.
To = TypeVar("To")


class Machine(Protocol[To]):
    """The sans-I/O surface a :class:`MachineDriver` needs."""

    def handle_timer(self, now: float) -> Any:
        """Act on an expired deadline."""
        ...

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, To]]:
        """Return and forget the datagrams waiting to go out."""
        ...

    def get_timer(self) -> float | None:
        """Return the next absolute deadline, or ``None``."""
        ...


class MachineDriver(Generic[To]):
    """Send a machine's output and keep its single timer armed at ``get_timer()``.

    :param machine: the sans-I/O machine.
    :param send: ``send(data, addr)``, e.g. :meth:`MediaPort.send`.
    :param reactor: the clock (``task.Clock`` in tests).
    """

    __slots__ = ("machine", "send", "reactor", "_call", "_deadline")

    def __init__(
        self, machine: Machine[To], send: Callable[[bytes, To], None], reactor: IReactorTime
    ) -> None:
        self.machine = machine
        self.send = send
        self.reactor = reactor
        self._call: IDelayedCall | None = None
        self._deadline: float | None = None

    @property
    def deadline(self) -> float | None:
        """Return the deadline the timer is armed for, or ``None``."""
        return self._deadline

    def pump(self) -> None:
        """Send everything the machine has queued, then re-arm its timer."""
        now = self.reactor.seconds()
        for data, addr in self.machine.datagrams_to_send(now):
            self.send(data, addr)
        self._arm(self.machine.get_timer(), now)

    def send_queued(self) -> None:
        """Send everything the machine has queued; leave the timer as it is.

        For output the machine did not cause itself (an SFU fan-out queued on
        it by another session's input): the caller re-arms later, with
        :meth:`rearm` (see ``PeerHost`` and ``REARM_DELAY`` in
        :mod:`realtime.net.peers`).
        """
        now = self.reactor.seconds()
        send = self.send
        for data, addr in self.machine.datagrams_to_send(now):
            send(data, addr)

    def rearm(self) -> None:
        """Arm the timer at the machine's deadline now (after :meth:`send_queued`)."""
        self._arm(self.machine.get_timer(), self.reactor.seconds())

    def stop(self) -> None:
        """Cancel the timer (the machine is closed or forgotten)."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._deadline = None

    def _arm(self, deadline: float | None, now: float) -> None:
        if deadline == self._deadline and (deadline is None or self._call is not None):
            return
        if deadline is None:
            self.stop()
            return
        delay = max(0.0, deadline - now)
        if self._call is not None and self._call.active():
            self._call.reset(delay)
        else:
            self._call = self.reactor.callLater(delay, self._fire)
        self._deadline = deadline

    def _fire(self) -> None:
        self._call = None
        self._deadline = None
        self.machine.handle_timer(self.reactor.seconds())
        self.pump()
