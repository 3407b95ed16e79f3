"""
Replay a coturn capture into :class:`~realtime.turn.server.TurnServer`.

Every client->server payload of ``../shared/pcaps/generated/turn/*.pcap``
(UDP datagrams, TCP streams re-framed) is fed to our machine at its capture
time, and every peer->relay datagram to the relay our machine chose for the
same allocation (coturn's relayed address is mapped to ours when both
answer an Allocate).  The result is a list of lines, one per request::

    <client> <METHOD> request -> coturn: <class> [code] | ours: <class> [code]

plus the number of datagrams each server relayed to peers and to clients.
Transaction ids and nonces are not compared (:class:`AnyNonce`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from realtime.errors import DecodeError
from realtime.stun.attributes import IPV4, IPV6, ErrorCode, ReservationToken, XorRelayedAddress
from realtime.stun.message import StunClass, StunMessage, is_stun, method_name
from realtime.stun.stream import StreamFramer
from realtime.testing.captures import read_capture
from realtime.turn.allocation import RelayPortPool
from realtime.turn.credentials import AnyNonce, CredentialChain, SharedSecretUsers, StaticUsers
from realtime.turn.policy import PeerPolicy
from realtime.turn.server import TurnConfig, TurnServer

SERVER_PORTS = {3478}
RELAY_PORTS = range(61000, 61051)


def capture_server() -> TurnServer:
    """Return a machine configured like the capture's coturn (both credential modes)."""
    users = CredentialChain([StaticUsers({"alice": "wonderland"}),
                             SharedSecretUsers("north-shared-secret")])
    pool = RelayPortPool({IPV4: "127.0.0.1", IPV6: "::1"}, 61000, 61050)
    counter = iter(range(1, 1 << 30))
    return TurnServer(users, pool, config=TurnConfig(realm="example.org"), nonces=AnyNonce(),
                      policy=PeerPolicy(allow_loopback=True),
                      random=lambda n: next(counter).to_bytes(n, "big"))


def _answer(payload: bytes) -> tuple[bytes, str] | None:
    try:
        message = StunMessage.decode(payload)
    except Exception:
        return None
    if message.message_class not in (StunClass.SUCCESS, StunClass.ERROR):
        return None
    error = message.find(ErrorCode)
    text = message.message_class.name.lower() + (f" {error.code}" if error else "")
    return message.transaction_id, text


def _relayed(message: StunMessage) -> tuple[str, int] | None:
    relayed = message.find(XorRelayedAddress)
    return None if relayed is None else (relayed.address, relayed.port)


def _coturn_tokens(path: Path) -> list[bytes]:
    tokens = []
    for record in read_capture(path):
        if record.src[1] in SERVER_PORTS and is_stun(record.payload):
            token = StunMessage.decode(record.payload).find(ReservationToken)
            if token is not None:
                tokens.append(token.value)
    return tokens


def replay(path: Path) -> list[str]:
    """Return the comparison lines of one capture (see the module docstring).

    The RESERVATION-TOKENs our machine hands out are coturn's, in order, since
    the client sends them back under MESSAGE-INTEGRITY and cannot be rewritten.
    """
    server = capture_server()
    tokens = _coturn_tokens(path)
    counter = iter(range(1 << 20, 1 << 30))
    server.random = lambda n: tokens.pop(0) if n == 8 and tokens else next(counter).to_bytes(n, "big")
    framers: dict[tuple, StreamFramer] = {}
    expected_seq: dict[tuple, int] = {}
    requests: list[tuple[str, bytes, str]] = []  # (client, tid, method)
    coturn: dict[bytes, str] = {}
    ours: dict[bytes, str] = {}
    relay_map: dict[tuple[str, int], tuple[str, int]] = {}
    pending_relay: dict[tuple, tuple[str, int]] = {}
    counts: Counter[str] = Counter()

    def collect(now: float) -> None:
        for data, (socket, addr) in server.datagrams_to_send(now):
            if type(socket) is tuple:
                counts["ours to peers"] += 1
                continue
            answer = _answer(data)
            if answer is None:
                counts["ours to clients"] += 1
                continue
            ours[answer[0]] = answer[1]
            message = StunMessage.decode(data)
            relayed = _relayed(message)
            if relayed is not None:
                route = (socket, addr)
                coturn_relay = pending_relay.pop(route, None)
                if coturn_relay is not None:
                    relay_map[coturn_relay] = relayed
                else:
                    pending_relay[route] = relayed

    def note_coturn_relay(route: tuple, relayed: tuple[str, int]) -> None:
        ours_relay = pending_relay.pop(route, None)
        if ours_relay is not None:
            relay_map[relayed] = ours_relay
        else:
            pending_relay[route] = relayed

    def client_frame(route: tuple, payload: bytes, now: float) -> None:
        if payload[0] < 0x40:
            try:
                message = StunMessage.decode(payload)
            except Exception:
                message = None
            if message is not None and message.message_class == StunClass.REQUEST:
                requests.append((f"{route[1][0]}:{route[1][1]}", message.transaction_id,
                                 method_name(message.method)))
        try:
            server.receive_datagram(payload, route, now)
        except DecodeError:
            counts["ours dropped malformed"] += 1  # what the adapter does
        collect(now)

    def server_frame(route: tuple, payload: bytes) -> None:
        answer = _answer(payload)
        if answer is None:
            counts["coturn to clients"] += 1
            return
        coturn[answer[0]] = answer[1]
        relayed = _relayed(StunMessage.decode(payload))
        if relayed is not None:
            note_coturn_relay(route, relayed)

    for record in read_capture(path):
        src, dst = record.src, record.dst
        now = record.time
        server.handle_timer(now)
        if record.transport == "udp":
            if dst[1] in SERVER_PORTS:
                client_frame(("udp", src), record.payload, now)
            elif src[1] in SERVER_PORTS:
                server_frame(("udp", dst), record.payload)
            elif dst[1] in RELAY_PORTS and src[1] not in RELAY_PORTS or (
                    dst in relay_map and src[1] in RELAY_PORTS):
                relay = relay_map.get(dst)
                if relay is not None:
                    server.receive_datagram(record.payload, (relay, src), now)
                    collect(now)
            if src[1] in RELAY_PORTS:
                counts["coturn to peers"] += 1
        elif record.transport == "tcp" and record.payload:
            key = (src, dst)
            seq = record.tcp_seq or 0
            if key in expected_seq and ((seq - expected_seq[key]) & 0xFFFFFFFF) >= 0x80000000:
                continue  # a retransmission
            expected_seq[key] = (seq + len(record.payload)) & 0xFFFFFFFF
            framer = framers.setdefault(key, StreamFramer())
            client = dst[1] in SERVER_PORTS
            route = (f"tcp#{src[1]}", src) if client else (f"tcp#{dst[1]}", dst)
            try:
                frames = framer.feed(record.payload)
            except Exception:
                continue  # RFC 6062 data connection: raw bytes after ConnectionBind
            for frame in frames:
                if client:
                    client_frame(route, frame, now)
                else:
                    server_frame(route, frame)
    lines = [f"{client} {method} request -> coturn: {coturn.get(tid, 'none')} | "
             f"ours: {ours.get(tid, 'none')}" for client, tid, method in requests]
    for key in ("coturn to peers", "ours to peers", "coturn to clients", "ours to clients"):
        lines.append(f"relayed {key}: {counts[key]}")
    return lines
