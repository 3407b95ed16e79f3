"""
TURN's error codes and the attribute set a TURN server understands.

The error codes a TURN server answers with (RFC 8489 §14.8, RFC 8656 §19),
each with the reason phrase the RFCs suggest, and when this server uses it:

====  ==============================  =========================================
code  reason                          sent when
====  ==============================  =========================================
400   Bad Request                     a required attribute is missing or bad
401   Unauthorized                    no MESSAGE-INTEGRITY, unknown user, bad MI
403   Forbidden                       the peer address is refused by policy
420   Unknown Attribute               a comprehension-required attribute we lack
437   Allocation Mismatch             no allocation (or a second Allocate)
438   Stale Nonce                     the NONCE expired or is not ours
440   Address Family not Supported    no relay address of the requested family
441   Wrong Credentials               another username than the allocation's
442   Unsupported Transport Protocol  REQUESTED-TRANSPORT is not UDP (RFC 6062)
443   Peer Address Family Mismatch    peer family differs from the relay's
486   Allocation Quota Reached        the username has too many allocations
508   Insufficient Capacity           no relay port, bad reservation, peer rate
====  ==============================  =========================================
"""

from __future__ import annotations

from realtime.stun.binding import PROCESSED_ATTRIBUTES
from realtime.stun.registry import StunAttributeType as T

REASONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    486: "Allocation Quota Reached",
    508: "Insufficient Capacity",
}
"""Error code -> reason phrase (RFC 8489 §14.8, RFC 8656 §19)."""

TURN_ATTRIBUTES = PROCESSED_ATTRIBUTES | frozenset({
    T.CHANNEL_NUMBER, T.LIFETIME, T.XOR_PEER_ADDRESS, T.DATA, T.REQUESTED_ADDRESS_FAMILY,
    T.EVEN_PORT, T.REQUESTED_TRANSPORT, T.DONT_FRAGMENT, T.RESERVATION_TOKEN,
})
"""Comprehension-required attribute types a TURN request may carry without a 420."""
