"""
An SCTP association (RFC 9260) as a sans-I/O machine, for SCTP over DTLS.

WebRTC runs SCTP directly on DTLS (RFC 8261): one association per
PeerConnection, single-homed, no IP addresses.  This machine takes whole
SCTP packets (:meth:`Association.receive_packet`) and hands back whole
packets (:meth:`Association.packets_to_send`); its own timers come out of
:meth:`get_timer`.  The states of RFC 9260 §4, as implemented::

                           connect()                 INIT received: INIT ACK
        CLOSED ---------------------------------+    (stateless, §5.1.3)
          |  COOKIE ECHO valid: COOKIE ACK      |
          |                                     v
          |                               COOKIE-WAIT --T1 expiry: INIT again
          |                                     | INIT ACK: COOKIE ECHO
          |                                     v
          |                               COOKIE-ECHOED --T1: COOKIE ECHO again
          |                                     | COOKIE ACK
          +--------------> ESTABLISHED <--------+
                shutdown() /       \\ SHUTDOWN received
        SHUTDOWN-PENDING            SHUTDOWN-RECEIVED
          | all data acked            | all data acked: SHUTDOWN ACK
          v  SHUTDOWN                 v
        SHUTDOWN-SENT --SHUTDOWN ACK--> SHUTDOWN-ACK-SENT
          | send SHUTDOWN COMPLETE     | SHUTDOWN COMPLETE received
          v                            v
        CLOSED  <----- ABORT (either way, any state) ----- CLOSED

Sending is in :mod:`~realtime.sctp.transmit`, receiving in
:mod:`~realtime.sctp.receive`, stream reset in :mod:`~realtime.sctp.reconfig`
and the State Cookie in :mod:`~realtime.sctp.cookie`; this module checks
verification tags (§8.5), runs the handshake including INIT collisions
(§5.2.1) and peer restarts (§5.2.2, §5.2.4 case A), bundles chunks into
packets of at most ``mtu`` bytes, and runs the T1-init, T2-shutdown, delayed
SACK, HEARTBEAT and RE-CONFIG timers.

Deliberate deviations: unrecognised parameters of an INIT are ignored (not
reported); a stale cookie is dropped silently rather than answered with an
ERROR (the peer's T1 retransmits the INIT).
"""

from __future__ import annotations

import hmac
import os
import struct
from collections import deque
from dataclasses import dataclass
from typing import Callable

from realtime.errors import DecodeError, LocalProtocolError
from realtime.sctp.chunks import (
    AbortChunk, Chunk, CookieAckChunk, CookieEchoChunk, DataChunk, ErrorChunk,
    ForwardTsnChunk, HeartbeatAckChunk, HeartbeatChunk, InitAckChunk, InitChunk, ReconfigChunk,
    SackChunk, ShutdownAckChunk, ShutdownChunk, ShutdownCompleteChunk, UnknownChunk,
)
from realtime.sctp.cookie import FEATURE_FORWARD_TSN
from realtime.sctp.events import (
    AssociationAborted, AssociationClosed, AssociationEstablished, AssociationRestarted,
    DataReceived, Event, OutgoingStreamsReset, StreamsReset,
)
from realtime.sctp.handshake import (
    EXTENSION_PARAMETERS, AcknowledgeCookie, AnswerInit, Decision, Drop, EchoCookie, Establish,
    HandshakeView, accept_cookie_echo, accept_init_ack, answer_init, features_of,
)
from realtime.sctp.packet import ChecksumMismatch, SctpPacket, encode_packet
from realtime.sctp.parameters import (
    RECONFIG_REQUESTS, CauseCode, ErrorCause, HeartbeatInfo, ReconfigurationResponse,
)
from realtime.sctp.receive import Receiver
from realtime.sctp.reconfig import StreamReconfiguration
from realtime.sctp.states import AssociationState
from realtime.sctp.transmit import RtoEstimator, Transmitter

