"""
The State Cookie: association state carried by the peer, signed by us.

RFC 9260 §5.1.3 lets the side that answers an INIT keep **no state** until
the peer proves it can receive at its address: everything needed to create
the association goes into the State Cookie of the INIT ACK, protected by a
MAC over a secret only we know, and comes back in the COOKIE ECHO (§5.1.5
checks it).  This is what defeats INIT floods (§5.1.3 "the state cookie is
... a means to avoid resource attacks").

Layout of the cookie this stack writes (the peer never parses it)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |               created (IEEE 754 double, seconds)              |
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | local tag | local initial TSN | peer tag | peer initial TSN   |
    | peer a_rwnd | local tie-tag | peer tie-tag          (4 bytes each)
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | peer outbound streams         | peer inbound streams          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | features (bit 0: FORWARD TSN, bit 1: RE-CONFIG)               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                HMAC-SHA256 of all of the above                |
    |                          (32 bytes)                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The tie-tags (§5.2.2) are the tags of the association that existed when
the INIT arrived; §5.2.4 compares them to tell a peer restart from a stale
or forged cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

_FIELDS = struct.Struct("!dIIIIIIIHHI")
MAC_LENGTH = 32
COOKIE_LENGTH = _FIELDS.size + MAC_LENGTH
"""Bytes in every cookie this module writes."""

FEATURE_FORWARD_TSN = 1
FEATURE_RECONFIG = 2


@dataclass(frozen=True, slots=True)
class CookieState:
    """What an association needs to start, as sealed into a State Cookie."""

    created: float
    local_tag: int
    local_initial_tsn: int
    peer_tag: int
    peer_initial_tsn: int
    peer_a_rwnd: int
    local_tie_tag: int
    peer_tie_tag: int
    peer_outbound_streams: int
    peer_inbound_streams: int
    features: int = 0

    def seal(self, secret: bytes) -> bytes:
        """Return the cookie bytes: the fields and their HMAC-SHA256 under ``secret``."""
        fields = _FIELDS.pack(
            self.created, self.local_tag, self.local_initial_tsn, self.peer_tag,
            self.peer_initial_tsn, self.peer_a_rwnd, self.local_tie_tag, self.peer_tie_tag,
            self.peer_outbound_streams, self.peer_inbound_streams, self.features)
        return fields + hmac.new(secret, fields, hashlib.sha256).digest()

    @classmethod
    def open(cls, cookie: bytes, secret: bytes, now: float, lifetime: float
             ) -> "CookieState | None":
        """Return the state in ``cookie`` if its MAC is ours and it is fresh, else None.

        A cookie is fresh for ``lifetime`` seconds after it was created
        (RFC 9260 §5.1.5 step 3, Valid.Cookie.Life).
        """
        if len(cookie) != COOKIE_LENGTH:
            return None
        fields, mac = cookie[:_FIELDS.size], cookie[_FIELDS.size:]
        if not hmac.compare_digest(mac, hmac.new(secret, fields, hashlib.sha256).digest()):
            return None
        state = cls(*_FIELDS.unpack(fields))
        if not state.created <= now <= state.created + lifetime:
            return None
        return state
