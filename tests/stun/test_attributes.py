"""Tests for the attribute codecs, the registry and credentials."""

from __future__ import annotations

import pytest

from realtime.errors import LocalProtocolError
from realtime.stun import attributes as A
from realtime.stun.attributes import ATTRIBUTE_CLASSES, StunAttributeType, decode_attribute
from realtime.stun.credentials import SHA256, long_term_key, opaque_string, saslprep

# The magic cookie followed by a transaction id: what address attributes XOR with.
XOR_KEY = bytes.fromhex("2112a442" "b7e7a701bc34d686fa87dfae")

# (attribute, value bytes as on the wire)
WELL_FORMED = [
    (A.MappedAddress(1, "192.0.2.1", 32853), "0001 8055 c0000201"),
    (A.XorMappedAddress(1, "192.0.2.1", 32853), "0001 a147 e112a643"),
    (A.XorMappedAddress(2, "2001:db8:1234:5678:11:2233:4455:6677", 32853),
     "0002 a147 0113a9faa5d3f179bc25f4b5bed2b9d9"),
    (A.XorPeerAddress(1, "127.0.0.1", 3480), "0001 2c8a 5e12a443"),
    (A.XorRelayedAddress(1, "0.0.0.0", 0), "0001 2112 2112a442"),
    (A.AlternateServer(1, "10.0.0.1", 3478), "0001 0d96 0a000001"),
    (A.ResponseOrigin(1, "127.0.0.1", 3478), "0001 0d96 7f000001"),
    (A.OtherAddress(2, "::1", 3479), "0002 0d97 00000000000000000000000000000001"),
    (A.ResponseAddress(1, "1.2.3.4", 1), "0001 0001 01020304"),
    (A.ChangedAddress(1, "1.2.3.4", 2), "0001 0002 01020304"),
    (A.SourceAddress(1, "1.2.3.4", 3), "0001 0003 01020304"),
    (A.ReflectedFrom(1, "1.2.3.4", 4), "0001 0004 01020304"),
    (A.Username("evtj:h6vY"), "6576746a3a68367659"),
    (A.Realm("example.org"), "6578616d706c652e6f7267"),
    (A.Nonce("n"), "6e"),
    (A.Software("é"), "c3a9"),
    (A.AlternateDomain("turn.example"), "7475726e2e6578616d706c65"),
    (A.UserHash(bytes(range(32))), bytes(range(32)).hex()),
    (A.MessageIntegrity(bytes(20)), "00" * 20),
    (A.MessageIntegritySha256(bytes(16)), "00" * 16),
    (A.Padding(b"\xff" * 3), "ffffff"),
    (A.Password(b"secret"), "736563726574"),
    (A.Fingerprint(0xE57A3BCF), "e57a3bcf"),
    (A.Priority(0x6E0001FF), "6e0001ff"),
    (A.UseCandidate(), ""),
    (A.IceControlled(0x932FF9B151263B36), "932ff9b151263b36"),
    (A.IceControlling(1), "0000000000000001"),
    (A.ChangeRequest(True, False), "00000004"),
    (A.ChangeRequest(False, True), "00000002"),
    (A.ResponsePort(3479), "0d97 0000"),
    (A.CacheTimeout(60), "0000003c"),
    (A.ErrorCode(420, "Unknown Attribute"), "00000414" + b"Unknown Attribute".hex()),
    (A.ErrorCode(300), "00000300"),
    (A.UnknownAttributes((0x0003, 0x0027)), "0003 0027"),
    (A.UnknownAttributes((0x0003,)), "0003"),
    (A.PasswordAlgorithm(A.MD5), "0001 0000"),
    (A.PasswordAlgorithm(7, b"\x01"), "0007 0001 01000000"),
    (A.PasswordAlgorithms(((A.SHA256, b""), (A.MD5, b""))), "0002 0000 0001 0000"),
    (A.ChannelNumber(0x4000), "4000 0000"),
    (A.Lifetime(600), "00000258"),
    (A.Data(b"hello"), "68656c6c6f"),
    (A.RequestedAddressFamily(2), "02000000"),
    (A.AdditionalAddressFamily(2), "02000000"),
    (A.EvenPort(True), "80"),
    (A.EvenPort(False), "00"),
    (A.RequestedTransport(17), "11000000"),
    (A.DontFragment(), ""),
    (A.ReservationToken(b"12345678"), "3132333435363738"),
    (A.AddressErrorCode(2, 440, "Address Family not Supported"),
     "02000428" + b"Address Family not Supported".hex()),
    (A.Icmp(3, 4, 1400), "00000604 00000578"),
    (A.ConnectionId(0xDEADBEEF), "deadbeef"),
]


