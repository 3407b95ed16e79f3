"""Build ICE connectivity checks the way a full agent (the browser) does, for tests."""

from __future__ import annotations

from realtime.stun.attributes import (
    IceControlled,
    IceControlling,
    Priority,
    UseCandidate,
    Username,
)
from realtime.stun.message import StunClass, StunMethod, encode_message

LOCAL_UFRAG = "srvA"
LOCAL_PWD = "serverpassword0123456789"  # 24 ice-chars
REMOTE_UFRAG = "brwz"
REMOTE_PWD = "browserpassword012345678"
TIEBREAKER = 0x1111_2222_3333_4444
PEER_TIEBREAKER = 0x5555_6666_7777_8888
ADDR = ("192.0.2.10", 54321)
ADDR6 = ("2001:db8::10", 54322)


def check(
    *,
    username: str | None = f"{LOCAL_UFRAG}:{REMOTE_UFRAG}",
    key: bytes | None = LOCAL_PWD.encode(),
    fingerprint: bool = True,
    use_candidate: bool = False,
    controlling: int | None = PEER_TIEBREAKER,
    controlled: int | None = None,
    priority: int | None = 1853824767,
    transaction_id: bytes = b"transaction1",
    extra: tuple = (),
    method: int = StunMethod.BINDING,
    message_class: StunClass = StunClass.REQUEST,
) -> bytes:
    """Return a Binding request; every knob is a way to make it wrong."""
    attributes: list = []
    if username is not None:
        attributes.append(Username(username))
    if controlling is not None:
        attributes.append(IceControlling(controlling))
    if controlled is not None:
        attributes.append(IceControlled(controlled))
    if use_candidate:
        attributes.append(UseCandidate())
    if priority is not None:
        attributes.append(Priority(priority))
    attributes.extend(extra)
    return encode_message(
        method,
        message_class,
        transaction_id,
        attributes,
        integrity_key=key,
        fingerprint=fingerprint,
    )
