"""A small blocking TURN client over a real UDP socket, for the cluster tests.

Allocate with the long-term credential dance (RFC 8656 §7.2: 401 with REALM and
NONCE, then the signed request), CreatePermission for a peer, and Send
indications to it (RFC 8656 §10.1).  Every answer is decoded by the project's
own STUN codec; nothing here is mocked: the server is a real ``twistd``.
"""

from __future__ import annotations

import os
import socket

from realtime.stun.address import XorPeerAddress
from realtime.stun.attributes import ErrorCode, Nonce, Realm, Username
from realtime.stun.credentials import long_term_key
from realtime.stun.message import StunClass, StunMessage, StunMethod, encode_message
from realtime.stun.relay_attributes import Data, RequestedTransport


class TurnClient:
    """One client 5-tuple towards ``127.0.0.1:port`` with ``username``/``password``."""

    def __init__(self, port: int, username: str, password: str, timeout: float = 2.0) -> None:
        self.server = ("127.0.0.1", port)
        self.username, self.password = username, password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(timeout)
        self.realm = self.nonce = ""

    def close(self) -> None:
        self.sock.close()

    def _request(self, method: int, attributes: list, sign: bool = True) -> StunMessage:
        attributes = list(attributes)
        key = None
        if sign:
            attributes += [Username(self.username), Realm(self.realm), Nonce(self.nonce)]
            key = long_term_key(self.username, self.realm, self.password)
        transaction = os.urandom(12)
        self.sock.sendto(encode_message(method, StunClass.REQUEST, transaction, attributes,
                                        integrity_key=key, fingerprint=True), self.server)
        while True:
            data, _ = self.sock.recvfrom(65535)
            answer = StunMessage.decode(data)
            if answer.transaction_id == transaction:
                break
        if (realm := answer.find(Realm)) is not None:
            self.realm = realm.value
        if (nonce := answer.find(Nonce)) is not None:
            self.nonce = nonce.value
        return answer

    def allocate(self) -> int | str:
        """Allocate a UDP relay: ``"success"`` or the final error code (401: refused)."""
        attributes = [RequestedTransport(17)]
        first = self._request(StunMethod.ALLOCATE, attributes, sign=False)
        assert code(first) == 401, first
        answer = self._request(StunMethod.ALLOCATE, attributes)
        if code(answer) == 438:  # stale nonce: once more with the fresh one
            answer = self._request(StunMethod.ALLOCATE, attributes)
        return code(answer)

    def permit(self, peer: tuple[str, int]) -> int | str:
        """CreatePermission for ``peer``'s address."""
        return code(self._request(StunMethod.CREATE_PERMISSION, [XorPeerAddress.of(*peer)]))

    def send(self, peer: tuple[str, int], payload: bytes) -> None:
        """Send ``payload`` to ``peer`` through the relay (a Send indication)."""
        self.sock.sendto(encode_message(
            StunMethod.SEND, StunClass.INDICATION, os.urandom(12),
            [XorPeerAddress.of(*peer), Data(payload)]), self.server)


def code(message: StunMessage) -> int | str:
    """Return ``"success"`` or the error code of an answer."""
    if message.message_class is StunClass.SUCCESS:
        return "success"
    error = message.find(ErrorCode)
    return error.code if error is not None else "unknown"
