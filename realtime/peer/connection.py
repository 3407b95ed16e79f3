"""
One PeerConnection's transport, server side, as a sans-I/O machine.

A WebRTC PeerConnection that is BUNDLEd and rtcp-muxed (the only kind this
server accepts) carries everything on one 5-tuple.  The first byte tells the
layers apart (RFC 7983, :mod:`realtime.demux`); each goes to its own machine::

                         +-------------------------------+
      datagram  -------> | classify(first byte)          |
     (data, addr, now)   +---+---------+---------+-------+
                             |         |         |
                        STUN |    DTLS |   SRTP  | SRTCP
                             v         v         v
                     IceLiteAgent  DtlsEndpoint  SrtpSession.unprotect
                      (consent,     (handshake,    |
                       nomination)   keys, SCTP)   v
                             |         |        media_sink(kind, packet, now)
                             |         +--> HandshakeCompleted -> SrtpSession
                             v
                   response to addr at once

Outputs follow docs/design.md: :meth:`datagrams_to_send` returns ``(bytes,
address)`` pairs, :meth:`get_timer` the earliest deadline of the ICE agent
and the DTLS endpoint, :meth:`next_event` the connection-level events
(:class:`Connected`, :class:`Disconnected`, :class:`ApplicationData`, and
the DataChannel events of an attached :class:`~realtime.peer.sctp_transport.SctpTransport`).

DataChannels: when the session's SDP accepted an application m-line it
attaches an :class:`~realtime.peer.sctp_transport.SctpTransport` with
:meth:`attach_sctp`.  The connection then starts the association once DTLS
is up, feeds it every DTLS application record, folds its timer into
:meth:`get_timer`, sends what it queues, and passes its events
(``ChannelOpened``, ``MessageReceived``, ``ChannelClosed``) out through
:meth:`next_event` instead of :class:`ApplicationData`.

Deliberate deviation from "events for everything": decrypted RTP and RTCP go
to a ``media_sink`` callable instead of the event queue, because they arrive
hundreds of times a second and the SFU must not allocate an event object per
packet (the hot path rule of the mission).

States (``state``), after RFC 8829's RTCPeerConnectionState::

     new --(authenticated check)--> connecting --(DTLS done)--> connected
       \\                                 |                          |
        \\------------------------------- +-- failure / consent --> failed
                                                                    closed
"""

from __future__ import annotations

import os
import struct
from collections import Counter, deque
from enum import StrEnum
from typing import Callable, Iterable, Sequence

from realtime.addresses import Address
from realtime.demux import PacketKind, classify
from realtime.dtls.certificate import Certificate
from realtime.dtls.endpoint import DtlsEndpoint, DtlsRole, dtls_role as as_dtls_role
from realtime.dtls.events import (
    ApplicationDataReceived, ConnectionClosed, HandshakeCompleted, HandshakeFailed,
)
from realtime.errors import DecodeError, LocalProtocolError
from realtime.ice.events import CandidatePairValidated, ConsentExpired, SelectedPairChanged
from realtime.ice.lite import IceLiteAgent
from realtime.peer.events import ApplicationData, Connected, ConnectionEvent, Disconnected
from realtime.peer.sctp_transport import SctpTransport
from realtime.srtp.context import SrtpSession, from_dtls_keying

_SSRC = struct.Struct("!I").unpack_from

MediaSink = Callable[[PacketKind, bytes, float], None]

DEFAULT_SRTP_PROFILES = (
    "SRTP_AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM",
    "SRTP_AES128_CM_SHA1_80",
)


class ConnectionState(StrEnum):
    """The PeerConnection's state, after W3C's RTCPeerConnectionState (RFC 8829 §4.1.1)."""

    #: no authenticated connectivity check yet
    NEW = "new"
    #: ICE has a selected pair; DTLS is under way
    CONNECTING = "connecting"
    #: DTLS-SRTP keys are in place: media flows
    CONNECTED = "connected"
    #: consent expired or DTLS failed (an ICE restart may bring it back)
    FAILED = "failed"
    #: closed by us or by the peer's close_notify
    CLOSED = "closed"


def _ignore_media(kind: PacketKind, packet: bytes, now: float) -> None:
    """Drop media: the default sink of a connection nobody listens to."""