MASK = 0xFFFFFFFF
_HEARTBEAT_INFO = struct.Struct("!d8s")
_SENDING_STATES = (AssociationState.ESTABLISHED, AssociationState.SHUTDOWN_PENDING,
                   AssociationState.SHUTDOWN_RECEIVED, AssociationState.SHUTDOWN_SENT)
_RECEIVING_STATES = (AssociationState.ESTABLISHED, AssociationState.SHUTDOWN_PENDING,
                     AssociationState.SHUTDOWN_SENT)


def _padded(raw: bytes) -> int:
    return len(raw) + (-len(raw) & 3)


@dataclass(frozen=True, slots=True)
class DataTransfer:
    """What an association holds from ESTABLISHED until it closes.

    User data transfer (RFC 9260 §6) and stream reset (RFC 6525) need both
    sides' Initial TSNs, so they exist only once the handshake is done:
    the association has all three or none (``Association.transfer`` is None
    before ESTABLISHED and after CLOSED).
    """

    transmitter: Transmitter  #: our DATA, its retransmission and T3-rtx (§6.1-6.3)
    receiver: Receiver  #: the peer's DATA, reassembly and SACKs (§6.2, §6.9)
    reconfig: StreamReconfiguration  #: RE-CONFIG requests both ways (RFC 6525 §5)


@dataclass(frozen=True, slots=True)
class AssociationConfig:
    """Tunables of an association (RFC 9260 §16 names in the comments)."""

    local_port: int = 5000
    remote_port: int = 5000
    mtu: int = 1200  #: largest SCTP packet; DTLS + UDP + IP add the rest
    a_rwnd: int = 1 << 20  #: receive window we advertise
    streams: int = 65535  #: OS and MIS we announce
    max_message_size: int = 1 << 18  #: RFC 8841 max-message-size we accept
    rto_initial: float = 1.0  #: RTO.Initial
    rto_min: float = 1.0  #: RTO.Min
    rto_max: float = 60.0  #: RTO.Max
    max_init_retransmits: int = 8  #: Max.Init.Retransmits
    max_retransmits: int = 10  #: Association.Max.Retrans
    cookie_lifetime: float = 60.0  #: Valid.Cookie.Life
    heartbeat_interval: float = 30.0  #: HB.interval


