"""Tests for realtime.stun.message: header, RFC 5769 vectors, integrity, fingerprint."""

from __future__ import annotations

import pytest

from realtime.errors import DecodeError, LocalProtocolError, Truncated
from realtime.stun.attributes import (
    IceControlled, MessageIntegrity, Priority, RawAttribute, Software, Username,
    XorMappedAddress,
)
from realtime.stun.credentials import saslprep
from realtime.stun.message import (
    MAGIC_COOKIE, StunClass, StunMessage, StunMethod, check_fingerprint,
    check_message_integrity, check_message_integrity_sha256, encode_message, is_stun,
    long_term_key, message_type, split_message_type,
)

TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


# -- RFC 5769 -----------------------------------------------------------------


def test_rfc5769_vectors_round_trip_and_verify(vectors):
    data = vectors("rfc5769_stun")
    assert len(data["vectors"]) == 4
    for vector in data["vectors"]:
        raw = bytes.fromhex(vector["hex"])
        message = StunMessage.decode(raw)
        assert message.encode() == raw, vector["name"]
        assert StunMessage.decode(message.encode()) == message
        integrity = message.find(MessageIntegrity)
        assert integrity.value.hex() == vector["message_integrity"]
        if "password" in vector:
            key = vector["password"].encode()
        else:
            key = long_term_key(vector["username"], vector["realm"],
                                vector["password_before_saslprep"], prepare=saslprep)
            assert key.hex() == vector["long_term_key_md5"]
        assert check_message_integrity(raw, key)
        assert not check_message_integrity(raw, key + b"x")
        assert check_fingerprint(raw) == (vector["fingerprint"] is not None)


def test_rfc5769_sample_request_fields(vectors):
    vector = vectors("rfc5769_stun")["vectors"][0]
    message = StunMessage.decode(bytes.fromhex(vector["hex"]))
    assert (message.method, message.message_class) == (StunMethod.BINDING, StunClass.REQUEST)
    assert message.transaction_id == TID
    assert message.find(Software) == Software("STUN test client")
    assert message.find(Priority) == Priority(0x6E0001FF)
    assert message.find(IceControlled) == IceControlled(0x932FF9B151263B36)
    assert message.find(Username) == Username(vector["username"])
    # RFC 5769 pads with spaces; kept so the bytes (and HMAC) survive re-encoding.
    assert message.padding == (b"", b"", b"", b"   ", b"", b"")


@pytest.mark.parametrize("index", [1, 2])
def test_rfc5769_xor_mapped_address(vectors, index):
    vector = vectors("rfc5769_stun")["vectors"][index]
    address = StunMessage.decode(bytes.fromhex(vector["hex"])).find(XorMappedAddress)
    assert (address.address, address.port) == (vector["xor_mapped_address"]["ip"],
                                                vector["xor_mapped_address"]["port"])


def test_rfc5769_rebuilt_with_encode_message(vectors):
    """encode_message with zero padding and our own HMAC verifies, and differs only by padding."""
    vector = vectors("rfc5769_stun")["vectors"][1]
    message = StunMessage.decode(bytes.fromhex(vector["hex"]))
    rebuilt = encode_message(message.method, message.message_class, message.transaction_id,
                             message.attributes[:2], integrity_key=vector["password"].encode(),
                             fingerprint=True)
    assert check_message_integrity(rebuilt, vector["password"].encode())
    assert check_fingerprint(rebuilt)
    assert len(rebuilt) == len(bytes.fromhex(vector["hex"]))


def test_ice_capture_checks(vectors):
    data = vectors("stun_ice_capture")
    for example in data["examples"]:
        raw = bytes.fromhex(example["hex"])
        assert StunMessage.decode(raw).encode() == raw
        assert check_message_integrity(raw, example["password"].encode())
        assert check_fingerprint(raw) is example["fingerprint_ok"]
        username = StunMessage.decode(raw).find(Username)
        assert (username.value if username else None) == example["username"]


# -- annotated bytes ----------------------------------------------------------


