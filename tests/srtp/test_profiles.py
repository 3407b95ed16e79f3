"""The protection profiles registry against RFC 5764 §4.1.2 / RFC 7714 §14.2 and libsrtp."""

from __future__ import annotations

import json

import pylibsrtp
import pytest

from realtime.errors import LocalProtocolError
from realtime.srtp.profiles import (
    DEFAULT_PROFILES,
    SrtpProtectionProfile as P,
    openssl_profile_list,
    split_keying_material,
)

# (profile, IANA id, key, salt, SRTP tag, SRTCP tag, aead) straight from the RFC tables.
RFC_TABLE = [
    (P.SRTP_AES128_CM_HMAC_SHA1_80, 0x0001, 16, 14, 10, 10, False),
    (P.SRTP_AES128_CM_HMAC_SHA1_32, 0x0002, 16, 14, 4, 10, False),
    (P.SRTP_AEAD_AES_128_GCM, 0x0007, 16, 12, 16, 16, True),
    (P.SRTP_AEAD_AES_256_GCM, 0x0008, 32, 12, 16, 16, True),
]


@pytest.mark.parametrize("profile,ident,key,salt,tag,rtcp_tag,aead", RFC_TABLE)
def test_parameters_match_rfc(profile, ident, key, salt, tag, rtcp_tag, aead):
    assert int(profile) == ident
    assert (profile.key_length, profile.salt_length) == (key, salt)
    assert profile.parameters.srtp_tag_length == tag
    assert profile.parameters.srtcp_tag_length == rtcp_tag
    assert profile.parameters.aead is aead
    assert profile.srtp_overhead == tag
    assert profile.srtcp_overhead == 4 + rtcp_tag  # E|SRTCP index word, then the tag


def test_registry_has_exactly_the_rfc_rows():
    assert sorted(P) == [row[0] for row in RFC_TABLE]


@pytest.mark.parametrize(
    "profile,constant",
    [
        (P.SRTP_AES128_CM_HMAC_SHA1_80, "SRTP_PROFILE_AES128_CM_SHA1_80"),
        (P.SRTP_AES128_CM_HMAC_SHA1_32, "SRTP_PROFILE_AES128_CM_SHA1_32"),
        (P.SRTP_AEAD_AES_128_GCM, "SRTP_PROFILE_AEAD_AES_128_GCM"),
        (P.SRTP_AEAD_AES_256_GCM, "SRTP_PROFILE_AEAD_AES_256_GCM"),
    ],
)
def test_ids_equal_libsrtp_constants(profile, constant):
    assert int(profile) == getattr(pylibsrtp.Policy, constant)


@pytest.mark.parametrize(
    "name,profile",
    [
        ("SRTP_AES128_CM_HMAC_SHA1_80", P.SRTP_AES128_CM_HMAC_SHA1_80),  # RFC 5764
        ("SRTP_AES128_CM_SHA1_80", P.SRTP_AES128_CM_HMAC_SHA1_80),  # OpenSSL
        (b"SRTP_AES128_CM_SHA1_80", P.SRTP_AES128_CM_HMAC_SHA1_80),  # pyOpenSSL returns bytes
        ("AES_CM_128_HMAC_SHA1_80", P.SRTP_AES128_CM_HMAC_SHA1_80),  # SDES, RFC 4568
        ("aes_cm_128_hmac_sha1_32", P.SRTP_AES128_CM_HMAC_SHA1_32),
        ("SRTP_AEAD_AES_128_GCM", P.SRTP_AEAD_AES_128_GCM),
        ("AEAD_AES_256_GCM", P.SRTP_AEAD_AES_256_GCM),  # SDES, RFC 7714 §14.1
    ],
)
def test_from_name_accepts_every_spelling(name, profile):
    assert P.from_name(name) is profile
    assert P.lookup(name) is profile


@pytest.mark.parametrize(
    "value,message",
    [
        ("SRTP_NULL_SHA1_80", "unsupported SRTP protection profile 'SRTP_NULL_SHA1_80'"),
        (b"", "unsupported SRTP protection profile ''"),
        (5, "unsupported SRTP protection profile 0x0005"),
        (0x0102, "unsupported SRTP protection profile 0x0102"),
    ],
)
def test_lookup_refuses(value, message):
    with pytest.raises(LocalProtocolError) as info:
        P.lookup(value)
    assert str(info.value) == message


def test_lookup_by_id_and_member():
    assert P.lookup(7) is P.SRTP_AEAD_AES_128_GCM
    assert P.lookup(P.SRTP_AEAD_AES_256_GCM) is P.SRTP_AEAD_AES_256_GCM


def test_default_offer_prefers_gcm_and_lists_openssl_names():
    assert DEFAULT_PROFILES[0] is P.SRTP_AEAD_AES_128_GCM
    assert P.SRTP_AES128_CM_HMAC_SHA1_80 in DEFAULT_PROFILES  # mandatory, RFC 8827 §6.5
    assert openssl_profile_list() == (
        b"SRTP_AEAD_AES_128_GCM:SRTP_AEAD_AES_256_GCM:SRTP_AES128_CM_SHA1_80"
    )


def test_split_keying_material_layout():
    # 2 * (16 + 14) octets: ck | sk | cs | ss (RFC 5764 §4.2), each filled with its own byte.
    material = b"C" * 16 + b"S" * 16 + b"c" * 14 + b"s" * 14
    client, server = split_keying_material(P.SRTP_AES128_CM_HMAC_SHA1_80, material)
    assert client == (b"C" * 16, b"c" * 14)
    assert server == (b"S" * 16, b"s" * 14)


def test_split_keying_material_wrong_length():
    with pytest.raises(LocalProtocolError) as info:
        split_keying_material(P.SRTP_AEAD_AES_256_GCM, bytes(60))
    assert str(info.value) == "SRTP_AEAD_AES_256_GCM needs 88 octets of keying material, got 60"


def test_split_matches_the_chromium_aiortc_exports(shared):
    """The exporter output recorded beside each capture splits into the recorded write keys."""
    files = sorted((shared / "pcaps/generated/webrtc").glob("*.srtp.json"))
    assert files
    for path in files:
        info = json.loads(path.read_text())
        profile = P.from_name(info["srtp_profile"])
        assert profile.key_length == info["key_length"]
        assert profile.salt_length == info["salt_length"]
        client, server = split_keying_material(profile, bytes.fromhex(info["keying_material"]))
        assert client[0].hex() == info["client_write_srtp_master_key"]
        assert client[1].hex() == info["client_write_srtp_master_salt"]
        assert server[0].hex() == info["server_write_srtp_master_key"]
        assert server[1].hex() == info["server_write_srtp_master_salt"]
