"""
The self-signed TLS certificate of the HTTPS API and the TURN-over-TLS port.

Created once in the state directory and reused on every start, so clients
that chose to trust it (``curl --cacert``, ``NODE_EXTRA_CA_CERTS``, a
browser exception) keep trusting it::

    state-dir/tls/           (mode 0700)
        key.pem              ECDSA P-256 private key, PKCS#8 PEM (mode 0600)
        cert.pem             X.509 v3, self-signed, SHA-256 (mode 0644)

The certificate names ``CN=realtime`` and carries subjectAltName entries for
``localhost``, 127.0.0.1, ::1 and the addresses given (the public IP), so
hostname checks pass against those.  It is replaced only when a file is
missing or the certificate has expired.  This is the *server* TLS
certificate; DTLS certificates of PeerConnections live in realtime/dtls.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from realtime.dtls.certificate import self_signed as build_self_signed

#: How long a generated certificate is valid (the CA/B limit browsers accept).
VALIDITY = datetime.timedelta(days=397)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the PEM files of the server certificate are."""

    certificate: Path
    private_key: Path


def ensure_certificate(
    directory: str | os.PathLike[str], addresses: tuple[str, ...] = (), now: float | None = None
) -> TlsFiles:
    """Return the certificate files in ``directory``, creating them on first use.

    :param directory: e.g. ``state-dir/tls``; created with mode 0700.
    :param addresses: extra IP addresses or DNS names for subjectAltName.
    :param now: the issue time (seconds since the epoch); ``None`` for the clock.
    """
    folder = Path(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = TlsFiles(folder / "cert.pem", folder / "key.pem")
    issued = (
        datetime.datetime.now(datetime.timezone.utc)
        if now is None
        else datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    )
    if _usable(files, issued):
        return files
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed(key, addresses, issued)
    _write(files.private_key, key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ), 0o600)
    _write(files.certificate, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def self_signed(
    key: ec.EllipticCurvePrivateKey, addresses: tuple[str, ...], issued: datetime.datetime
) -> x509.Certificate:
    """Return a self-signed server certificate for ``key`` naming localhost and ``addresses``."""
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for entry in ("127.0.0.1", "::1", *addresses):
        try:
            general: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(entry))
        except ValueError:
            general = x509.DNSName(entry)
        if general not in alt_names:
            alt_names.append(general)
    return build_self_signed(key, "realtime", issued - datetime.timedelta(hours=1),
                             issued + VALIDITY, alt_names=alt_names, server_auth=True)


def _usable(files: TlsFiles, now: datetime.datetime) -> bool:
    if not (files.certificate.exists() and files.private_key.exists()):
        return False
    try:
        certificate = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    except ValueError:
        return False
    return certificate.not_valid_after_utc > now


def _write(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
