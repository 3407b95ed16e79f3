"""
The DTLS certificate of this process and SDP certificate fingerprints.

WebRTC endpoints authenticate DTLS with self-signed certificates whose hash
travels in the SDP (RFC 8842 §5, RFC 8122 §5)::

    a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:
                          19:E5:7C:AB:3B:E6:0B:AE:DF:1B:30:B3:1B:5D:37:6A
                  \\_____/ \\___________________________________________/
                  hash-func   uppercase hex octets of hash(DER), ":"-joined

The server makes one ECDSA P-256 certificate per process (RFC 8827 §6.5
requires an ECDSA-P256 capable endpoint) and puts its ``sha-256``
fingerprint in every answer.  A peer certificate is accepted when its hash
under one of the offered algorithms equals the offered value (RFC 8122 §5:
"sha-1", "sha-256", "sha-384", "sha-512" here); the comparison is
constant-time (``hmac.compare_digest``) and case-insensitive in the hex.

No clock is read: :meth:`Certificate.generate` takes ``now`` (epoch seconds)
for the validity window.  WebRTC peers do not check validity dates, but
OpenSSL and other tools print them, so they are sensible.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from realtime.errors import DecodeError

FINGERPRINT_ALGORITHMS = {
    "sha-1": hashlib.sha1,
    "sha-256": hashlib.sha256,
    "sha-384": hashlib.sha384,
    "sha-512": hashlib.sha512,
}
"""The RFC 8122 §5 ``hash-func`` names we compute, mapped to hashlib (weakest first)."""

#: strength rank of each supported hash function (RFC 8122 §5: use the strongest offered)
_STRENGTH = {name: rank for rank, name in enumerate(FINGERPRINT_ALGORITHMS)}

DEFAULT_LIFETIME = 30 * 86400.0
"""Validity of a generated certificate in seconds (30 days)."""


def self_signed(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    *,
    serial: int | None = None,
    alt_names: Iterable[x509.GeneralName] = (),
    server_auth: bool = False,
) -> x509.Certificate:
    """Build the one kind of certificate this project makes: self-signed, ``CN=common_name``.

    Issuer and subject are the same name and the key signs its own
    certificate (SHA-256), RFC 5280 §3.2's "self-signed certificate".  Three
    callers share this builder: the DTLS certificate of PeerConnections
    (:meth:`Certificate.generate`: no extensions, the peer pins its hash), the
    HTTPS/TURN-over-TLS server certificate (``realtime.net.certificate``:
    ``alt_names`` for hostname checks and ``server_auth`` for the
    basicConstraints and extendedKeyUsage browsers want), and each cluster
    node's private-API certificate (``realtime.cluster.forward_tls``: one
    pinned DNS name).

    :param serial: the serial number; ``None`` for a random one (RFC 5280 §4.1.2.2).
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number() if serial is None else serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    names = list(alt_names)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if server_auth:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        ).add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(key, hashes.SHA256())


class FingerprintError(DecodeError):
    """Raised when an SDP ``a=fingerprint`` value is malformed or unsupported."""


def fingerprint_of(der: bytes, algorithm: str = "sha-256") -> str:
    """Return the RFC 8122 §5 fingerprint of DER bytes: ``AB:CD:...`` uppercase.

    :raises FingerprintError: for a hash function not in
        :data:`FINGERPRINT_ALGORITHMS`.
    """
    digest = _hash(algorithm)(der).digest()
    return ":".join(f"{octet:02X}" for octet in digest)


def parse_fingerprint(algorithm: str, value: str) -> bytes:
    """Return the digest bytes of an SDP fingerprint value.

    Accepts upper or lower case hex (RFC 8122 §5 says uppercase, some peers
    send lowercase).

    :raises FingerprintError: for an unknown algorithm, a malformed value
        or a digest of the wrong size for the algorithm.
    """
    hash_factory = _hash(algorithm)
    parts = value.strip().split(":")
    if any(len(part) != 2 for part in parts):
        raise FingerprintError(f"fingerprint {value!r} is not colon-separated hex octets")
    try:
        digest = bytes.fromhex("".join(parts))
    except ValueError:
        raise FingerprintError(f"fingerprint {value!r} is not colon-separated hex octets") from None
    expected = hash_factory().digest_size
    if len(digest) != expected:
        raise FingerprintError(
            f"{algorithm} fingerprint has {len(digest)} octets, expected {expected}"
        )
    return digest


def matches_fingerprint(der: bytes, fingerprints: Iterable[tuple[str, str]]) -> bool:
    """Return True if ``der`` matches the SDP fingerprints of the strongest hash offered.

    RFC 8122 §5: with several ``a=fingerprint`` lines, the endpoint uses the
    strongest hash function it supports.  So only the pairs of the strongest
    supported algorithm count (one of them must match: several certificates
    may be listed); a weaker one cannot stand in for a strong one that does
    not match (it could, before: any one match was enough).  Pairs with an
    unknown algorithm or a malformed value are skipped.  Each comparison is
    constant-time.
    """
    usable = []
    for algorithm, value in fingerprints:
        try:
            rank = _STRENGTH[algorithm.lower()]
            usable.append((rank, algorithm, parse_fingerprint(algorithm, value)))
        except (FingerprintError, KeyError):
            continue
    if not usable:
        return False
    strongest = max(rank for rank, _, _ in usable)
    matched = False
    for rank, algorithm, expected in usable:
        if rank == strongest:
            matched |= hmac.compare_digest(_hash(algorithm)(der).digest(), expected)
    return matched


def _hash(algorithm: str) -> Callable[..., "hashlib._Hash"]:
    try:
        return FINGERPRINT_ALGORITHMS[algorithm.lower()]
    except KeyError:
        message = f"fingerprint hash function {algorithm!r} is not supported"
        raise FingerprintError(message) from None


@dataclass(frozen=True, slots=True, eq=False)
class Certificate:
    """A private key with its self-signed X.509 certificate.

    :ivar private_key: the ECDSA key (``cryptography`` object).
    :ivar certificate: the certificate (``cryptography`` object).
    """

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(
        cls,
        now: float,
        lifetime: float = DEFAULT_LIFETIME,
        random: Callable[[int], bytes] = os.urandom,
        common_name: str = "realtime",
    ) -> "Certificate":
        """Create an ECDSA P-256 key and a self-signed certificate valid around ``now``.

        The validity starts one day before ``now`` (clock skew) and ends
        ``lifetime`` seconds after it.  ``random`` supplies the serial number.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        start = datetime.datetime.fromtimestamp(now - 86400, datetime.timezone.utc)
        end = datetime.datetime.fromtimestamp(now + lifetime, datetime.timezone.utc)
        serial = int.from_bytes(random(8), "big") >> 1 or 1
        cert = self_signed(key, common_name, start, end, serial=serial)
        return cls(key, cert)

    @classmethod
    def from_pem(cls, certificate_pem: bytes, key_pem: bytes) -> "Certificate":
        """Load a certificate and its unencrypted private key from PEM."""
        key = serialization.load_pem_private_key(key_pem, password=None)
        return cls(key, x509.load_pem_x509_certificate(certificate_pem))  # type: ignore[arg-type]

    @property
    def der(self) -> bytes:
        """Return the DER encoding of the certificate (what fingerprints hash)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def fingerprint(self, algorithm: str = "sha-256") -> str:
        """Return the SDP ``a=fingerprint`` value under ``algorithm``."""
        return fingerprint_of(self.der, algorithm)

    def certificate_pem(self) -> bytes:
        """Return the certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def private_key_pem(self) -> bytes:
        """Return the private key in unencrypted PKCS#8 PEM."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
