"""
The Twisted side of the media port's PeerConnections.

:class:`PeerHost` owns what the sans-I/O machines cannot: the socket they
share, one :class:`~realtime.net.driver.MachineDriver` (hence one
``IDelayedCall``) per connection, Deferreds for "wait until connected", and
the reaping of sessions that never connect or lose their peer::

     MediaPort ──route()──> PeerRouter ──> connection.receive_datagram()
         ^                        │
         │                        └─ after_input(session) ─> PeerHost._after_input
         │                                                    │ driver.pump(): send + re-arm timer
         └──────────── send(data, addr) <─────────────────────┘ drain events: Connected,
                                                                Disconnected, ApplicationData

A *session* here is anything that provides :class:`HostedSession`: an
``ice`` agent, a ``connection``, a ``session_id``, ``handle_event(event, now)``
to see the connection's events, ``get_timer()`` / ``handle_timer(now)`` for
deadlines of its own (folded into the connection's one timer), and
``take_touched()`` returning other sessions whose connections it queued
datagrams on (the SFU fan-out), which are then sent.  Today that is
:class:`~realtime.sfu.session.SfuSession` and
:class:`~realtime.peer.echo.EchoSession`.

Fan-out output leaves at once, but the timers of the sessions it touched are
re-armed together, once per :data:`REARM_DELAY`, not after every packet::

    publisher packet ─> _drain(publisher): pump (send + re-arm its own timer)
                        for each touched subscriber: send_queued  (no re-arm)
                                                     mark stale ──┐
    REARM_DELAY later (one delayed call for all) ─> rearm() each <┘

A subscriber's pacer (realtime/sfu/pacer.py) sits in ``datagrams_to_send``:
video beyond its budget waits in the pacer, whose deadline folds into the
connection's timer like the session's; a fan-out that starts a queue has
that subscriber's timer armed at once (``_waking``), not REARM_DELAY later.

Re-arming costs a ``get_timer()`` of the connection (ICE, DTLS, SCTP) and of
the session (its RTCP legs); at 100 subscribers that was ~18 % of the
server's CPU per forwarded packet (docs/performance.md).  Forwarding RTP
moves no deadline, so nothing changes; what a fan-out does move (a
DataChannel message starting an SCTP retransmission timer) fires at most
``REARM_DELAY`` late, and a deadline that moved later fires early once,
harmlessly (the machine finds nothing due and the timer is re-armed).  Any
input *from* the session itself, or its own timer, re-arms at once as before.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from realtime.addresses import Address
from realtime.demux import PacketKind
from realtime.dtls.certificate import Certificate
from realtime.ice.demultiplexer import SessionDemultiplexer
from realtime.net.driver import MachineDriver
from realtime.ice.lite import IceLiteAgent
from realtime.peer.connection import PeerConnection
from realtime.peer.events import Connected, Disconnected, PeerEvent
from realtime.peer.router import Fallback, PeerRouter

log = Logger()

#: Seconds a session may stay unconnected before it is removed.
UNCONNECTED_TIMEOUT = 60.0

#: Seconds a disconnected session is kept for its peer to come back (ICE restart).
RECONNECT_WINDOW = 30.0

#: Seconds after a fan-out by which the timers of the sessions it touched are re-armed.
REARM_DELAY = 0.02


class HostedSession(Protocol):
    """What :class:`PeerHost` needs of a session (an SFU or echo session)."""

    session_id: str
    #: registered with the port's demultiplexer under its ufrag
    ice: IceLiteAgent
    #: the machine the host drives (set before :meth:`PeerHost.add`)
    connection: PeerConnection

    def handle_event(self, event: PeerEvent, now: float) -> None:
        """See one event of the connection (after the host has acted on it)."""
        ...

    def get_timer(self) -> float | None:
        """Return the session's own earliest deadline, or None."""
        ...

    def handle_timer(self, now: float) -> None:
        """Run the session's own deadlines that are due."""
        ...

    def take_touched(self) -> Iterable[HostedSession]:
        """Return (and forget) the sessions whose connections this one queued output on."""
        ...


