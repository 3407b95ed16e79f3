"""
The IANA "STUN Attributes" registry as data.

Every attribute type of RFC 8489 (STUN), RFC 8656 (TURN), RFC 8445 (ICE),
RFC 5780 (NAT behaviour discovery), RFC 6062 (TURN TCP relay) and the
classic RFC 3489 attributes is a member of :class:`StunAttributeType`.  The
type space is split in two halves (RFC 8489 §18.3)::

    0x0000-0x7FFF  comprehension-required: an agent that does not know the
                   type must reject the request (420 Unknown Attribute)
    0x8000-0xFFFF  comprehension-optional: an unknown one is ignored

Each half is further split into IETF-review (0x0000-0x3FFF, 0x8000-0xBFFF)
and expert-review (0x4000-0x7FFF, 0xC000-0xFFFF) ranges; that split does not
change how an agent treats an attribute.
"""

from __future__ import annotations

from enum import IntEnum


class StunAttributeType(IntEnum):
    """Attribute type codes, each commented with the RFC that defines it."""

    MAPPED_ADDRESS = 0x0001  # RFC 8489 §14.1 (RFC 3489 §11.2.1)
    RESPONSE_ADDRESS = 0x0002  # RFC 3489 §11.2.2 (reserved by RFC 5389)
    CHANGE_REQUEST = 0x0003  # RFC 5780 §7.2 (RFC 3489 §11.2.4)
    SOURCE_ADDRESS = 0x0004  # RFC 3489 §11.2.5 (reserved by RFC 5389)
    CHANGED_ADDRESS = 0x0005  # RFC 3489 §11.2.3 (reserved by RFC 5389)
    USERNAME = 0x0006  # RFC 8489 §14.3
    PASSWORD = 0x0007  # RFC 3489 §11.2.7 (reserved by RFC 5389)
    MESSAGE_INTEGRITY = 0x0008  # RFC 8489 §14.5
    ERROR_CODE = 0x0009  # RFC 8489 §14.8
    UNKNOWN_ATTRIBUTES = 0x000A  # RFC 8489 §14.9
    REFLECTED_FROM = 0x000B  # RFC 3489 §11.2.11 (reserved by RFC 5389)
    CHANNEL_NUMBER = 0x000C  # RFC 8656 §18.1
    LIFETIME = 0x000D  # RFC 8656 §18.2
    BANDWIDTH = 0x0010  # reserved by RFC 8656 §18 (TURN drafts)
    XOR_PEER_ADDRESS = 0x0012  # RFC 8656 §18.3
    DATA = 0x0013  # RFC 8656 §18.4
    REALM = 0x0014  # RFC 8489 §14.9
    NONCE = 0x0015  # RFC 8489 §14.10
    XOR_RELAYED_ADDRESS = 0x0016  # RFC 8656 §18.5
    REQUESTED_ADDRESS_FAMILY = 0x0017  # RFC 8656 §18.6
    EVEN_PORT = 0x0018  # RFC 8656 §18.7
    REQUESTED_TRANSPORT = 0x0019  # RFC 8656 §18.8
    DONT_FRAGMENT = 0x001A  # RFC 8656 §18.9
    ACCESS_TOKEN = 0x001B  # RFC 7635 §6.2
    MESSAGE_INTEGRITY_SHA256 = 0x001C  # RFC 8489 §14.6
    PASSWORD_ALGORITHM = 0x001D  # RFC 8489 §14.12
    USERHASH = 0x001E  # RFC 8489 §14.4
    XOR_MAPPED_ADDRESS = 0x0020  # RFC 8489 §14.2
    TIMER_VAL = 0x0021  # reserved by RFC 8656 §18 (TURN drafts)
    RESERVATION_TOKEN = 0x0022  # RFC 8656 §18.10
    PRIORITY = 0x0024  # RFC 8445 §16.1
    USE_CANDIDATE = 0x0025  # RFC 8445 §16.1
    PADDING = 0x0026  # RFC 5780 §7.6
    RESPONSE_PORT = 0x0027  # RFC 5780 §7.5
    CONNECTION_ID = 0x002A  # RFC 6062 §6.2.1
    ADDITIONAL_ADDRESS_FAMILY = 0x8000  # RFC 8656 §18.11
    ADDRESS_ERROR_CODE = 0x8001  # RFC 8656 §18.12
    PASSWORD_ALGORITHMS = 0x8002  # RFC 8489 §14.11
    ALTERNATE_DOMAIN = 0x8003  # RFC 8489 §14.16
    ICMP = 0x8004  # RFC 8656 §18.13
    SOFTWARE = 0x8022  # RFC 8489 §14.14
    ALTERNATE_SERVER = 0x8023  # RFC 8489 §14.15
    TRANSACTION_TRANSMIT_COUNTER = 0x8025  # RFC 7982 §3
    CACHE_TIMEOUT = 0x8027  # RFC 5780 §7.7
    FINGERPRINT = 0x8028  # RFC 8489 §14.7
    ICE_CONTROLLED = 0x8029  # RFC 8445 §16.1
    ICE_CONTROLLING = 0x802A  # RFC 8445 §16.1
    RESPONSE_ORIGIN = 0x802B  # RFC 5780 §7.3
    OTHER_ADDRESS = 0x802C  # RFC 5780 §7.4
    ECN_CHECK_STUN = 0x802D  # RFC 6679 §7.2.2
    THIRD_PARTY_AUTHORIZATION = 0x802E  # RFC 7635 §6.1
    MOBILITY_TICKET = 0x8030  # RFC 8016 §3.1


_NAMES = {member.value: member.name.replace("_", "-") for member in StunAttributeType}


def is_comprehension_required(attribute_type: int) -> bool:
    """Return True if ``attribute_type`` is in 0x0000-0x7FFF (RFC 8489 §18.3)."""
    return attribute_type < 0x8000


def attribute_name(attribute_type: int) -> str:
    """Return the registry name ("XOR-MAPPED-ADDRESS") or ``0xNNNN`` if unregistered."""
    return _NAMES.get(attribute_type) or f"0x{attribute_type:04x}"
