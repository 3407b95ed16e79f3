"""
TLS for the private API: one certificate per process, pinned through the node registry.

A forwarded API call carries the client's bearer secret and SDP
(:mod:`realtime.cluster.forward`), so it crosses the node network inside TLS
(RFC 8446).  No certificate authority is involved: each node makes a fresh
self-signed certificate when it starts (P-256, valid for a year; it lives only
in memory) and announces it in its :class:`~realtime.cluster.records.NodeRecord`
next to the private address.  The forwarding node trusts exactly that
certificate for exactly that address -- the registry is the trust anchor, as it
already is for the relay link's members and for the app secrets it holds::

    node A starts:  key, certificate ──> rt:node:node-a {api_address, api_certificate}
    node B forwards: GET rt:node:node-a ──> pin (address -> certificate)
                     TLS to address, trust root = the pinned certificate only,
                     server name = SERVER_NAME (the certificate's only subjectAltName)

Someone who can divert node B's traffic but cannot write Redis cannot pose as A;
someone who can write Redis can anyway read every app secret in it.
"""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from realtime.dtls.certificate import self_signed

#: The name every private API certificate carries and every forwarder checks.
SERVER_NAME = "realtime-cluster-api"
#: How long a certificate made at start stays valid.
VALIDITY = datetime.timedelta(days=365)
#: Pinned addresses remembered (nodes that restart get new ports); the oldest go first.
MAX_PINS = 1024


def private_certificate(now: float) -> tuple[bytes, bytes]:
    """Return ``(certificate PEM, private key PEM)``: a fresh self-signed P-256 certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    certificate = self_signed(key, SERVER_NAME, issued - datetime.timedelta(hours=1),
                              issued + VALIDITY, alt_names=[x509.DNSName(SERVER_NAME)])
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def server_options(certificate_pem: bytes, key_pem: bytes) -> Any:
    """Return the TLS server options of the private listener."""
    private = PrivateCertificate.loadPEM(certificate_pem + key_pem)
    return private.options()


def split_address(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[IPv6]:PORT``) into host (no brackets) and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@implementer(IPolicyForHTTPS)
class PinnedCertificates:
    """An HTTPS policy for :class:`twisted.web.client.Agent` trusting one certificate per address."""

    def __init__(self) -> None:
        self._pins: dict[tuple[str, int], tuple[bytes, Any]] = {}

    def pin(self, address: str, certificate_pem: bytes) -> None:
        """Trust ``certificate_pem`` (and nothing else) for ``address`` from now on."""
        where = split_address(address)
        known = self._pins.get(where)
        if known is not None and known[0] == certificate_pem:
            return
        self._pins.pop(where, None)
        options = optionsForClientTLS(SERVER_NAME,
                                      trustRoot=Certificate.loadPEM(certificate_pem))
        self._pins[where] = (certificate_pem, options)
        while len(self._pins) > MAX_PINS:
            del self._pins[next(iter(self._pins))]

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802 (Twisted name)
        """Return the client TLS options pinned for ``hostname:port``; raise if none is."""
        pinned = self._pins.get((hostname.decode("ascii").strip("[]"), port))
        if pinned is None:
            raise ValueError(f"no certificate pinned for {hostname!r}:{port}")
        return pinned[1]