def test_annotated_binding_success():
    raw = bytes.fromhex(
        "0101"        # type: method 0x001 Binding, class bits C1=1 C0=0 -> success
        "000c"        # length: 12 bytes of attributes
        "2112a442"    # magic cookie
        "b7e7a701bc34d686fa87dfae"  # transaction id
        "0020"        # XOR-MAPPED-ADDRESS
        "0008"        # value length 8
        "00"          # reserved
        "01"          # family IPv4
        "a147"        # X-Port: 0xa147 ^ 0x2112 = 32853
        "e112a643"    # X-Address: ^ 0x2112a442 = 192.0.2.1
    )
    message = StunMessage.decode(raw)
    assert message == StunMessage(StunMethod.BINDING, StunClass.SUCCESS, TID,
                                  (XorMappedAddress(1, "192.0.2.1", 32853),))
    assert message.encode() == raw
    assert not message.classic


def test_annotated_classic_request():
    raw = bytes.fromhex(
        "0001"        # Binding request
        "0008"        # length 8
        "01c59c0e6906ea0059e1472e9904c514"  # 128-bit RFC 3489 transaction id (no cookie)
        "0003"        # CHANGE-REQUEST
        "0004"        # length 4
        "00000006"    # change IP (0x4) and change port (0x2)
    )
    message = StunMessage.decode(raw)
    assert message.classic
    assert message.transaction_id == raw[4:20]
    assert message.encode() == raw
    assert not is_stun(raw)


# -- header -------------------------------------------------------------------


@pytest.mark.parametrize("method, message_class, value", [
    (StunMethod.BINDING, StunClass.REQUEST, 0x0001),
    (StunMethod.BINDING, StunClass.INDICATION, 0x0011),
    (StunMethod.BINDING, StunClass.SUCCESS, 0x0101),
    (StunMethod.BINDING, StunClass.ERROR, 0x0111),
    (StunMethod.ALLOCATE, StunClass.ERROR, 0x0113),
    (StunMethod.SEND, StunClass.INDICATION, 0x0016),
    (StunMethod.DATA, StunClass.INDICATION, 0x0017),
    (StunMethod.CONNECTION_ATTEMPT, StunClass.INDICATION, 0x001C),
    (0xFFF, StunClass.ERROR, 0x3FFF),
    (0x080, StunClass.REQUEST, 0x0200),
])
def test_message_type_interleaving(method, message_class, value):
    assert message_type(method, message_class) == value
    assert split_message_type(value) == (method, message_class)


MALFORMED = [
    (b"", Truncated, "STUN header truncated: need 20 bytes, have 0"),
    (bytes(19), Truncated, "STUN header truncated: need 20 bytes, have 19"),
    (b"\x40\x01\x00\x00" + bytes(16), DecodeError, "STUN message type 0x4001 has the top two bits set"),
    (b"\x00\x01\x00\x02" + bytes(18), DecodeError, "STUN message length 2 is not a multiple of 4"),
    (b"\x00\x01\x00\x08" + bytes(16) + bytes(4), DecodeError,
     "STUN message length 8 does not match the 4 bytes after the header"),
    (b"\x00\x01\x00\x04" + bytes(16) + b"\x00\x06\x00\x08", Truncated,
     "STUN attribute 0x0006 truncated: length 8, 0 bytes left"),
    (b"\x00\x01\x00\x08" + bytes(16) + b"\x80\x22\x00\x05abcd", Truncated,
     "STUN attribute 0x8022 truncated: length 5, 4 bytes left"),
]


@pytest.mark.parametrize("raw, error, message", MALFORMED, ids=[m for _, _, m in MALFORMED])
def test_malformed_messages(raw, error, message):
    with pytest.raises(error) as info:
        StunMessage.decode(raw)
    assert str(info.value) == message


@pytest.mark.parametrize("raw, expected", [
    (encode_message(1, StunClass.REQUEST, TID), True),
    (encode_message(1, StunClass.REQUEST, TID)[:-1], False),
    (encode_message(1, StunClass.REQUEST, TID + bytes(4)), False),  # classic
    (b"\x80" + encode_message(1, StunClass.REQUEST, TID)[1:], False),
    (encode_message(1, StunClass.REQUEST, TID, [Software("abc")])[:-4], False),
    (b"", False),
])
def test_is_stun(raw, expected):
    assert is_stun(raw) is expected
    assert is_stun(memoryview(raw)) is expected


# -- integrity and fingerprint ------------------------------------------------


def test_encode_message_integrity_sha256_and_fingerprint():
    raw = encode_message(StunMethod.BINDING, StunClass.REQUEST, TID, [Username("a:b")],
                         integrity_key=b"k1", integrity_sha256_key=b"k2", fingerprint=True)
    message = StunMessage.decode(raw)
    assert [a.type for a in message.attributes] == [0x0006, 0x0008, 0x001C, 0x8028]
    assert check_message_integrity(raw, b"k1")
    assert check_message_integrity_sha256(raw, b"k2")
    assert not check_message_integrity_sha256(raw, b"k1")
    assert check_fingerprint(raw)
    assert message.encode() == raw


