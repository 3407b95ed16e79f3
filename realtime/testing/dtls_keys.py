"""
SRTP keys of a capture, derived from its DTLS 1.2 handshakes and an NSS key log.

A key log line (NSS format, what ``--dtls-keylog`` and ``SSLKEYLOGFILE``
write) gives the master secret of the handshake whose ClientHello carried
``client_random``::

    CLIENT_RANDOM <client_random, 64 hex> <master_secret, 96 hex>

Everything else DTLS-SRTP needs travels in the clear in epoch 0
(RFC 6347 §4.2, RFC 5246 §7.4.1)::

    ClientHello  client_version(2) random(32) ...                 -> client_random
    ServerHello  server_version(2) random(32) session_id<0..32>
                 cipher_suite(2) compression(1) extensions<..>    -> server_random,
                                                                     PRF hash,
                 use_srtp (type 14): profiles<2> profile(2) mki<1>   profile

The SRTP keying material is then the TLS exporter (RFC 5705 §4, RFC 5764
§4.2) with no context value::

    PRF(master_secret, "EXTRACTOR-dtls_srtp", client_random + server_random)
      = client_write_key | server_write_key | client_write_salt | server_write_salt

where PRF is the TLS 1.2 ``P_<hash>`` expansion (RFC 5246 §5) with SHA-256,
or SHA-384 for the ``*_SHA384`` cipher suites.  DTLS 1.3 is not covered
(its exporter needs the exporter secret, which NSS logs under another
label, and its hellos are not what this parser reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from realtime.addresses import Address
from realtime.dtls.keylog import tls12_prf
from realtime.dtls.record import ContentType, HandshakeType, Record, parse_records
from realtime.errors import DecodeError
from realtime.srtp.profiles import SrtpProtectionProfile
from realtime.testing.srtp_keys import SrtpKeys
from realtime.wire import Reader

EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"
"""RFC 5764 §4.2: the exporter label of DTLS-SRTP."""

USE_SRTP = 14
"""RFC 5764 §4.1.1: the ``use_srtp`` extension type."""

#: TLS 1.2 cipher suites whose PRF hash is SHA-384 (RFC 5289 §3, RFC 5288 §3).
SHA384_SUITES = frozenset({0x009D, 0x009F, 0x00A3, 0x00A5, 0x00A7, 0xC024, 0xC028, 0xC02C,
                           0xC030, 0xC032, 0xC02E})


def read_nss_keylog(path: str | Path) -> dict[bytes, bytes]:
    """Return ``client_random -> master_secret`` of every ``CLIENT_RANDOM`` line."""
    secrets: dict[bytes, bytes] = {}
    for line in Path(path).read_text(encoding="ascii", errors="replace").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == "CLIENT_RANDOM":
            secrets[bytes.fromhex(fields[1])] = bytes.fromhex(fields[2])
    return secrets


def hello_fields(body: bytes, server: bool) -> tuple[bytes, int, int | None]:
    """Return ``(random, cipher_suite, use_srtp profile)`` of a hello body (suite 0 for a ClientHello)."""
    reader = Reader(body, "DTLS hello")
    reader.u16()  # version
    random = reader.bytes(32)
    if not server:
        return random, 0, None
    reader.bytes(reader.u8())  # session_id
    suite = reader.u16()
    reader.u8()  # compression_method
    profile = None
    if reader.remaining:
        extensions = Reader(reader.bytes(reader.u16()), "DTLS hello extensions")
        while extensions.remaining:
            ext_type, data = extensions.u16(), extensions.bytes(extensions.u16())
            if ext_type == USE_SRTP and len(data) >= 4:
                profile = int.from_bytes(data[2:4], "big")
    return random, suite, profile


def hellos(datagram: bytes) -> Iterable[tuple[int, bytes]]:
    """Yield ``(msg_type, body)`` of the whole epoch-0 hellos in a datagram."""
    for record in parse_records(datagram):
        if not isinstance(record, Record) or record.content_type != ContentType.HANDSHAKE:
            continue
        if record.epoch != 0:
            continue
        for fragment in record.handshake_fragments():
            if fragment.msg_type in (HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO) \
                    and fragment.fragment_offset == 0 and len(fragment.body) >= 34:
                yield fragment.msg_type, fragment.body


def derive_srtp_keys(datagrams: Iterable[tuple[Address, Address, bytes]],
                     secrets: dict[bytes, bytes]) -> list[SrtpKeys]:
    """Return the :class:`SrtpKeys` of every handshake in ``(src, dst, datagram)`` with a logged secret.

    The DTLS client (the sender of the ClientHello) becomes the ``peer``.
    Datagrams that are not well-formed DTLS are skipped.
    """
    client_randoms: dict[tuple[Address, Address], bytes] = {}
    keys: list[SrtpKeys] = []
    for src, dst, datagram in datagrams:
        try:
            for msg_type, body in list(hellos(datagram)):
                server = msg_type == HandshakeType.SERVER_HELLO
                random, suite, profile_id = hello_fields(body, server)
                if not server:
                    client_randoms[(src, dst)] = random
                    continue
                client_random = client_randoms.get((dst, src))
                secret = secrets.get(client_random) if client_random else None
                if secret is None or client_random is None or profile_id is None:
                    continue
                keys.append(_keys(dst, secret, client_random, random, suite, profile_id))
        except DecodeError:
            continue
    return keys


def _keys(client: Address, master_secret: bytes, client_random: bytes, server_random: bytes,
          suite: int, profile_id: int) -> SrtpKeys:
    profile = SrtpProtectionProfile.lookup(profile_id)
    key_len, salt_len = profile.key_length, profile.salt_length
    hash_name = "sha384" if suite in SHA384_SUITES else "sha256"
    material = tls12_prf(master_secret, EXPORTER_LABEL, client_random + server_random,
                         2 * (key_len + salt_len), hash_name)
    client_key, server_key = material[:key_len], material[key_len:2 * key_len]
    salts = material[2 * key_len:]
    client_salt, server_salt = salts[:salt_len], salts[salt_len:]
    return SrtpKeys(client, profile.name, (client_key, client_salt), (server_key, server_salt))