@pytest.mark.parametrize("attribute, value", WELL_FORMED, ids=[repr(a) for a, _ in WELL_FORMED])
def test_attribute_value_round_trip(attribute, value):
    raw = bytes.fromhex(value.replace(" ", ""))
    assert attribute.encode_value(XOR_KEY) == raw
    assert decode_attribute(attribute.TYPE, raw, XOR_KEY) == attribute
    assert attribute.type == attribute.TYPE
    assert attribute.summary()


def test_every_codec_is_covered_by_the_table():
    assert {type(a) for a, _ in WELL_FORMED} == set(ATTRIBUTE_CLASSES.values())


# (type, value bytes): known types whose value is malformed are kept raw, one row per rule.
MALFORMED = [
    (0x0020, "0001a147e112a6"),                   # XOR-MAPPED-ADDRESS: 7 bytes for IPv4
    (0x0020, "0003a147e112a643"),                 # unknown family 3
    (0x0020, "00"),                               # shorter than the family/port word
    (0x0001, "0101 0001 01020304"),               # reserved byte not zero
    (0x0006, "ff"),                               # USERNAME: invalid UTF-8
    (0x0008, "00" * 19),                          # MESSAGE-INTEGRITY: not 20 bytes
    (0x001C, "00" * 18),                          # MESSAGE-INTEGRITY-SHA256: not 16..32 by 4
    (0x001E, "00" * 31),                          # USERHASH: not 32 bytes
    (0x8028, "000000"),                           # FINGERPRINT: not 4 bytes
    (0x0024, "0000000000"),                       # PRIORITY: not 4 bytes
    (0x0025, "00"),                               # USE-CANDIDATE: not empty
    (0x8029, "00"),                               # ICE-CONTROLLED: not 8 bytes
    (0x0003, "00000001"),                         # CHANGE-REQUEST: reserved bit
    (0x0027, "0d970001"),                         # RESPONSE-PORT: reserved bytes
    (0x0009, "000004"),                           # ERROR-CODE: too short
    (0x0009, "00080414"),                         # ERROR-CODE: reserved bits
    (0x0009, "00000464"),                         # ERROR-CODE: number 100
    (0x0009, "00000414ff"),                       # ERROR-CODE: reason not UTF-8
    (0x000A, "000300"),                           # UNKNOWN-ATTRIBUTES: odd length
    (0x001D, "0001"),                             # PASSWORD-ALGORITHM: truncated
    (0x001D, "00010004 000000"),                  # PASSWORD-ALGORITHM: parameters truncated
    (0x001D, "00010001 01000001"),                # PASSWORD-ALGORITHM: non-zero padding
    (0x001D, "00010000 00010000"),                # PASSWORD-ALGORITHM: trailing bytes
    (0x8002, "000100000002"),                     # PASSWORD-ALGORITHMS: truncated second
    (0x000C, "40000001"),                         # CHANNEL-NUMBER: RFFU bits
    (0x000D, "00"),                               # LIFETIME: not 4 bytes
    (0x0017, "02000001"),                         # REQUESTED-ADDRESS-FAMILY: reserved
    (0x0018, "0000"),                             # EVEN-PORT: not 1 byte
    (0x0018, "81"),                               # EVEN-PORT: RFFU bits
    (0x0019, "11000001"),                         # REQUESTED-TRANSPORT: RFFU
    (0x001A, "00"),                               # DONT-FRAGMENT: not empty
    (0x0022, "00"),                               # RESERVATION-TOKEN: not 8 bytes
    (0x8001, "02"),                               # ADDRESS-ERROR-CODE: too short
    (0x8001, "02010428"),                         # ADDRESS-ERROR-CODE: reserved bits
    (0x8001, "02000464"),                         # ADDRESS-ERROR-CODE: number 100
    (0x8004, "00000604"),                         # ICMP: not 8 bytes
    (0x8004, "0001060400000000"),                 # ICMP: reserved bits
    (0x002A, "00"),                               # CONNECTION-ID: not 4 bytes
    (0x8027, "00"),                               # CACHE-TIMEOUT: not 4 bytes
]