@pytest.mark.parametrize("offset", [0, 3, 10, 20, 27, 30])
def test_tampering_breaks_integrity(offset):
    raw = bytearray(encode_message(StunMethod.BINDING, StunClass.REQUEST, TID,
                                   [Username("user:name")], integrity_key=b"pw", fingerprint=True))
    raw[offset] ^= 0x01
    assert not check_message_integrity(bytes(raw), b"pw")
    assert not check_fingerprint(bytes(raw))


def test_checks_on_absent_or_broken_attributes():
    plain = encode_message(StunMethod.BINDING, StunClass.REQUEST, TID)
    assert not check_message_integrity(plain, b"pw")
    assert not check_message_integrity_sha256(plain, b"pw")
    assert not check_fingerprint(plain)
    short_mi = encode_message(1, StunClass.REQUEST, TID, [RawAttribute(0x0008, bytes(16))])
    assert not check_message_integrity(short_mi, b"pw")
    assert not check_message_integrity(b"garbage", b"pw")
    assert not check_fingerprint(b"garbage")
    # FINGERPRINT that is not last does not count.
    with_fp = encode_message(1, StunClass.REQUEST, TID, fingerprint=True)
    moved = StunMessage.decode(with_fp)
    reordered = StunMessage(1, StunClass.REQUEST, TID, moved.attributes + (Software("x"),)).encode()
    assert not check_fingerprint(reordered)


# -- model --------------------------------------------------------------------


def test_find_by_class_and_type():
    message = StunMessage(1, StunClass.REQUEST, TID, (
        RawAttribute(0x0020, b"\x00\x07"),   # malformed XOR-MAPPED-ADDRESS kept raw
        Username("u"),
        XorMappedAddress(1, "10.0.0.1", 9),
    ))
    assert message.find(XorMappedAddress) == XorMappedAddress(1, "10.0.0.1", 9)
    assert message.find(0x0020) == RawAttribute(0x0020, b"\x00\x07")
    assert message.find(Username) == Username("u")
    assert message.find(Software) is None
    assert message.find(0x8022) is None


def test_round_trip_of_built_message_and_cookie():
    message = StunMessage(StunMethod.ALLOCATE, StunClass.REQUEST, TID, (Software("x"),))
    raw = message.encode()
    assert int.from_bytes(raw[4:8], "big") == MAGIC_COOKIE
    assert StunMessage.decode(raw) == message
    assert StunMessage.decode(memoryview(raw)) == message
    assert StunMessage.decode(bytearray(raw)) == message


@pytest.mark.parametrize("kwargs, text", [
    (dict(method=1, message_class=StunClass.REQUEST, transaction_id=b"short"),
     "transaction id must be 12 or 16 bytes, not 5"),
    (dict(method=0x1000, message_class=StunClass.REQUEST, transaction_id=TID),
     "STUN method 0x1000 does not fit in 12 bits"),
    (dict(method=1, message_class=StunClass.REQUEST, transaction_id=TID,
          attributes=(Software("x"),), padding=()),
     "padding needs one entry per attribute"),
    (dict(method=1, message_class=StunClass.REQUEST, transaction_id=TID,
          attributes=(Software("x"),), padding=(b"\0",)),
     "attribute 0 needs 3 padding bytes"),
    (dict(method=1, message_class=StunClass.REQUEST, transaction_id=TID,
          attributes=(RawAttribute(0x13, bytes(70000)),)),
     "DATA value is over 65535 bytes"),
])
def test_encode_misuse_raises_local_protocol_error(kwargs, text):
    with pytest.raises(LocalProtocolError) as info:
        StunMessage(**kwargs).encode()
    assert str(info.value) == text


def test_summary_names_everything():
    message = StunMessage(StunMethod.BINDING, StunClass.SUCCESS, TID,
                          (XorMappedAddress(2, "::1", 5), RawAttribute(0xC057, b"\0\0")))
    assert message.summary() == (
        "BINDING success tid=b7e7a701bc34d686fa87dfae XOR-MAPPED-ADDRESS=[::1]:5 0xc057(raw 2 bytes)"
    )