class _Timed:
    """Present a connection (and its session's own timer) to its driver as one machine.

    An SFU session has deadlines of its own (RTCP reports, upstream NACKs,
    keyframe requests: ``session.get_timer()`` / ``session.handle_timer(now)``);
    they fold into the connection's, so each PeerConnection keeps exactly
    one ``IDelayedCall``::

        deadline = min(connection.get_timer(), session.get_timer())
        fire:      connection.handle_timer(now); session.handle_timer(now); drain
    """

    __slots__ = ("host", "session", "pacer")

    def __init__(self, host: PeerHost, session: HostedSession) -> None:
        self.host = host
        self.session = session
        #: the session's video pacer (realtime/sfu/pacer.py), if it has one
        self.pacer = getattr(session, "pacer", None)

    def handle_timer(self, now: float) -> None:
        session = self.session
        session.connection.handle_timer(now)
        deadline = session.get_timer()
        if deadline is not None and deadline <= now:
            session.handle_timer(now)
        self.host.demux.prune(session)  # consent lapsed: unbind those addresses
        self.host._drain(session, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out = self.session.connection.datagrams_to_send(now)
        pacer = self.pacer
        if pacer is None:
            return out
        out = pacer.admit(out, now)  # video beyond the pacing budget waits
        if pacer.woke:  # it started a queue: arm the timer now, not REARM_DELAY later
            pacer.woke = False
            self.host._waking.add(self.session)
        return out

    def get_timer(self) -> float | None:
        deadline = self.session.connection.get_timer()
        other = self.session.get_timer()
        if other is not None and (deadline is None or other < deadline):
            deadline = other
        pacer = self.pacer
        if pacer is not None:
            other = pacer.get_timer()
            if other is not None and (deadline is None or other < deadline):
                deadline = other
        return deadline


class PeerHost:
    """Keep the PeerConnections of one media port running on a reactor.

    :param reactor: the clock (``task.Clock`` in tests).
    :param fallback: router for STUN no session claims (the Binding service).
    :param unknown_checks: router for ICE checks naming no session here (the cluster's
        just-in-time lookup); None: they are dropped.
    """

    def __init__(self, reactor: IReactorTime, fallback: Fallback,
                 certificate: Certificate | None = None,
                 unconnected_timeout: float = UNCONNECTED_TIMEOUT,
                 reconnect_window: float = RECONNECT_WINDOW,
                 keylog: Callable[[bytes], None] | None = None,
                 srtp_keylog: Callable[[dict], None] | None = None,
                 on_removed: Callable[[HostedSession], None] | None = None,
                 on_connected: Callable[[HostedSession], None] | None = None,
                 unknown_checks: Fallback | None = None) -> None:
        self.reactor = reactor
        #: our DTLS certificate, one per process (its fingerprint goes in every SDP)
        self.certificate = certificate or Certificate.generate(reactor.seconds())
        #: receives NSS key-log lines of every DTLS handshake (``--dtls-keylog``)
        self.keylog = keylog
        #: receives :func:`srtp_keylog_entry` of every connection (``--srtp-keylog``)
        self.srtp_keylog = srtp_keylog
        #: told of every session removed (the cluster forgets the ones this node owns)
        self.on_removed = on_removed
        #: told of every session whose ICE and DTLS completed (the cluster's "last seen")
        self.on_connected = on_connected
        # a cluster node looks unknown ufrags up even from a bound address (its port reused)
        self.demux: SessionDemultiplexer[HostedSession] = SessionDemultiplexer(
            bound_answers_unknown=unknown_checks is None)
        self.router = PeerRouter(self.demux, fallback, self._after_input, unknown_checks)
        self.unconnected_timeout = unconnected_timeout
        self.reconnect_window = reconnect_window
        self.port = None
        self.sessions: dict[str, HostedSession] = {}
        self._drivers: dict[HostedSession, MachineDriver] = {}
        #: per session, its bound ``handle_event`` and ``take_touched``, looked up once
        self._hooks: dict[HostedSession, tuple[Callable, Callable]] = {}
        self._waiters: dict[HostedSession, list[Deferred]] = {}
        self._reapers: dict[HostedSession, Any] = {}
        #: sessions whose agent answers checks before their connection exists (:meth:`expect`)
        self._expected: set[HostedSession] = set()
        #: sessions a fan-out sent on whose timers are not re-armed yet, and the call that will
        self._stale: set[HostedSession] = set()
        self._rearm_call: Any = None
        #: sessions whose pacer started a queue in a fan-out (their timers are armed at once)
        self._waking: set[HostedSession] = set()

    def attach(self, port: Any) -> None:
        """Send through ``port`` (a :class:`~realtime.net.media_port.MediaPort`)."""
        self.port = port

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.port is not None:
            self.port.send(data, addr)

    def expect(self, session: HostedSession) -> None:
        """Answer checks for ``session`` before its connection exists (RFC 8445 §7.3).

        Call when the SFU's offer is made: the client checks as soon as it
        has answered, often before its answer reaches us.  The agent answers
        them with MESSAGE-INTEGRITY; :meth:`add` takes over when the answer
        creates the connection.  A session that never gets that far is
        dropped after ``unconnected_timeout``.
        """
        if session in self._drivers or session in self._expected:
            return
        self.demux.register(session.ice.local_ufrag, session)
        self._expected.add(session)
        self._reapers[session] = self.reactor.callLater(
            self.unconnected_timeout, self._forget_expected, session)

    def _forget_expected(self, session: HostedSession) -> None:
        if session in self._expected:
            self._expected.discard(session)
            self._reapers.pop(session, None)
            self.router.take_early(session)
            self.demux.unregister(session)

    def rekey(self, session: HostedSession) -> None:
        """Route checks by ``session``'s new local ufrag after an ICE restart (RFC 8445 §9).

        Its address bindings stay: media keeps flowing on the selected pair
        until the peer's checks under the new credentials arrive.
        """
        if session in self._drivers or session in self._expected:
            self.demux.register(session.ice.local_ufrag, session)

    def add(self, session: HostedSession) -> None:
        """Start routing the session's ICE ufrag and addresses to its connection."""
        if session in self._expected:
            self._expected.discard(session)
            reaper = self._reapers.pop(session)
            if reaper.active():
                reaper.cancel()
        self.demux.register(session.ice.local_ufrag, session)
        self.sessions[session.session_id] = session
        self._drivers[session] = MachineDriver(_Timed(self, session), self._send, self.reactor)
        self._hooks[session] = (session.handle_event, session.take_touched)
        self._reapers[session] = self.reactor.callLater(
            self.unconnected_timeout, self._reap_unconnected, session
        )
        now = self.reactor.seconds()
        connection = session.connection
        connection.start(now)  # what the agent learnt while expected
        for kind, data, addr, _held_at in self.router.take_early(session):
            connection.receive_classified(kind, data, addr, now)
        self._drain(session, now)

    def admit(self, session: HostedSession, checks: Iterable[tuple[bytes, Address]]) -> None:
        """Add a session learnt after its first checks arrived; route those checks now.

        The cluster's just-in-time path (``realtime.cluster.jit``) holds the
        checks of an unknown ufrag while it asks the directory, then hands the
        rebuilt session and the checks here.
        """
        self.add(session)
        now = self.reactor.seconds()
        for data, addr in checks:
            for reply, to in self.router.route(PacketKind.STUN, data, addr, now) or ():
                self._send(reply, to)

    def release(self, session_id: str) -> bool:
        """Drop session ``session_id`` unless it is connected here (another node took it)."""
        session = self.sessions.get(session_id)
        if session is None or session.connection.state == "connected":
            return False
        self.remove(session, "taken over")
        return True

    def remove(self, session: HostedSession, reason: str = "closed") -> None:
        """Close the session's connection and forget it (or stop expecting it)."""
        if session in self._expected:
            reaper = self._reapers.get(session)
            if reaper is not None and reaper.active():
                reaper.cancel()
            self._forget_expected(session)
            return
        if self.sessions.get(session.session_id) is not session:
            return
        del self.sessions[session.session_id]
        session.connection.close()
        driver = self._drivers.pop(session)
        self._hooks.pop(session, None)
        driver.pump()
        driver.stop()
        self.demux.unregister(session)
        reaper = self._reapers.pop(session, None)
        if reaper is not None and reaper.active():
            reaper.cancel()
        for waiter in self._waiters.pop(session, []):
            waiter.callback(False)
        if self.on_removed is not None:
            self.on_removed(session)

    def wait_connected(self, session: HostedSession, timeout: float) -> Deferred:
        """Return a Deferred firing True once connected, False after ``timeout`` seconds."""
        if session.connection.state == "connected":
            return _fired(True)
        if session.connection.state in ("failed", "closed"):
            return _fired(False)
        waiter: Deferred = Deferred()
        self._waiters.setdefault(session, []).append(waiter)
        call = self.reactor.callLater(timeout, self._time_out, session, waiter)

        def stop_timer(result: bool) -> bool:
            if call.active():
                call.cancel()
            return result

        waiter.addBoth(stop_timer)
        return waiter

    def _time_out(self, session: HostedSession, waiter: Deferred) -> None:
        waiters = self._waiters.get(session, [])
        if waiter in waiters:
            waiters.remove(waiter)
            waiter.callback(False)

    def _after_input(self, session: HostedSession) -> None:
        if session in self._drivers:
            self._drain(session, self.reactor.seconds())

    def _drain(self, session: HostedSession, now: float) -> None:
        connection = session.connection
        handle, take_touched = self._hooks.get(session, (None, None))
        while (event := connection.next_event()) is not None:
            if isinstance(event, Connected):
                reaper = self._reapers.pop(session, None)
                if reaper is not None and reaper.active():
                    reaper.cancel()
                for waiter in self._waiters.pop(session, []):
                    waiter.callback(True)
                log.info("session {session_id} connected", session_id=session.session_id)
                if self.srtp_keylog is not None:
                    self.srtp_keylog(srtp_keylog_entry(session, event))
                if self.on_connected is not None:
                    self.on_connected(session)
            elif isinstance(event, Disconnected):
                log.info("session {session_id} disconnected: {reason}",
                         session_id=session.session_id, reason=event.reason)
                for waiter in self._waiters.pop(session, []):
                    waiter.callback(False)
                if session not in self._reapers:
                    self._reapers[session] = self.reactor.callLater(
                        self.reconnect_window, self._reap_unconnected, session)
            if handle is not None:
                handle(event, now)
        driver = self._drivers.get(session)
        if driver is not None:
            driver.pump()
        if take_touched is not None:  # its input may have queued output on others (SFU fan-out)
            drivers, stale = self._drivers, self._stale
            # the queues go to the corked port as they are (MediaPort.send_list): no call
            # and no new tuple per datagram (docs/performance.md, fifth round)
            send_list = getattr(self.port, "send_list", None)
            for other in take_touched():
                if other is not session:
                    other_driver = drivers.get(other)
                    if other_driver is not None:
                        if send_list is not None:
                            out = other_driver.machine.datagrams_to_send(now)
                            if out:
                                send_list(out)
                        else:
                            other_driver.send_queued()
                        stale.add(other)
            if stale and self._rearm_call is None:
                self._rearm_call = self.reactor.callLater(REARM_DELAY, self._rearm_stale)
        if self._waking:
            waking, self._waking = self._waking, set()
            for other in waking:
                other_driver = self._drivers.get(other)
                if other_driver is not None:
                    other_driver.rearm()

    def _rearm_stale(self) -> None:
        """Re-arm the timers of the sessions fan-outs sent on since the last time."""
        self._rearm_call = None
        stale, self._stale = self._stale, set()
        drivers = self._drivers
        for session in stale:
            driver = drivers.get(session)
            if driver is not None:  # else removed meanwhile: its timer is stopped
                driver.rearm()

    def flush(self, session: HostedSession) -> None:
        """Send what ``session``'s connection queued outside its own input (SFU fan-out)."""
        driver = self._drivers.get(session)
        if driver is not None:
            driver.pump()

    def _reap_unconnected(self, session: HostedSession) -> None:
        self._reapers.pop(session, None)
        if session.connection.state != "connected":
            self.remove(session, "never connected")


def srtp_keylog_entry(session: HostedSession, event: Connected) -> dict:
    """Return the SRTP master keys of a connected session as a JSON-ready dict.

    One entry per completed DTLS handshake, for decrypting captures
    (``realtime-replay --srtp-keys``); RFC 5764 §4.2 names the halves
    ``client_write_*`` and ``server_write_*`` after the DTLS roles.
    """
    connection = session.connection
    keying = connection.srtp_keying
    assert keying is not None, "Connected comes once DTLS has exported the SRTP keys"
    local, remote = keying
    ours = connection.dtls_role
    theirs = "client" if ours == "server" else "server"
    entry = {"session_id": session.session_id, "srtp_profile": event.srtp_profile,
             "peer": f"{event.address[0]}:{event.address[1]}",
             "local_dtls_role": ours, "peer_dtls_role": theirs}
    for role, (key, salt) in ((ours, local), (theirs, remote)):
        entry[f"{role}_write_srtp_master_key"] = key.hex()
        entry[f"{role}_write_srtp_master_salt"] = salt.hex()
    return entry


def _fired(value: bool) -> Deferred:
    d: Deferred = Deferred()
    d.callback(value)
    return d
