"""A minimal TURN client for the tests: builds requests, signs them, reads answers."""

from __future__ import annotations

import itertools

from realtime.stun.attributes import (
    IPV4, ErrorCode, Nonce, Realm, RequestedTransport, Username, XorRelayedAddress,
)
from realtime.stun.credentials import long_term_key
from realtime.stun.message import StunClass, StunMessage, StunMethod, encode_message
from realtime.turn.allocation import RelayPortPool
from realtime.turn.credentials import StaticUsers
from realtime.turn.policy import PeerPolicy
from realtime.turn.server import TurnConfig, TurnServer

REALM = "example.org"
CLIENT = ("udp", ("192.0.2.10", 40000))
PEER = ("9.9.9.9", 5000)  # a global address: documentation ranges are refused

_ids = itertools.count(1)


def tid() -> bytes:
    """Return a fresh, predictable transaction id."""
    return next(_ids).to_bytes(12, "big")


def make_server(hosts: dict[int, str] | None = None, high: int = 50009,
                **config) -> tuple[TurnServer, RelayPortPool]:
    """Return a server with users alice/wonderland and bob/builder and a small relay pool.

    :param hosts: relay host per family (default: IPv4 203.0.113.1 only).
    :param high: the last relay port (the first is 50000).
    """
    pool = RelayPortPool(hosts or {IPV4: "203.0.113.1"}, 50000, high)
    counter = itertools.count(1)
    server = TurnServer(
        StaticUsers({"alice": "wonderland", "bob": "builder"}), pool,
        config=TurnConfig(realm=REALM, **config), nonces=None,
        policy=PeerPolicy(), random=lambda n: next(counter).to_bytes(n, "big"),
    )
    return server, pool


class Client:
    """Talk to ``server`` from ``route`` as ``username``."""

    def __init__(self, server: TurnServer, route=CLIENT, username="alice", password="wonderland"):
        self.server = server
        self.route = route
        self.username = username
        self.key = long_term_key(username, REALM, password)
        self.nonce = ""

    def raw(self, method: int, attributes=(), *, sign=True, transaction_id=None,
            fingerprint=True, key=None) -> bytes:
        """Return a request, with USERNAME/REALM/NONCE/MI when ``sign``."""
        attributes = list(attributes)
        if sign:
            attributes += [Username(self.username), Realm(REALM), Nonce(self.nonce)]
        return encode_message(method, StunClass.REQUEST, transaction_id or tid(), attributes,
                              integrity_key=(key or self.key) if sign else None,
                              fingerprint=fingerprint)

    def send(self, data: bytes, now: float) -> list[tuple[bytes, tuple]]:
        """Feed ``data`` and return everything the server sends."""
        self.server.receive_datagram(data, self.route, now)
        return self.server.datagrams_to_send(now)

    def request(self, method: int, attributes=(), now: float = 0.0, **kw) -> StunMessage | None:
        """Send a request and return the decoded answer to us (None if silent)."""
        out = [d for d, r in self.send(self.raw(method, attributes, **kw), now) if r == self.route]
        if not out:
            return None
        answer = StunMessage.decode(out[-1])
        nonce = answer.find(Nonce)
        if nonce is not None:
            self.nonce = nonce.value
        return answer

    def allocate(self, attributes=(RequestedTransport(17),), now: float = 0.0) -> StunMessage:
        """Do the 401 dance and return the final Allocate answer."""
        first = self.request(StunMethod.ALLOCATE, attributes, now, sign=False)
        assert code(first) == 401
        return self.request(StunMethod.ALLOCATE, attributes, now)


def code(message: StunMessage | None) -> int | str:
    """Return the error code, ``"success"`` or ``None``."""
    if message is None:
        return None
    error = message.find(ErrorCode)
    return "success" if message.message_class is StunClass.SUCCESS else error.code


def relayed(message: StunMessage) -> tuple[str, int]:
    """Return the XOR-RELAYED-ADDRESS of an Allocate success."""
    attribute = message.find(XorRelayedAddress)
    return attribute.address, attribute.port
