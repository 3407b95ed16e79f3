"""Tests for realtime.dtls.certificate: ECDSA certificate and RFC 8122 §5 fingerprints."""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from realtime.dtls.certificate import (
    Certificate,
    FingerprintError,
    fingerprint_of,
    matches_fingerprint,
    parse_fingerprint,
)

NOW = 1_700_000_000.0


@pytest.fixture(scope="module")
def certificate() -> Certificate:
    return Certificate.generate(NOW, random=lambda n: b"\x01" * n)


def test_generated_certificate_is_ecdsa_p256_and_self_signed(certificate):
    cert = certificate.certificate
    assert isinstance(certificate.private_key.curve, ec.SECP256R1)
    assert cert.issuer == cert.subject
    assert cert.serial_number == int.from_bytes(b"\x01" * 8, "big") >> 1
    assert cert.not_valid_before_utc.timestamp() == NOW - 86400
    assert cert.not_valid_after_utc.timestamp() == NOW + 30 * 86400
    cert.verify_directly_issued_by(cert)


def test_sha256_fingerprint_is_sdp_form(certificate):
    value = certificate.fingerprint()
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", value)
    assert value.replace(":", "").lower() == hashlib.sha256(certificate.der).hexdigest()


def test_known_fingerprint():
    # sha-1 of the empty string, RFC 3174 §7.3 style check of the formatting
    expected = "DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09"
    assert fingerprint_of(b"", "sha-1") == expected


@pytest.mark.parametrize("algorithm", ["sha-1", "sha-256", "sha-384", "sha-512", "SHA-256"])
def test_matches_every_algorithm(certificate, algorithm):
    value = certificate.fingerprint(algorithm)
    assert matches_fingerprint(certificate.der, [(algorithm, value)])
    assert matches_fingerprint(certificate.der, [(algorithm, value.lower())])
    flipped = ("0" if value[0] != "0" else "1") + value[1:]
    assert not matches_fingerprint(certificate.der, [(algorithm, flipped)])


def test_only_the_strongest_hash_offered_counts(certificate):
    """RFC 8122 §5 (issue 10 item 8): a matching SHA-1 cannot stand in for a SHA-256 line
    that does not match; among several lines of the strongest hash, one match is enough."""
    good1, good256 = certificate.fingerprint("sha-1"), certificate.fingerprint("sha-256")
    wrong256 = ("0" if good256[0] != "0" else "1") + good256[1:]
    assert not matches_fingerprint(certificate.der, [("sha-256", wrong256), ("sha-1", good1)])
    assert not matches_fingerprint(certificate.der, [("sha-1", good1), ("SHA-256", wrong256)])
    assert matches_fingerprint(certificate.der, [("sha-256", wrong256), ("sha-256", good256),
                                                 ("sha-1", "00:" * 19 + "00")])
    good512 = certificate.fingerprint("sha-512")
    assert matches_fingerprint(certificate.der, [("sha-1", good1), ("sha-512", good512)])
    # a malformed strongest line is skipped (it names no certificate): the next one decides
    assert matches_fingerprint(certificate.der, [("sha-256", good256), ("sha-512", "AB:CD")])


def test_one_matching_pair_is_enough(certificate):
    pairs = [("md5", "00"), ("sha-256", "zz"), ("sha-1", certificate.fingerprint("sha-1"))]
    assert matches_fingerprint(certificate.der, pairs)
    assert not matches_fingerprint(certificate.der, pairs[:2])
    assert not matches_fingerprint(certificate.der, [])


@pytest.mark.parametrize(
    "algorithm, value, message",
    [
        ("md5", "00", "fingerprint hash function 'md5' is not supported"),
        ("sha-1", "ABC:DE", "fingerprint 'ABC:DE' is not colon-separated hex octets"),
        ("sha-1", "ZZ:00", "fingerprint 'ZZ:00' is not colon-separated hex octets"),
        ("sha-256", "AB:CD", "sha-256 fingerprint has 2 octets, expected 32"),
    ],
)
def test_malformed_fingerprints(algorithm, value, message):
    with pytest.raises(FingerprintError) as caught:
        parse_fingerprint(algorithm, value)
    assert str(caught.value) == message


def test_pem_round_trip(certificate):
    loaded = Certificate.from_pem(certificate.certificate_pem(), certificate.private_key_pem())
    assert loaded.der == certificate.der
    assert loaded.fingerprint() == certificate.fingerprint()