class Association:
    """One SCTP association over DTLS, without I/O.

    :param config: the tunables.
    :param secret: the State Cookie HMAC key (random by default).
    :param random: source of tags, TSNs and nonces.
    """

    def __init__(self, config: AssociationConfig = AssociationConfig(), *,
                 secret: bytes | None = None,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.config = config
        self.random = random
        self.secret = secret if secret is not None else random(32)
        #: where the association is (RFC 9260 §4; the diagram above)
        self.state = AssociationState.CLOSED
        self.local_tag = 0
        self.peer_tag = 0
        self.local_initial_tsn = 0
        self.rto = RtoEstimator(config.rto_initial, config.rto_min, config.rto_max)
        #: the data-carrying halves, from ESTABLISHED until CLOSED
        self.transfer: DataTransfer | None = None
        self.peer_forward_tsn = False
        #: Packets or chunks dropped, by reason ("checksum", "verification-tag", ...).
        self.drops: dict[str, int] = {}
        self._control: list[tuple[int, Chunk]] = []  # (verification tag, chunk)
        self._events: deque[Event] = deque()
        self._peer_init: InitChunk | None = None
        self._cookie_echo: CookieEchoChunk | None = None
        self._t1: float | None = None
        self._t1_count = 0
        self._t2: float | None = None
        self._t2_count = 0
        self._heartbeat: float | None = None
        self._heartbeat_nonce: bytes | None = None
        self._heartbeat_misses = 0

    # -- commands ----------------------------------------------------------

    def connect(self, now: float) -> None:
        """Send INIT and wait for INIT ACK (RFC 9260 §5.1 step A)."""
        if self.state != AssociationState.CLOSED:
            raise LocalProtocolError(f"connect() in state {self.state}")
        self.local_tag = self._nonzero32()
        self.local_initial_tsn = self._random32()
        self.state = AssociationState.COOKIE_WAIT
        self._t1, self._t1_count = now + self.config.rto_initial, 0
        self._control.append((0, self._init_chunk()))

    def send(self, stream_id: int, ppid: int, data: bytes, now: float, *, ordered: bool = True,
             max_retransmits: int | None = None, lifetime: float | None = None) -> None:
        """Queue a user message on ``stream_id`` (``lifetime`` in seconds, RFC 3758)."""
        transfer = self.transfer
        if self.state != AssociationState.ESTABLISHED or transfer is None:
            raise LocalProtocolError(f"cannot send in state {self.state}")
        if not self.peer_forward_tsn:
            max_retransmits = lifetime = None
        transfer.transmitter.enqueue(
            stream_id, ppid, data, ordered=ordered, max_retransmits=max_retransmits,
            expiry=None if lifetime is None else now + lifetime)

    def reset_streams(self, stream_ids: list[int]) -> None:
        """Reset our outgoing ``stream_ids`` (RFC 6525), e.g. to close DataChannels."""
        if self.transfer is None:
            raise LocalProtocolError(f"cannot reset streams in state {self.state}")
        self.transfer.reconfig.request_reset(stream_ids)

    def shutdown(self, now: float) -> None:
        """Close gracefully once all queued data is acknowledged (§9.2)."""
        if self.state == AssociationState.ESTABLISHED:
            self.state = AssociationState.SHUTDOWN_PENDING
            self._finish_sending(now)
        elif self.state in (AssociationState.COOKIE_WAIT, AssociationState.COOKIE_ECHOED):
            self._close(AssociationClosed())

    def abort(self, reason: str = "") -> None:
        """Send ABORT with a User-Initiated Abort cause and close at once (§9.1)."""
        if self.state == AssociationState.CLOSED:
            return
        cause = ErrorCause(CauseCode.USER_INITIATED_ABORT, reason.encode()[:256])
        self._control.append((self.peer_tag, AbortChunk((cause,))))
        self._close(AssociationAborted(f"aborted locally: {reason}"))

    # -- outputs -----------------------------------------------------------

    def next_event(self) -> Event | None:
        """Return the oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """Return the earliest deadline among T1, T2, T3, SACK, HEARTBEAT, RE-CONFIG."""
        deadlines = [self._t1, self._t2, self._heartbeat]
        transfer = self.transfer
        if transfer is not None:
            deadlines.append(transfer.transmitter.t3_rtx)
            deadlines.append(transfer.receiver.sack_deadline)
            if transfer.reconfig.outstanding is not None:
                deadlines.append(transfer.reconfig.deadline)
        found = [d for d in deadlines if d is not None]
        return min(found) if found else None

    def packets_to_send(self, now: float) -> list[bytes]:
        """Return the packets to send now: control chunks, SACK, FORWARD TSN, DATA."""
        packets: list[bytes] = []
        control, self._control = self._control, []
        for tag, chunk in control:
            self._emit(packets, tag, [chunk.encode()])
        transfer = self.transfer
        if transfer is None:
            return packets
        chunks: list[bytes] = []
        receiver, transmitter = transfer.receiver, transfer.transmitter
        if receiver.sack_deadline is not None and receiver.sack_deadline <= now:
            chunks.append(receiver.sack().encode())
        forward = transmitter.forward_tsn() if self.peer_forward_tsn else None
        if forward is not None:
            chunks.append(forward.encode())
        request = transfer.reconfig.request_to_send(transmitter.last_assigned_tsn, now,
                                                     self.rto.rto)
        if request is not None:
            chunks.append(ReconfigChunk((request,)).encode())
        if self.state in _SENDING_STATES:
            self._bundle_data(transmitter, packets, chunks, now)
        elif chunks:
            self._emit(packets, self.peer_tag, chunks)
        return packets

    def _bundle_data(self, transmitter: Transmitter, packets: list[bytes], chunks: list[bytes],
                     now: float) -> None:
        """Fill packets with DATA after the control chunks already in ``chunks``."""
        full = self.config.mtu - 12
        room = full - sum(_padded(c) for c in chunks)
        take = transmitter.take
        while True:
            data = take(now, room)
            if data is None:
                if not chunks:
                    return
                self._emit(packets, self.peer_tag, chunks)
                chunks, room = [], full
                continue
            raw = data.encode()
            chunks.append(raw)
            room -= _padded(raw)

    def _emit(self, packets: list[bytes], tag: int, chunks: list[bytes]) -> None:
        packets.append(encode_packet(self.config.local_port, self.config.remote_port, tag, chunks))

    # -- inputs ------------------------------------------------------------

    def receive_packet(self, data: bytes, now: float) -> None:
        """Handle one SCTP packet (the payload of one DTLS record)."""
        try:
            packet = SctpPacket.decode(data)
        except ChecksumMismatch:
            self._drop("checksum")
            return
        except DecodeError:
            self._drop("decode")
            return
        chunks, tag = packet.chunks, packet.verification_tag
        head = chunks[0]
        first = type(head)
        if type(head) is InitChunk:
            if len(chunks) != 1 or tag != 0:
                self._drop("init-verification-tag")  # §8.5.1 A, §6.10
            else:
                config = self.config
                self._apply(answer_init(self._view(), head, now, secret=self.secret,
                                        a_rwnd=config.a_rwnd, streams=config.streams,
                                        new_tag=self._nonzero32, new_tsn=self._random32), now)
            return
        if type(head) is AbortChunk or type(head) is ShutdownCompleteChunk:
            expected = self.peer_tag if head.reflected else self.local_tag
            if self.state == AssociationState.CLOSED or tag != expected:
                self._drop("verification-tag")
                return
        elif first is not CookieEchoChunk and (
                self.state == AssociationState.CLOSED or tag != self.local_tag):
            if first is ShutdownAckChunk:  # out of the blue (§8.4 item 5)
                self._control.append((tag, ShutdownCompleteChunk(reflected=True)))
            self._drop("verification-tag")
            return
        self._receive_chunks(chunks, tag, now)

    def _receive_chunks(self, chunks: tuple, tag: int, now: float) -> None:
        had_data = False
        for chunk in chunks:
            kind = type(chunk)
            if kind is DataChunk:
                had_data = self._receive_data(chunk) or had_data
            elif kind is SackChunk:
                if self.transfer is not None:
                    self.transfer.transmitter.handle_sack(chunk, now)
                    self._finish_sending(now)
            elif kind is ForwardTsnChunk:
                if self.transfer is not None and self.state in _RECEIVING_STATES:
                    self.transfer.receiver.forward_tsn(chunk.new_cumulative_tsn, chunk.streams,
                                                       now)
            elif kind is CookieEchoChunk:
                decision = accept_cookie_echo(self._view(), chunk, tag, now, secret=self.secret,
                                              lifetime=self.config.cookie_lifetime)
                if not self._apply(decision, now):
                    return
            elif kind is InitAckChunk:
                self._apply(accept_init_ack(self._view(), chunk), now)
            elif kind is CookieAckChunk:
                ack = self._peer_init
                if self.state == AssociationState.COOKIE_ECHOED and ack is not None:  # §5.1 E
                    self._establish(self.local_initial_tsn, ack.initial_tsn, ack.a_rwnd,
                                    features_of(ack), AssociationEstablished())
            elif kind is HeartbeatChunk:
                self._control.append((self.peer_tag, HeartbeatAckChunk(chunk.parameters)))
            elif kind is HeartbeatAckChunk:
                self._heartbeat_acknowledged(chunk, now)
            elif kind is ReconfigChunk:
                self._reconfigure(chunk, now)
            elif kind is AbortChunk:
                self._close(AssociationAborted(_describe(chunk.causes)))
            elif kind is ShutdownChunk:
                self._peer_shutdown(chunk, now)
            elif kind is ShutdownAckChunk:
                if self.state in (AssociationState.SHUTDOWN_SENT,
                                  AssociationState.SHUTDOWN_ACK_SENT):
                    self._control.append((self.peer_tag, ShutdownCompleteChunk()))
                    self._close(AssociationClosed())
            elif kind is ShutdownCompleteChunk:
                if self.state == AssociationState.SHUTDOWN_ACK_SENT:
                    self._close(AssociationClosed())
            elif kind is UnknownChunk:
                if not self._unrecognised(chunk):
                    break
            else:  # ERROR, or an INIT bundled illegally
                self._drop(type(chunk).__name__)
            if self.state == AssociationState.CLOSED:
                break
        if self.transfer is not None:
            self.transfer.receiver.packet_done(now, had_data)
            self._deliver(self.transfer.receiver)
        if self.state == AssociationState.ESTABLISHED:
            self._heartbeat = now + self.config.heartbeat_interval + self.rto.rto
            self._heartbeat_misses = 0

    def _receive_data(self, chunk: DataChunk) -> bool:
        if self.transfer is None or self.state not in _RECEIVING_STATES:
            self._drop("data-out-of-state")
            return False
        if not chunk.user_data:
            self._drop("data-without-user-data")  # §6.2 would ABORT; one bad chunk is not worth it
            return False
        self.transfer.receiver.receive_data(chunk)
        return True

    def _deliver(self, receiver: Receiver) -> None:
        if receiver.delivered:
            for message in receiver.delivered:
                self._events.append(DataReceived(message.stream_id, message.ppid, message.data,
                                                 message.unordered))
            receiver.delivered.clear()

    def _reconfigure(self, chunk: ReconfigChunk, now: float) -> None:
        """Answer the peer's requests and apply responses to ours (RFC 6525 §5.2)."""
        transfer = self.transfer
        if transfer is None:
            return
        responses = []
        for param in chunk.parameters:
            if isinstance(param, ReconfigurationResponse):
                streams = transfer.reconfig.handle_response(param, now, self.rto.rto)
                if streams is not None:
                    transfer.transmitter.reset_stream_seq(list(streams))
                    self._events.append(OutgoingStreamsReset(streams))
            elif isinstance(param, RECONFIG_REQUESTS):
                response, reset = transfer.reconfig.handle_request(
                    param, transfer.receiver.cumulative_tsn & MASK)
                responses.append(response)
                if reset is not None:
                    transfer.receiver.reset_streams(reset)
                    self._events.append(StreamsReset(reset))
        if responses:
            self._control.append((self.peer_tag, ReconfigChunk(tuple(responses))))

    def _peer_shutdown(self, chunk: ShutdownChunk, now: float) -> None:
        """Handle SHUTDOWN (§9.2): acknowledge up to its TSN, then SHUTDOWN ACK when idle."""
        if self.state in (AssociationState.ESTABLISHED, AssociationState.SHUTDOWN_PENDING) \
                and self.transfer is not None:
            transmitter = self.transfer.transmitter
            window = transmitter.peer_rwnd + transmitter.flight_size
            transmitter.handle_sack(SackChunk(chunk.cumulative_tsn_ack, window), now)
            self.state = AssociationState.SHUTDOWN_RECEIVED
            self._finish_sending(now)
        elif self.state == AssociationState.SHUTDOWN_SENT:
            self._control.append((self.peer_tag, ShutdownAckChunk()))
            self.state = AssociationState.SHUTDOWN_ACK_SENT
            self._t2, self._t2_count = now + self.rto.rto, 0

    def _unrecognised(self, chunk: UnknownChunk) -> bool:
        """Act on an unknown chunk by its two high type bits (§3.2); False stops the packet."""
        action = chunk.type >> 6
        if action & 1:
            cause = ErrorCause(CauseCode.UNRECOGNIZED_CHUNK_TYPE, chunk.encode())
            self._control.append((self.peer_tag, ErrorChunk((cause,))))
        self._drop("unrecognised-chunk")
        return action >= 2

    def handle_timer(self, now: float) -> None:
        """Run every timer whose deadline has passed (T1, T2, T3, HEARTBEAT)."""
        if self._t1 is not None and now >= self._t1:
            self._t1_expired(now)
        if self._t2 is not None and now >= self._t2:
            self._t2_expired(now)
        transmitter = self.transfer.transmitter if self.transfer is not None else None
        if transmitter is not None and transmitter.t3_rtx is not None and now >= transmitter.t3_rtx:
            transmitter.handle_t3(now)
            if transmitter.timeouts > self.config.max_retransmits:
                self.abort("retransmission limit reached")
        if self._heartbeat is not None and now >= self._heartbeat:
            self._send_heartbeat(now)

    def _t1_expired(self, now: float) -> None:
        self._t1_count += 1
        if self._t1_count > self.config.max_init_retransmits:
            self._close(AssociationAborted("no answer to INIT / COOKIE ECHO"))
            return
        if self.state == AssociationState.COOKIE_WAIT:
            self._control.append((0, self._init_chunk()))
        elif self.state == AssociationState.COOKIE_ECHOED and self._cookie_echo is not None:
            self._control.append((self.peer_tag, self._cookie_echo))
        backoff = self.config.rto_initial * (2 ** self._t1_count)
        self._t1 = now + min(backoff, self.config.rto_max)

    def _t2_expired(self, now: float) -> None:
        self._t2_count += 1
        if self._t2_count > self.config.max_retransmits:
            self.abort("no answer to SHUTDOWN")
            return
        self.rto.back_off()
        if self.state == AssociationState.SHUTDOWN_SENT and self.transfer is not None:
            self._control.append((self.peer_tag,
                                  ShutdownChunk(self.transfer.receiver.cumulative_tsn & MASK)))
        elif self.state == AssociationState.SHUTDOWN_ACK_SENT:
            self._control.append((self.peer_tag, ShutdownAckChunk()))
        self._t2 = now + self.rto.rto

    def _send_heartbeat(self, now: float) -> None:
        """Probe an idle peer (§8.3); too many unanswered probes abort."""
        if self._heartbeat_nonce is not None:
            self._heartbeat_misses += 1
            if self._heartbeat_misses > self.config.max_retransmits:
                self.abort("peer unreachable (heartbeats unanswered)")
                return
        self._heartbeat_nonce = self.random(8)
        info = HeartbeatInfo(_HEARTBEAT_INFO.pack(now, self._heartbeat_nonce))
        self._control.append((self.peer_tag, HeartbeatChunk((info,))))
        self._heartbeat = now + self.config.heartbeat_interval + self.rto.rto

    def _heartbeat_acknowledged(self, chunk: HeartbeatAckChunk, now: float) -> None:
        info = next((p for p in chunk.parameters if isinstance(p, HeartbeatInfo)), None)
        if info is None or len(info.info) != _HEARTBEAT_INFO.size or self._heartbeat_nonce is None:
            return
        sent, nonce = _HEARTBEAT_INFO.unpack(info.info)
        if hmac.compare_digest(nonce, self._heartbeat_nonce) and sent <= now:
            self.rto.observe(now - sent)
            self._heartbeat_nonce = None
            self._heartbeat_misses = 0

    # -- the handshake's decisions (realtime.sctp.handshake), applied ----------

    def _view(self) -> HandshakeView:
        return HandshakeView(self.state, self.local_tag, self.peer_tag, self.local_initial_tsn)

    def _apply(self, decision: Decision, now: float) -> bool:
        """Carry out a handshake decision; return False if the packet is to be dropped."""
        if isinstance(decision, Drop):
            self._drop(decision.reason)
            return False
        if isinstance(decision, AnswerInit):
            self._control.append((decision.tag, decision.init_ack))
        elif isinstance(decision, EchoCookie):
            self.peer_tag = decision.peer_tag
            self._peer_init = decision.init_ack
            self._cookie_echo = decision.echo
            self._control.append((self.peer_tag, decision.echo))
            self.state = AssociationState.COOKIE_ECHOED
            self._t1, self._t1_count = now + self.config.rto_initial, 0
        elif isinstance(decision, Establish):
            cookie = decision.cookie
            self.local_tag, self.peer_tag = cookie.local_tag, cookie.peer_tag
            self._establish(cookie.local_initial_tsn, cookie.peer_initial_tsn,
                            cookie.peer_a_rwnd, cookie.features,
                            AssociationRestarted() if decision.restarted
                            else AssociationEstablished())
            self._control.append((self.peer_tag, CookieAckChunk()))
        elif isinstance(decision, AcknowledgeCookie):
            self.peer_tag = decision.peer_tag
            self._control.append((self.peer_tag, CookieAckChunk()))
        return True

    # -- internals ---------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def _random32(self) -> int:
        return int.from_bytes(self.random(4), "big")

    def _nonzero32(self) -> int:
        while not (value := self._random32()):
            pass
        return value

    def _init_chunk(self) -> InitChunk:
        config = self.config
        return InitChunk(self.local_tag, config.a_rwnd, config.streams, config.streams,
                         self.local_initial_tsn, EXTENSION_PARAMETERS)

    def _establish(self, local_tsn: int, peer_tsn: int, peer_rwnd: int, features: int,
                   event: Event) -> None:
        """Create the transmit and receive halves and enter ESTABLISHED."""
        config = self.config
        self.local_initial_tsn = local_tsn
        self.rto = RtoEstimator(config.rto_initial, config.rto_min, config.rto_max)
        self.transfer = DataTransfer(
            Transmitter(local_tsn, config.mtu, peer_rwnd, self.rto),
            Receiver(peer_tsn, config.a_rwnd, config.max_message_size),
            StreamReconfiguration(local_tsn, peer_tsn))
        self.peer_forward_tsn = bool(features & FEATURE_FORWARD_TSN)
        self.state = AssociationState.ESTABLISHED
        self._t1 = self._t2 = None
        self._peer_init = self._cookie_echo = self._heartbeat_nonce = None
        self._heartbeat = None
        self._events.append(event)

    def _close(self, event: Event) -> None:
        """Forget the association and report ``event``."""
        self.state = AssociationState.CLOSED
        self.transfer = None
        self._t1 = self._t2 = self._heartbeat = None
        self._events.append(event)

    def _finish_sending(self, now: float) -> None:
        """Send SHUTDOWN or SHUTDOWN ACK once everything we sent is acknowledged."""
        transfer = self.transfer
        if transfer is None or not transfer.transmitter.idle:
            return
        if self.state == AssociationState.SHUTDOWN_PENDING:
            self._control.append((self.peer_tag,
                                  ShutdownChunk(transfer.receiver.cumulative_tsn & MASK)))
            self.state = AssociationState.SHUTDOWN_SENT
        elif self.state == AssociationState.SHUTDOWN_RECEIVED:
            self._control.append((self.peer_tag, ShutdownAckChunk()))
            self.state = AssociationState.SHUTDOWN_ACK_SENT
        else:
            return
        self._t2, self._t2_count = now + self.rto.rto, 0


def _describe(causes: tuple[ErrorCause, ...]) -> str:
    """Return a readable reason for an ABORT's causes."""
    parts = []
    for cause in causes:
        try:
            name = CauseCode(cause.code).name.lower().replace("_", " ")
        except ValueError:
            name = f"cause {cause.code}"
        text = cause.info.decode("utf-8", "replace").strip("\0") if cause.code in (
            CauseCode.USER_INITIATED_ABORT, CauseCode.PROTOCOL_VIOLATION) else ""
        parts.append(f"{name}: {text}" if text else name)
    return "; ".join(parts) or "aborted by peer"