@pytest.mark.parametrize("attribute_type, value", MALFORMED)
def test_malformed_known_values_are_kept_raw(attribute_type, value):
    raw = bytes.fromhex(value.replace(" ", ""))
    attribute = decode_attribute(attribute_type, raw, XOR_KEY)
    assert attribute == A.RawAttribute(attribute_type, raw)
    assert attribute.encode_value(XOR_KEY) == raw


def test_unknown_type_is_raw():
    assert decode_attribute(0xC057, b"\x00\x01", XOR_KEY) == A.RawAttribute(0xC057, b"\x00\x01")
    assert A.RawAttribute(0xC057, b"ab").summary() == "0xc057(raw 2 bytes)"


@pytest.mark.parametrize("attribute", [
    A.XorMappedAddress(1, "::1", 1),
    A.MappedAddress(2, "1.2.3.4", 1),
    A.MappedAddress(3, "1.2.3.4", 1),
    A.MappedAddress(1, "not an address", 1),
    A.MappedAddress(1, "1.2.3.4", 70000),
])
def test_address_encode_misuse(attribute):
    with pytest.raises(LocalProtocolError):
        attribute.encode_value(XOR_KEY)


def test_address_of_infers_family():
    assert A.XorMappedAddress.of("::1", 5) == A.XorMappedAddress(2, "::1", 5)
    assert A.XorMappedAddress.of("10.0.0.1", 5) == A.XorMappedAddress(1, "10.0.0.1", 5)


# -- registry -----------------------------------------------------------------


@pytest.mark.parametrize("code, required", [
    (0x0000, True), (0x0003, True), (0x7FFF, True), (0x8000, False), (0x8028, False), (0xFFFF, False),
])
def test_comprehension_required(code, required):
    assert A.is_comprehension_required(code) is required


def test_registry_names_every_codec_and_rfc_attributes():
    for code in ATTRIBUTE_CLASSES:
        assert code in StunAttributeType.__members__.values()
    assert StunAttributeType.XOR_MAPPED_ADDRESS == 0x0020
    assert StunAttributeType.CONNECTION_ID == 0x002A
    assert A.attribute_name(0x8028) == "FINGERPRINT"
    assert A.attribute_name(0xC057) == "0xc057"


# -- credentials --------------------------------------------------------------


def test_saslprep_and_opaque_string():
    assert saslprep("The\u00adM\u00aatr\u2168") == "TheMatrIX"
    assert saslprep("a\u00a0b") == "a b"
    assert opaque_string("a\u00a0b") == "a b"
    assert opaque_string("e\u0301") == "\u00e9"
    with pytest.raises(LocalProtocolError):
        saslprep("a\u0007")
    with pytest.raises(LocalProtocolError):
        opaque_string("")
    with pytest.raises(LocalProtocolError):
        opaque_string("a\u0007")
    with pytest.raises(LocalProtocolError):
        saslprep("\u0627\u0031")  # RandALCat first but not last


def test_long_term_key_algorithms():
    md5 = long_term_key("user", "realm", "pass")
    assert md5.hex() == "8493fbc53ba582fb4c044c456bdc40eb"  # MD5("user:realm:pass")
    assert len(long_term_key("user", "realm", "pass", algorithm=SHA256)) == 32
    with pytest.raises(LocalProtocolError):
        long_term_key("u", "r", "p", algorithm=9)
