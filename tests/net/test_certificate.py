"""
The self-signed server certificate: made once in the state dir, reused, renewed when expired.
"""

from __future__ import annotations

import ipaddress
import stat

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from realtime.net.certificate import VALIDITY, ensure_certificate

NOW = 1_800_000_000.0


def test_created_with_names_and_permissions(tmp_path) -> None:
    files = ensure_certificate(tmp_path / "tls", ("203.0.113.5", "sfu.example"), now=NOW)
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    key = load_pem_private_key(files.private_key.read_bytes(), None)
    assert certificate.public_key() == key.public_key()
    assert certificate.issuer == certificate.subject
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "sfu.example"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"),
        ipaddress.ip_address("203.0.113.5"),
    ]
    assert certificate.not_valid_after_utc.timestamp() == NOW + VALIDITY.total_seconds()


def test_reused_on_second_call(tmp_path) -> None:
    first = ensure_certificate(tmp_path, now=NOW)
    pem = first.certificate.read_bytes(), first.private_key.read_bytes()
    second = ensure_certificate(tmp_path, now=NOW + 86400)
    assert second == first
    assert (second.certificate.read_bytes(), second.private_key.read_bytes()) == pem


def test_renewed_when_expired_or_missing(tmp_path) -> None:
    first = ensure_certificate(tmp_path, now=NOW)
    pem = first.certificate.read_bytes()
    later = ensure_certificate(tmp_path, now=NOW + VALIDITY.total_seconds() + 1)
    assert later.certificate.read_bytes() != pem
    pem = later.certificate.read_bytes()
    later.private_key.unlink()
    assert ensure_certificate(tmp_path, now=NOW).certificate.read_bytes() != pem
