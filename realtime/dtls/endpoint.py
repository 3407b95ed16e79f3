"""
DTLS-SRTP endpoint: a sans-I/O DTLS 1.2 machine over OpenSSL memory BIOs.

WebRTC runs one DTLS 1.2 handshake (RFC 6347) per transport to authenticate
the peer against the SDP fingerprint (RFC 8122 §5, RFC 5763 §5) and to agree
SRTP keys through the use_srtp extension (RFC 5764 §4.1); afterwards DTLS
carries SCTP as application data (RFC 8261).  The SDP ``a=setup`` attribute
picks the role: ``active`` is the DTLS client, ``passive`` the server (RFC
5763 §5, RFC 8842 §5.2); the SFU answers ``passive``.

Flights (RFC 6347 §4.2.4), with the stateless cookie exchange of §4.2.1::

    Client (role="client")                          Server (role="server")
    ------                                          ------
    ClientHello  (use_srtp, no cookie)   -------->                 Flight 1
                                         <-------  HelloVerifyRequest  F2
                                                   (cookie = HMAC(secret,
                                                    client address))
    ClientHello  (with cookie)           -------->                 Flight 3
                                                   ServerHello (use_srtp)
                                                   Certificate
                                                   ServerKeyExchange
                                                   CertificateRequest
                                         <-------  ServerHelloDone     F4
    Certificate
    ClientKeyExchange
    CertificateVerify
    [ChangeCipherSpec]
    Finished                             -------->                 Flight 5
                                                   [ChangeCipherSpec]
                                         <-------  Finished            F6
    SCTP/application data               <------->  SCTP/application data

Each side checks the peer's certificate against the remote SDP fingerprints
and, on success, exports 2 * (key + salt) bytes of keying material with the
label ``EXTRACTOR-dtls_srtp`` (RFC 5764 §4.2, RFC 5705)::

    client_write_SRTP_master_key | server_write_SRTP_master_key |
    client_write_SRTP_master_salt | server_write_SRTP_master_salt

OpenSSL does the cryptography; this class moves bytes between the caller
and OpenSSL's memory BIOs, packs OpenSSL's records into datagrams of at
most ``mtu`` bytes (RFC 6347 §4.1.1) and turns outcomes into events.

Retransmission (RFC 6347 §4.2.4.1): a flight waits for the peer's next
flight; the deadline starts from OpenSSL's timer (1 s), doubles on each
expiry up to 60 s, and the handshake fails after
:data:`MAX_RETRANSMISSIONS`.  OpenSSL keeps its own clock for that timer and
this module never reads one, so :meth:`DtlsEndpoint.handle_timer` first asks
OpenSSL to retransmit (fresh record numbers) and, when OpenSSL says its own
timer has not expired yet (the caller's ``now`` is ahead: replay, tests, a
timer that fired a hair early), resends the records of the last flight
byte for byte.  A peer that never saw them accepts those; a peer that did
drops them as replays and recovers at the next expiry.  Deliberate
deviation, so that time stays a parameter.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum

from OpenSSL import SSL, crypto

from realtime.dtls.certificate import Certificate, fingerprint_of, matches_fingerprint
from realtime.dtls.record import DTLS_1_2, pack_datagrams, parse_records
from realtime.dtls.events import (
    ApplicationDataReceived, ConnectionClosed, Event, HandshakeCompleted, HandshakeFailed,
)
from realtime.errors import LocalProtocolError

try:  # the private binding is the only way to set the DTLS MTU on a memory BIO
    from OpenSSL._util import lib as _lib
except ImportError:  # pragma: no cover - depends on the pyOpenSSL build
    _lib = None

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
"""RFC 5764 §4.2 label for the SRTP keying material exporter."""

SRTP_KEY_LENGTHS: dict[str, tuple[int, int]] = {
    "SRTP_AES128_CM_SHA1_80": (16, 14),  # RFC 5764 §4.1.2, id 0x0001
    "SRTP_AES128_CM_SHA1_32": (16, 14),  # RFC 5764 §4.1.2, id 0x0002
    "SRTP_AEAD_AES_128_GCM": (16, 12),  # RFC 7714 §14.2, id 0x0007
    "SRTP_AEAD_AES_256_GCM": (32, 12),  # RFC 7714 §14.2, id 0x0008
}
"""``(master key, master salt)`` lengths of each use_srtp profile name."""

DEFAULT_SRTP_PROFILES = (
    "SRTP_AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM",
    "SRTP_AES128_CM_SHA1_80",
)
"""The profiles we offer, most preferred first."""

class DtlsRole(StrEnum):
    """Which side of the handshake we are: SDP ``a=setup`` decides (RFC 5763 §5, RFC 8842 §5.2)."""

    #: ``setup:active``: sends the ClientHello
    CLIENT = "client"
    #: ``setup:passive`` (what the SFU answers): waits for it, checks cookies
    SERVER = "server"


class DtlsState(StrEnum):
    """Where a :class:`DtlsEndpoint` is; only ``ESTABLISHED`` carries application data."""

    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"
    #: the handshake failed (timeouts, bad fingerprint, fatal alert during it)
    FAILED = "failed"
    #: close_notify sent or received, or a fatal alert after the handshake
    CLOSED = "closed"


def dtls_role(role: str) -> DtlsRole:
    """Return ``role`` as a :class:`DtlsRole`; raise LocalProtocolError if it is neither."""
    try:
        return DtlsRole(role)
    except ValueError:
        raise LocalProtocolError(
            f"DTLS role {role!r} is neither 'client' nor 'server'") from None


INITIAL_RTO = 1.0
"""Initial retransmission timeout, seconds (RFC 6347 §4.2.4.1)."""

MAX_RTO = 60.0
"""Largest retransmission timeout, seconds (RFC 6347 §4.2.4.1)."""

MAX_RETRANSMISSIONS = 7
"""Timer expiries without progress before the handshake fails (about 2 min)."""

DEFAULT_MTU = 1200
"""Largest datagram we send, below the 1280-byte IPv6 minimum with headers."""

MAX_EVENTS = 256
"""Events kept for the caller before the oldest application data is dropped."""


def _cookie_generate(connection: SSL.Connection) -> bytes:
    return connection.get_app_data()._cookie()


def _cookie_verify(connection: SSL.Connection, cookie: bytes) -> bool:
    return hmac.compare_digest(connection.get_app_data()._cookie(), cookie)


def _verify_peer(
    connection: SSL.Connection, x509: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    """Accept the chain, but reject a leaf that contradicts known fingerprints."""
    if depth != 0:
        return True
    return connection.get_app_data()._leaf_acceptable(x509)


class DtlsEndpoint:
    """One DTLS 1.2 connection with use_srtp, driven without I/O or clock.

    :param role: ``"client"`` (SDP ``setup:active``) or ``"server"``.
    :param certificate: our :class:`~realtime.dtls.certificate.Certificate`.
    :param remote_fingerprints: SDP ``(algorithm, value)`` pairs of the peer;
        may be given later with :meth:`set_remote_fingerprints`.
    :param srtp_profiles: use_srtp profile names, most preferred first.
    :param now: the current time; a client sends its ClientHello now.
    :param random: byte source for the cookie secret.
    :param peer_address: the peer's transport address, bound into cookies.
    :param cookie_secret: HMAC key for cookies (share it across endpoints
        to make cookies stateless across restarts of an endpoint).
    :param mtu: largest datagram to emit.
    :param keylog: called with each NSS key log line (bytes, no newline).
    """

    def __init__(
        self,
        role: str,
        certificate: Certificate,
        remote_fingerprints: Iterable[tuple[str, str]] = (),
        srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
        now: float = 0.0,
        random: Callable[[int], bytes] = os.urandom,
        peer_address: tuple[str, int] | None = None,
        cookie_secret: bytes | None = None,
        mtu: int = DEFAULT_MTU,
        keylog: Callable[[bytes], None] | None = None,
    ) -> None:
        role = dtls_role(role)
        unknown = [name for name in srtp_profiles if name not in SRTP_KEY_LENGTHS]
        if unknown or not srtp_profiles:
            raise LocalProtocolError(f"unsupported SRTP profiles {unknown or 'none'}")
        self.role = role
        self.mtu = mtu
        self._remote_fingerprints = list(remote_fingerprints)
        self._cookie_secret = cookie_secret if cookie_secret is not None else random(32)
        self._peer_address = repr(peer_address).encode()
        self._events: deque[Event] = deque()
        self._outgoing: list[bytes] = []
        self._last_flight: list[bytes] = []
        self._deadline: float | None = None
        self._rto = INITIAL_RTO
        self._retransmissions = 0
        self._fingerprint_rejected = False
        self.state = DtlsState.HANDSHAKING
        self._connection = self._make_connection(certificate, srtp_profiles, keylog)
        if role == DtlsRole.CLIENT:
            self._connection.set_connect_state()
            self._drive_handshake(now)
        else:
            self._connection.set_accept_state()

    def _make_connection(
        self,
        certificate: Certificate,
        srtp_profiles: Sequence[str],
        keylog: Callable[[bytes], None] | None,
    ) -> SSL.Connection:
        context = SSL.Context(SSL.DTLS_METHOD)
        context.set_min_proto_version(DTLS_1_2)
        context.set_max_proto_version(DTLS_1_2)
        context.use_certificate(certificate.certificate)
        context.use_privatekey(certificate.private_key)
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _verify_peer)
        context.set_tlsext_use_srtp(":".join(srtp_profiles).encode())
        context.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION)
        if self.role == DtlsRole.SERVER:
            # pyOpenSSL types the constant as optional (absent from old OpenSSL builds)
            context.set_options(SSL.OP_COOKIE_EXCHANGE)  # type: ignore[arg-type]
            context.set_cookie_generate_callback(_cookie_generate)
            context.set_cookie_verify_callback(_cookie_verify)
        if keylog is not None:
            context.set_keylog_callback(lambda connection, line: keylog(line))
        if _lib is not None and hasattr(_lib, "SSL_set_mtu"):
            context.set_options(SSL.OP_NO_QUERY_MTU)
        connection = SSL.Connection(context, None)
        connection.set_app_data(self)
        if _lib is not None and hasattr(_lib, "SSL_set_mtu"):
            _lib.SSL_set_mtu(connection._ssl, self.mtu - 28)  # minus IPv4 + UDP headers
        return connection

    # -- callbacks from OpenSSL -------------------------------------------

    def _cookie(self) -> bytes:
        return hmac.new(self._cookie_secret, self._peer_address, hashlib.sha256).digest()

    def _leaf_acceptable(self, x509: crypto.X509) -> bool:
        if not self._remote_fingerprints:
            return True  # checked at completion, once the SDP has arrived
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, x509)
        if matches_fingerprint(der, self._remote_fingerprints):
            return True
        self._fingerprint_rejected = True
        return False

    # -- inputs -----------------------------------------------------------

    def set_remote_fingerprints(self, fingerprints: Iterable[tuple[str, str]]) -> None:
        """Set the peer's SDP fingerprints (when the answer arrives late)."""
        self._remote_fingerprints = list(fingerprints)

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Feed one datagram from the peer.

        :raises DecodeError: if ``data`` is not DTLS records; the caller
            counts and drops it.  Input after a failure or close is ignored.
        """
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            return
        parse_records(data)
        self._connection.bio_write(data)
        if self.state == DtlsState.HANDSHAKING:
            self._drive_handshake(now)
        if self.state == DtlsState.ESTABLISHED:
            self._read_application_data()
            self._flush()

    def handle_timer(self, now: float) -> None:
        """Retransmit the last flight if the deadline has passed."""
        if self._deadline is None or now < self._deadline:
            return
        if self.state != DtlsState.HANDSHAKING:
            self._deadline = None
            return
        self._retransmissions += 1
        if self._retransmissions > MAX_RETRANSMISSIONS:
            self._fail("handshake timed out")
            return
        try:
            fired = self._connection.DTLSv1_handle_timeout()
        except SSL.Error as error:
            self._fail(f"retransmission failed: {_describe(error)}")
            return
        fresh = self._take_output() if fired else []
        if fresh:
            self._last_flight = fresh
        self._outgoing.extend(self._last_flight)
        self._rto = min(self._rto * 2, MAX_RTO)
        self._deadline = now + self._rto

    def send(self, data: bytes) -> None:
        """Send ``data`` as one application data record.

        :raises LocalProtocolError: before the handshake completes or after
            the connection ends.
        """
        if self.state != DtlsState.ESTABLISHED:
            raise LocalProtocolError(f"cannot send application data while {self.state}")
        self._connection.send(data)
        self._flush()

    def close(self) -> None:
        """Send close_notify (RFC 5246 §7.2.1) and stop; later input is ignored."""
        if self.state == DtlsState.ESTABLISHED:
            try:
                self._connection.shutdown()
            except SSL.Error:
                pass
            self._flush()
        if self.state not in (DtlsState.FAILED,):
            self.state = DtlsState.CLOSED
        self._deadline = None

    # -- outputs ----------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Return and forget the datagrams to send to the peer."""
        datagrams, self._outgoing = self._outgoing, []
        return datagrams

    def get_timer(self) -> float | None:
        """Return the absolute retransmission deadline, or None."""
        return self._deadline

    def next_event(self) -> Event | None:
        """Return the oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    # -- internals --------------------------------------------------------

    def _drive_handshake(self, now: float) -> None:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            self._after_flight(now)
            return
        except SSL.Error as error:
            self._flush()  # the alert OpenSSL wrote
            if self._fingerprint_rejected:
                self._fail("peer certificate does not match the SDP fingerprint")
            else:
                self._fail(f"handshake failed: {_describe(error)}")
            return
        self._after_flight(now)
        self._deadline = None
        self._complete()

    def _after_flight(self, now: float) -> None:
        flight = self._take_output()
        if not flight:
            return
        self._outgoing.extend(flight)
        self._last_flight = flight
        timeout = self._connection.DTLSv1_get_timeout()
        if timeout is None:
            self._deadline = None  # e.g. a HelloVerifyRequest: stateless
            return
        self._rto = max(timeout, 0.0) or INITIAL_RTO
        self._retransmissions = 0
        self._deadline = now + self._rto

    def _complete(self) -> None:
        peer = self._connection.get_peer_certificate()
        if peer is None:
            self._fail("peer sent no certificate")
            return
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, peer)
        if not matches_fingerprint(der, self._remote_fingerprints):
            self._connection.shutdown()
            self._flush()
            self._fail("peer certificate does not match the SDP fingerprint")
            return
        profile = self._connection.get_selected_srtp_profile().decode("ascii")
        local = remote = (b"", b"")
        if profile in SRTP_KEY_LENGTHS:
            key_length, salt_length = SRTP_KEY_LENGTHS[profile]
            material = self._connection.export_keying_material(
                EXPORTER_LABEL, 2 * (key_length + salt_length)
            )
            client, server = split_srtp_keying(material, key_length, salt_length)
            local, remote = (client, server) if self.role == DtlsRole.CLIENT else (server, client)
        self.state = DtlsState.ESTABLISHED
        self._events.append(HandshakeCompleted(profile, local, remote, fingerprint_of(der)))

    def _read_application_data(self) -> None:
        while True:
            try:
                data = self._connection.recv(65536)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self.state = DtlsState.CLOSED
                self._events.append(ConnectionClosed())
                return
            except SSL.Error:
                self.state = DtlsState.CLOSED
                self._events.append(ConnectionClosed())
                return
            if len(self._events) >= MAX_EVENTS:
                continue  # the caller is not draining events: drop, bounded
            self._events.append(ApplicationDataReceived(data))

    def _take_output(self) -> list[bytes]:
        chunks = []
        while True:
            try:
                chunks.append(self._connection.bio_read(65536))
            except SSL.WantReadError:
                break
        if not chunks:
            return []
        return pack_datagrams(b"".join(chunks), self.mtu)

    def _flush(self) -> None:
        self._outgoing.extend(self._take_output())

    def _fail(self, reason: str) -> None:
        self.state = DtlsState.FAILED
        self._deadline = None
        self._events.append(HandshakeFailed(reason))


def split_srtp_keying(
    material: bytes, key_length: int, salt_length: int
) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    """Split RFC 5764 §4.2 exporter output into client and server (key, salt).

    :returns: ``((client_key, client_salt), (server_key, server_salt))``.
    """
    if len(material) != 2 * (key_length + salt_length):
        raise LocalProtocolError(f"{len(material)} bytes of keying material is the wrong size")
    client_key = material[:key_length]
    server_key = material[key_length : 2 * key_length]
    salts = material[2 * key_length :]
    return (client_key, salts[:salt_length]), (server_key, salts[salt_length:])


def _describe(error: SSL.Error) -> str:
    """Return OpenSSL's reason strings from an exception, or its repr."""
    try:
        reasons = [entry[2] for entry in error.args[0] if len(entry) > 2]
    except (IndexError, TypeError):
        reasons = []
    return ", ".join(str(reason) for reason in reasons) or repr(error)
