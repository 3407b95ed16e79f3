"""
DTLS 1.2 for WebRTC (RFC 6347, RFC 5763, RFC 5764): certificates and SDP
fingerprints (:mod:`.certificate`), the sans-I/O DTLS-SRTP endpoint over
OpenSSL memory BIOs (:mod:`.endpoint`) and a pure record-header codec for
inspecting DTLS datagrams (:mod:`.record`).

This package is the only one that imports OpenSSL or ``cryptography``.
"""

from realtime.dtls.certificate import (
    Certificate,
    FingerprintError,
    fingerprint_of,
    matches_fingerprint,
    parse_fingerprint,
)
from realtime.dtls.endpoint import (
    ApplicationDataReceived,
    ConnectionClosed,
    DtlsEndpoint,
    HandshakeCompleted,
    HandshakeFailed,
    split_srtp_keying,
)
from realtime.dtls.record import (
    CiphertextRecord,
    ContentType,
    HandshakeFragment,
    HandshakeType,
    Record,
    is_client_hello,
    parse_records,
)

__all__ = [
    "ApplicationDataReceived",
    "Certificate",
    "CiphertextRecord",
    "ConnectionClosed",
    "ContentType",
    "DtlsEndpoint",
    "FingerprintError",
    "HandshakeCompleted",
    "HandshakeFailed",
    "HandshakeFragment",
    "HandshakeType",
    "Record",
    "fingerprint_of",
    "is_client_hello",
    "matches_fingerprint",
    "parse_fingerprint",
    "parse_records",
    "split_srtp_keying",
]
