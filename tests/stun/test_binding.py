"""Tests for the stateless Binding responder (realtime.stun.binding)."""

from __future__ import annotations

import pytest

from realtime.errors import DecodeError
from realtime.stun.attributes import (
    ChangeRequest, ErrorCode, MappedAddress, Padding, RawAttribute, ResponsePort, Software,
    UnknownAttributes, Username, XorMappedAddress,
)
from realtime.stun.binding import answer_binding
from realtime.stun.message import (
    StunClass, StunMessage, StunMethod, check_fingerprint, encode_message,
)

TID = bytes.fromhex("0123456789abcdef01234567")
CLASSIC_TID = bytes.fromhex("01c59c0e6906ea0059e1472e9904c514")


def request(attributes=(), tid=TID, **kwargs) -> bytes:
    return encode_message(StunMethod.BINDING, StunClass.REQUEST, tid, attributes, **kwargs)


def test_success_with_xor_mapped_address_and_software():
    raw = answer_binding(request(), ("192.0.2.1", 32853))
    assert raw == bytes.fromhex(
        "0101"          # Binding success
        "0018"          # 24 bytes of attributes
        "2112a442" "0123456789abcdef01234567"   # cookie, the request's transaction id
        "0020" "0008" "0001" "a147" "e112a643"  # XOR-MAPPED-ADDRESS 192.0.2.1:32853
        "8022" "0008" + b"realtime".hex()       # SOFTWARE "realtime"
    )


def test_fingerprint_only_when_the_request_had_one():
    with_fp = answer_binding(request(fingerprint=True), ("10.0.0.1", 1))
    assert check_fingerprint(with_fp)
    assert not check_fingerprint(answer_binding(request(), ("10.0.0.1", 1)))


def test_ipv6_source_and_zone_index():
    message = StunMessage.decode(answer_binding(request(), ("fe80::1%eth0", 5000), software=None))
    assert message.attributes == (XorMappedAddress(2, "fe80::1", 5000),)
    assert message.transaction_id == TID


def test_ice_check_is_answered(vectors):
    """Credentials, PRIORITY and ICE-CONTROLLING in a request are not 'unknown'."""
    check = bytes.fromhex(vectors("stun_ice_capture")["examples"][0]["hex"])
    message = StunMessage.decode(answer_binding(check, ("127.0.0.1", 9)))
    assert message.message_class == StunClass.SUCCESS
    assert check_fingerprint(answer_binding(check, ("127.0.0.1", 9)))


def test_padding_attribute_is_accepted():
    message = StunMessage.decode(answer_binding(request([Padding(bytes(100))]), ("10.0.0.1", 1)))
    assert message.message_class == StunClass.SUCCESS


def test_unknown_comprehension_required_gets_420():
    raw = request([RawAttribute(0x0FFF, b""), ChangeRequest(True, True), RawAttribute(0x0FFF, b"x"),
                   RawAttribute(0xC057, b"\0\0\0\0")], fingerprint=True)
    answer = answer_binding(raw, ("10.0.0.1", 1))
    message = StunMessage.decode(answer)
    assert (message.method, message.message_class) == (StunMethod.BINDING, StunClass.ERROR)
    assert message.find(ErrorCode) == ErrorCode(420, "Unknown Attribute")
    assert message.find(UnknownAttributes) == UnknownAttributes((0x0FFF, 0x0003))
    assert check_fingerprint(answer)


def test_response_port_is_refused():
    message = StunMessage.decode(answer_binding(request([ResponsePort(9)]), ("10.0.0.1", 1)))
    assert message.find(UnknownAttributes) == UnknownAttributes((0x0027,))


def test_classic_request_gets_mapped_address():
    raw = answer_binding(request(tid=CLASSIC_TID), ("10.1.2.3", 4000))
    assert raw[4:20] == CLASSIC_TID  # the "cookie" field is copied (RFC 8489 §12.2)
    message = StunMessage.decode(raw)
    assert message.classic
    assert message.attributes == (MappedAddress(1, "10.1.2.3", 4000),)


def test_classic_change_request_lists_an_even_number_of_types():
    raw = answer_binding(request([ChangeRequest(True, False)], tid=CLASSIC_TID), ("10.1.2.3", 4000))
    message = StunMessage.decode(raw)
    assert message.find(UnknownAttributes) == UnknownAttributes((0x0003, 0x0003))
    assert message.find(Software) is None


@pytest.mark.parametrize("raw", [
    encode_message(StunMethod.BINDING, StunClass.INDICATION, TID, fingerprint=True),
    encode_message(StunMethod.BINDING, StunClass.SUCCESS, TID, [XorMappedAddress(1, "1.2.3.4", 5)]),
    encode_message(StunMethod.BINDING, StunClass.ERROR, TID, [ErrorCode(400)]),
    encode_message(StunMethod.ALLOCATE, StunClass.REQUEST, TID, [Username("x")]),
])
def test_no_answer(raw):
    assert answer_binding(raw, ("10.0.0.1", 1)) is None


@pytest.mark.parametrize("raw", [b"", b"\x00\x01\x00\x01" + bytes(17), b"\xff" * 20])
def test_malformed_raises_decode_error(raw):
    with pytest.raises(DecodeError):
        answer_binding(raw, ("10.0.0.1", 1))


def test_change_request_without_flags_is_answered():
    """Debian's RFC 3489 ``stun`` sends CHANGE-REQUEST(0, 0) in every test: answer it."""
    raw = answer_binding(request([ChangeRequest(False, False)], tid=CLASSIC_TID), ("10.1.2.3", 4000))
    message = StunMessage.decode(raw)
    assert message.message_class == StunClass.SUCCESS
    assert message.find(MappedAddress).port == 4000
