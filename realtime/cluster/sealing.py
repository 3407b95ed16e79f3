"""
A session's media keys in the directory, sealed: what lets another node resume it.

When a PeerConnection's DTLS handshake completes, both ends hold the SRTP
keying material RFC 5764 §4.2 exports from it::

    client_write_SRTP_master_key | server_write_SRTP_master_key |
    client_write_SRTP_master_salt | server_write_SRTP_master_salt

With those (and the negotiated protection profile) any node can protect and
unprotect the client's media exactly as the node that ran the handshake did,
so a client whose node died keeps its PeerConnection when its packets reach
another node (docs/cascading.md, "A client whose PeerConnection lived on a
lost node").  SRTP also needs *continuity*:

* our outgoing streams: the subscriber has seen sequence numbers up to some
  value on each SSRC we send; its receiver accepts a packet only if its index
  is ahead (RFC 3711 §3.3.2's replay check) and guesses the rollover counter
  from the sequence number (§3.3.1, Appendix A).  So the record carries, per
  SSRC we send, the extended sequence number and timestamp last sent
  (refreshed every few seconds); the resuming node starts ahead of them by
  what could have been sent since (:data:`MAX_PACKET_RATE` per second);
* the client's streams: their rollover counters, from the extended highest
  sequence number we received per SSRC (same refresh).

None of that may sit in Redis in clear: whoever reads it could decrypt the
call and inject media into it.  The state is sealed with AES-256-GCM
(NIST SP 800-38D) under a key derived from the cluster secret with HKDF
(RFC 5869); each write takes a fresh 96-bit random nonce, and the session id
is the associated data, so a sealed blob moved to another session's record
does not open.  The text stored is ``base64(nonce | ciphertext | tag)``.

Pure code: the clock and the randomness are passed in.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from realtime.errors import DecodeError

__all__ = ["MediaKeys", "SealError", "Sealer", "seal_key", "MAX_PACKET_RATE", "MAX_SEALED"]

#: packets per second one SSRC of ours is assumed never to exceed (the resume jump)
MAX_PACKET_RATE = 1000
#: largest sealed text accepted (a session sends at most 64 tracks, 3 SSRCs each)
MAX_SEALED = 16 * 1024
_NONCE = 12
_INFO = b"realtime cluster: sealed SRTP keys v1"


class SealError(DecodeError):
    """The sealed text is malformed, was sealed under another key or for another session."""


def seal_key(secret: bytes) -> bytes:
    """Return the 32-octet AES-256-GCM key derived from the cluster secret (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)


@dataclass(frozen=True, slots=True)
class MediaKeys:
    """What a node needs to carry on a connected PeerConnection it did not set up.

    ``local_*`` is what *we* (the SFU) write with, ``remote_*`` what the client
    writes with (RFC 5764 §4.2's client/server halves, sorted by our DTLS role).
    ``sent``: per SSRC we send, ``(ssrc, extended seq, timestamp)`` at ``written``;
    ``received``: per SSRC the client sends, ``(ssrc, extended highest seq)``;
    ``rtcp_sent``: per SSRC we send RTCP under, ``(ssrc, SRTCP packets protected)``
    (the client's SRTCP replay window, RFC 3711 §3.4, is ahead of a fresh index).
    """

    profile: str
    local_key: bytes
    local_salt: bytes
    remote_key: bytes
    remote_salt: bytes
    written: float
    sent: tuple[tuple[int, int, int], ...] = ()
    received: tuple[tuple[int, int], ...] = ()
    rtcp_sent: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> bytes:
        return json.dumps({
            "profile": self.profile, "written": self.written,
            "keys": [self.local_key.hex(), self.local_salt.hex(),
                     self.remote_key.hex(), self.remote_salt.hex()],
            "sent": [list(s) for s in self.sent], "received": [list(r) for r in self.received],
            "rtcp": [list(r) for r in self.rtcp_sent],
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> MediaKeys:
        """Parse :meth:`to_json`'s output; raise :class:`SealError` on anything else."""
        try:
            body = json.loads(data)
            keys = [bytes.fromhex(k) for k in body["keys"]]
            sent = tuple((_u32(s), _u48(n), _u32(t)) for s, n, t in body["sent"])
            received = tuple((_u32(s), _u48(n)) for s, n in body["received"])
            rtcp = tuple((_u32(s), _u32(n)) for s, n in body["rtcp"])
            profile, written = body["profile"], body["written"]
            if not isinstance(profile, str) or type(written) not in (int, float) \
                    or len(keys) != 4 or not all(0 < len(k) <= 32 for k in keys):
                raise ValueError
        except (ValueError, TypeError, KeyError, RecursionError):
            raise SealError("sealed media keys are malformed") from None
        return cls(profile, keys[0], keys[1], keys[2], keys[3], float(written), sent, received,
                   rtcp)


def _u32(value: object) -> int:
    if type(value) is not int or not 0 <= value < 2**32:
        raise ValueError
    return value


def _u48(value: object) -> int:
    if type(value) is not int or not 0 <= value < 2**48:
        raise ValueError
    return value


class Sealer:
    """Seal and open :class:`MediaKeys` under the cluster's key.

    :param secret: the cluster secret every node holds (``REALTIME_CLUSTER_SECRET``).
    :param random: source of the nonces.
    """

    def __init__(self, secret: bytes, random: Callable[[int], bytes] = os.urandom) -> None:
        self._aead = AESGCM(seal_key(secret))
        self.random = random

    def seal(self, session_id: str, keys: MediaKeys) -> str:
        """Return ``keys`` sealed for session ``session_id`` (base64 text)."""
        nonce = self.random(_NONCE)
        sealed = self._aead.encrypt(nonce, keys.to_json(), session_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, session_id: str, text: str) -> MediaKeys:
        """Return the keys sealed in ``text`` for ``session_id``.

        :raises SealError: malformed, tampered with, another key or another session.
        """
        if len(text) > MAX_SEALED:
            raise SealError("sealed media keys are too long")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SealError("sealed media keys are not base64") from None
        if len(raw) < _NONCE + 16:
            raise SealError("sealed media keys are truncated")
        try:
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], session_id.encode())
        except InvalidTag:
            raise SealError("sealed media keys do not open (key, session or tampering)") from None
        return MediaKeys.from_json(plain)