class PeerConnection:
    """ICE-lite + DTLS + SRTP for one BUNDLEd PeerConnection, without I/O.

    :param ice: the session's ICE-lite agent (registered with the port's
        :class:`~realtime.ice.demultiplexer.SessionDemultiplexer` by the caller).
    :param certificate: our DTLS certificate (its fingerprint is in our SDP).
    :param dtls_role: ``"server"`` when our SDP says ``setup:passive``,
        ``"client"`` when it says ``setup:active``.
    :param remote_fingerprints: ``(algorithm, value)`` pairs from the peer's SDP.
    :param srtp_profiles: use_srtp profiles we accept, most preferred first.
    :param media_sink: receives every decrypted RTP/RTCP packet.
    :param keylog: receives NSS key-log lines of the DTLS handshake.
    """

    def __init__(
        self,
        ice: IceLiteAgent,
        certificate: Certificate,
        dtls_role: str,
        remote_fingerprints: Iterable[tuple[str, str]],
        *,
        srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
        media_sink: MediaSink = _ignore_media,
        keylog: Callable[[bytes], None] | None = None,
        cookie_secret: bytes | None = None,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.ice = ice
        self.certificate = certificate
        self.dtls_role = as_dtls_role(dtls_role)
        self.remote_fingerprints = list(remote_fingerprints)
        self.srtp_profiles = tuple(srtp_profiles)
        self.media_sink = media_sink
        self.keylog = keylog
        self.cookie_secret = cookie_secret
        self.random = random
        self.state = ConnectionState.NEW
        self.srtp: SrtpSession | None = None
        self.srtp_profile = ""
        #: ``(local_keying, remote_keying)`` of the completed handshake, each
        #: ``(master_key, master_salt)``; kept for ``--srtp-keylog``.
        self.srtp_keying: tuple[tuple[bytes, bytes], tuple[bytes, bytes]] | None = None
        self.dtls: DtlsEndpoint | None = None
        #: the DataChannel transport, when the SDP negotiated one (:meth:`attach_sctp`)
        self.sctp: SctpTransport | None = None
        #: Datagrams dropped, by reason ("stun", "dtls", "srtp", "srtcp", "unknown", ...).
        self.drops: Counter[str] = Counter()
        #: Packets and bytes received and sent, by kind.
        self.counters: Counter[str] = Counter()
        #: Wire usage (UDP payloads in and out, every kind), read by
        #: :class:`realtime.sfu.usage.UsageMeter`.
        self.bytes_received = self.packets_received = 0
        self.bytes_sent = self.packets_sent = 0
        self._outgoing: list[tuple[bytes, Address]] = []
        self._events: deque[ConnectionEvent] = deque()
        #: carried on from another node's keys (:meth:`resume`): no DTLS here
        self.resumed = False
        #: SRTCP packets protected, by the first SSRC of the compound (what a node
        #: resuming this association must skip past, realtime.cluster.resume)
        self.rtcp_sent: Counter[int] = Counter()

    # -- inputs ------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Handle one datagram from ``addr`` (already routed to this connection)."""
        self.receive_classified(classify(data), data, addr, now)

    def receive_classified(self, kind: PacketKind, data: bytes, addr: Address, now: float) -> None:
        """Handle a datagram the port already classified (RFC 7983): no second look."""
        if kind is PacketKind.RTP or kind is PacketKind.RTCP:
            self.bytes_received += len(data)
            self.packets_received += 1
            self._receive_srtp(kind, data, addr, now)
        elif kind is PacketKind.STUN:
            self.receive_stun(data, addr, now)  # counts it
        else:
            self.bytes_received += len(data)
            self.packets_received += 1
            if kind is PacketKind.DTLS:
                self._receive_dtls(data, addr, now)
            else:
                self.drops["unknown"] += 1

    def receive_stun(self, data: bytes, addr: Address, now: float, response: bytes | None = None,
                     handled: bool = False) -> None:
        """Handle a STUN datagram; ``handled`` means the agent already answered it.

        The port's demultiplexer calls the agent itself (to learn whether the
        address authenticated) and passes its ``response`` here.
        """
        self.bytes_received += len(data)
        self.packets_received += 1
        if not handled:
            try:
                response = self.ice.receive_stun(data, addr, now)
            except DecodeError:
                self.drops["stun"] += 1
                return
        if response is not None:
            self._outgoing.append((response, addr))
        self._drain_ice(now)

    def _receive_dtls(self, data: bytes, addr: Address, now: float) -> None:
        if self.resumed:        # the association lives on another node's memory only
            self.drops["dtls-resumed"] += 1
            return
        if not self.ice.is_valid(addr):
            self.drops["dtls-unauthenticated"] += 1
            return
        self.ice.notice_dtls(addr, now)
        self._drain_ice(now)
        dtls = self.dtls if self.dtls is not None else self._start_dtls(now)
        try:
            dtls.receive_datagram(data, now)
        except DecodeError:
            self.drops["dtls"] += 1
            return
        self._drain_dtls(dtls, now, addr)

    def _receive_srtp(self, kind: PacketKind, data: bytes, addr: Address, now: float) -> None:
        srtp = self.srtp
        if srtp is None:
            self.drops["srtp-before-keys"] += 1
            return
        try:
            if kind is PacketKind.RTP:
                packet = srtp.unprotect(data)
            else:
                packet = srtp.unprotect_rtcp(data)
        except DecodeError:
            self.drops["srtp" if kind is PacketKind.RTP else "srtcp"] += 1
            return
        self.ice.notice_authenticated(addr, now)  # proof of life (RFC 7675 is the peer's job)
        self.media_sink(kind, packet, now)

    def handle_timer(self, now: float) -> None:
        """Run the ICE consent, DTLS retransmission and SCTP timers."""
        self.ice.handle_timer(now)
        self._drain_ice(now)
        if self.dtls is not None:
            self.dtls.handle_timer(now)
            self._drain_dtls(self.dtls, now)
        sctp = self.sctp
        if sctp is not None:
            deadline = sctp.get_timer()
            if deadline is not None and deadline <= now:
                sctp.handle_timer(now)
            self.flush_sctp(now)

    def attach_sctp(self, transport: SctpTransport) -> None:
        """Carry DataChannels: run ``transport`` (an SctpTransport) over DTLS."""
        self.sctp = transport

    def flush_sctp(self, now: float) -> None:
        """Send the SCTP packets the transport queued and pass its events on.

        Call it after commanding the transport (``send``, ``open_channel``,
        ``close_channel``); inputs and timers of the connection call it themselves.
        """
        sctp = self.sctp
        if sctp is None:
            return
        while (event := sctp.next_event()) is not None:
            self._events.append(event)
        if self.state != ConnectionState.CONNECTED or self.dtls is None:
            return
        for packet in sctp.packets_to_send(now):
            self.dtls.send(packet)
        self._flush_dtls()

    # -- commands ----------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin: take in what the agent learnt before us; as DTLS client, say hello.

        The agent may have answered checks (and seen a nomination) before the
        connection existed (an SFU offer awaiting its answer, RFC 8445 §7.3).
        """
        self._drain_ice(now)
        if self.dtls_role == DtlsRole.CLIENT and self.ice.selected_address is not None \
                and self.dtls is None:
            self._start_dtls(now)

    def resume(self, profile: str, local_keying: tuple[bytes, bytes],
               remote_keying: tuple[bytes, bytes]) -> None:
        """Carry on an association whose DTLS handshake ran on another node.

        ``local_keying``/``remote_keying`` are the ``(master_key, master_salt)``
        pairs RFC 5764 §4.2 exported there (ours, the peer's).  SRTP starts at
        once (fresh replay windows); no DTLS endpoint exists, so a DTLS record
        is dropped and counted (``dtls-resumed``) and DataChannels over that
        association cannot continue.  The connection becomes ``connected``
        (event :class:`Connected`) when ICE selects a pair: the first
        authenticated check counts as the nomination, as a DTLS record would.
        """
        self.srtp_profile = profile
        self.srtp_keying = (local_keying, remote_keying)
        self.srtp = from_dtls_keying(profile, local_keying, remote_keying)
        self.resumed = True
        self.state = ConnectionState.CONNECTING

    def send_rtp(self, packet: bytes) -> bool:
        """Protect an RTP packet and queue it to the selected address; False if not connected."""
        addr = self.ice.selected_address
        srtp = self.srtp
        if addr is None or srtp is None:
            return False
        self._outgoing.append((srtp.protect(packet), addr))
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        """Protect an RTCP compound packet and queue it; False if not connected."""
        addr = self.ice.selected_address
        srtp = self.srtp
        if addr is None or srtp is None:
            return False
        self._outgoing.append((srtp.protect_rtcp(packet), addr))
        if len(packet) >= 8:
            self.rtcp_sent[_SSRC(packet, 4)[0]] += 1
        return True

    def send_application_data(self, data: bytes) -> None:
        """Send DTLS application data (an SCTP packet)."""
        if self.dtls is None or self.state != ConnectionState.CONNECTED:
            raise LocalProtocolError("DTLS is not established")
        self.dtls.send(data)
        self._flush_dtls()

    def close(self) -> None:
        """Close DTLS (close_notify) and stop."""
        if self.dtls is not None:
            self.dtls.close()
            self._flush_dtls()
        self.state = ConnectionState.CLOSED

    # -- outputs -----------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Return and forget the queued ``(datagram, address)`` pairs (counted as sent)."""
        out, self._outgoing = self._outgoing, []
        if out:
            count = len(out)
            self.packets_sent += count
            if count == 1:  # the SFU fan-out: one copy per subscriber per packet
                self.bytes_sent += len(out[0][0])
            else:
                self.bytes_sent += sum([len(datagram) for datagram, _ in out])
        return out

    def get_timer(self) -> float | None:
        """Return the earliest deadline of ICE consent, DTLS retransmission and SCTP."""
        deadlines = [t for t in (self.ice.get_timer(), self.dtls and self.dtls.get_timer(),
                                 self.sctp and self.sctp.get_timer()) if t]
        return min(deadlines) if deadlines else None

    def next_event(self) -> ConnectionEvent | None:
        """Return the oldest pending event (:mod:`realtime.peer.events`), or None."""
        return self._events.popleft() if self._events else None

    # -- internals ---------------------------------------------------------

    def _start_dtls(self, now: float) -> DtlsEndpoint:
        dtls = self.dtls = DtlsEndpoint(
            self.dtls_role,
            self.certificate,
            self.remote_fingerprints,
            srtp_profiles=self.srtp_profiles,
            now=now,
            random=self.random,
            peer_address=self.ice.selected_address,
            cookie_secret=self.cookie_secret,
            keylog=self.keylog,
        )
        if self.state == ConnectionState.NEW:
            self.state = ConnectionState.CONNECTING
        self._flush_dtls()
        return dtls

    def _flush_dtls(self) -> None:
        addr = self.ice.selected_address
        if self.dtls is None or addr is None:
            return
        for datagram in self.dtls.datagrams_to_send(0.0):
            self._outgoing.append((datagram, addr))

    def _drain_ice(self, now: float) -> None:
        while (event := self.ice.next_event()) is not None:
            if isinstance(event, CandidatePairValidated) and self.resumed:
                self.ice.notice_dtls(event.addr, now)  # a consent check: select its pair
            elif isinstance(event, SelectedPairChanged):
                if self.resumed:    # no DTLS to start: connected once a pair is selected
                    if event.addr is not None and self.state != ConnectionState.CONNECTED:
                        self.state = ConnectionState.CONNECTED
                        self._events.append(Connected(event.addr, self.srtp_profile))
                    continue
                if self.state == ConnectionState.NEW:
                    self.state = ConnectionState.CONNECTING
                if event.addr is not None and self.dtls_role == DtlsRole.CLIENT and self.dtls is None:
                    self._start_dtls(now)
            elif isinstance(event, ConsentExpired) and self.ice.selected_address is None:
                if self.state not in (ConnectionState.FAILED, ConnectionState.CLOSED):
                    self.state = ConnectionState.FAILED
                    self._events.append(Disconnected("ICE consent expired"))

    def _drain_dtls(self, dtls: DtlsEndpoint, now: float, addr: Address | None = None) -> None:
        self._flush_dtls()
        self._drain_dtls_events(dtls, now, addr)
        self.flush_sctp(now)

    def _drain_dtls_events(self, dtls: DtlsEndpoint, now: float,
                           addr: Address | None = None) -> None:
        while (event := dtls.next_event()) is not None:
            if isinstance(event, ApplicationDataReceived):
                if addr is not None:  # a record that passed DTLS's MAC: proof of life
                    self.ice.notice_authenticated(addr, now)
                if self.sctp is not None:
                    self.sctp.receive_packet(event.data, now)
                else:
                    self._events.append(ApplicationData(event.data))
            elif isinstance(event, HandshakeCompleted):
                self.srtp_profile = event.srtp_profile
                self.srtp_keying = (event.local_keying, event.remote_keying)
                self.srtp = from_dtls_keying(
                    event.srtp_profile, event.local_keying, event.remote_keying
                )
                self.state = ConnectionState.CONNECTED
                selected = self.ice.selected_address
                assert selected is not None, "DTLS runs only once ICE selected a pair"
                self._events.append(Connected(selected, event.srtp_profile))
                if self.sctp is not None:
                    self.sctp.start(now)
            elif isinstance(event, HandshakeFailed):
                self.state = ConnectionState.FAILED
                self._events.append(Disconnected(f"DTLS: {event.reason}"))
            elif isinstance(event, ConnectionClosed):
                self.state = ConnectionState.CLOSED
                self._events.append(Disconnected("DTLS closed"))
