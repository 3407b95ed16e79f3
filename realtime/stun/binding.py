"""
The stateless STUN Binding service of the media and TURN ports ("stun:" URLs).

A Binding request asks "what transport address do you see me coming from?"
(RFC 8489 §3).  The server answers from the datagram's source address and
keeps no state, so this is a pure function of (bytes, source) -> bytes::

    client                                   server
      |  Binding request  (tid T)               |
      |---------------------------------------->|  source seen: A:p
      |  Binding success  (tid T)               |
      |   XOR-MAPPED-ADDRESS = A:p              |
      |   SOFTWARE, FINGERPRINT (if request had)|
      |<----------------------------------------|

What :func:`answer_binding` does with each input (RFC 8489 §6.3):

=====================================  ==================================
input                                  answer
=====================================  ==================================
Binding request                        success, XOR-MAPPED-ADDRESS
classic RFC 3489 Binding request       success, MAPPED-ADDRESS, the 16-
(no magic cookie, §12.2)               byte id copied (cookie field too)
request with comprehension-required    420 Unknown Attribute listing them
attributes we do not process           in UNKNOWN-ATTRIBUTES (§6.3.1.1)
(incl. RESPONSE-PORT, RESPONSE-ADDRESS,
and a CHANGE-REQUEST that asks for a
change: §12.2, RFC 5780 §7.2)
Binding indication (keepalive)         None (§6.3.2)
responses, other methods               None
malformed bytes                        raises DecodeError
=====================================  ==================================

FINGERPRINT is added when the request carried one, because a client that
multiplexes STUN with other protocols relies on it (§7).  Classic responses
get neither SOFTWARE nor FINGERPRINT: an RFC 3489 client knows neither.
Requests are not authenticated here: a Binding request to a "stun:" server
carries no credentials, and ICE connectivity checks go to the ICE agent.

Deliberate choice: RFC 5780 attributes that would make us answer from
another address or to another port are refused with 420, so the service can
never be used to reflect traffic at a third party.  A CHANGE-REQUEST with
both flags clear asks for nothing and is answered normally: RFC 3489-era
clients (Debian's ``stun``) put one in every request.
"""

from __future__ import annotations

from realtime.stun.attributes import (
    Attribute, ChangeRequest, ErrorCode, RawAttribute, Software, UnknownAttributes, XorMappedAddress,
    MappedAddress, StunAttributeType as T, is_comprehension_required,
)
from realtime.stun.message import StunClass, StunMessage, StunMethod, encode_message

PROCESSED_ATTRIBUTES = frozenset({
    T.MAPPED_ADDRESS, T.USERNAME, T.MESSAGE_INTEGRITY, T.ERROR_CODE,
    T.UNKNOWN_ATTRIBUTES, T.REALM, T.NONCE, T.MESSAGE_INTEGRITY_SHA256,
    T.PASSWORD_ALGORITHM, T.USERHASH, T.XOR_MAPPED_ADDRESS, T.PRIORITY,
    T.USE_CANDIDATE, T.PADDING,
})
"""Comprehension-required types a Binding request may carry without a 420.

Credentials are accepted and ignored (the service does not authenticate),
ICE's PRIORITY/USE-CANDIDATE are ignored, PADDING (RFC 5780 §7.6) only
makes the request larger.
"""


def unknown_required(message: StunMessage, processed: frozenset[int] = PROCESSED_ATTRIBUTES) -> tuple[int, ...]:
    """Return the comprehension-required attribute types of ``message`` not in ``processed``.

    Each type once, in the order first seen.
    """
    unknown: list[int] = []
    for attribute in message.attributes:
        code = attribute.type
        if is_comprehension_required(code) and code not in processed and code not in unknown:
            unknown.append(code)
    return tuple(unknown)


def _host(address: str) -> str:
    return address.split("%", 1)[0]  # drop an IPv6 zone index ("fe80::1%eth0")


def answer_binding(data: bytes, source: tuple[str, int], *, software: str | None = "realtime") -> bytes | None:
    """Return the response to a Binding request from ``source``, or None.

    :param data: one received datagram (or one framed message from a stream).
    :param source: the ``(host, port)`` the datagram came from.
    :param software: SOFTWARE value of responses, None for none.
    :raises realtime.errors.DecodeError: ``data`` is not a well-formed STUN message.
    """
    request = StunMessage.decode(data)
    if request.method != StunMethod.BINDING or request.message_class != StunClass.REQUEST:
        return None
    classic = request.classic
    with_fingerprint = not classic and any(a.type == T.FINGERPRINT for a in request.attributes)
    tail: list[Attribute | RawAttribute] = []
    if software is not None and not classic:
        tail.append(Software(software))
    unknown = unknown_required(request)
    if T.CHANGE_REQUEST in unknown:
        change = request.find(ChangeRequest)
        if change is not None and not (change.change_ip or change.change_port):
            unknown = tuple(code for code in unknown if code != T.CHANGE_REQUEST)
    if unknown:
        listed = unknown + unknown[-1:] if classic and len(unknown) % 2 else unknown  # RFC 3489 §11.2.10
        attributes: list[Attribute | RawAttribute] = [
            ErrorCode(420, "Unknown Attribute"), UnknownAttributes(listed), *tail,
        ]
        message_class = StunClass.ERROR
    else:
        host, port = _host(source[0]), source[1]
        mapped = MappedAddress.of(host, port) if classic else XorMappedAddress.of(host, port)
        attributes = [mapped, *tail]
        message_class = StunClass.SUCCESS
    return encode_message(StunMethod.BINDING, message_class, request.transaction_id,
                          attributes, fingerprint=with_fingerprint)
