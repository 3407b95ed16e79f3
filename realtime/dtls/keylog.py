"""
DTLS 1.2 record protection from a logged master secret, for replaying captures.

Our DTLS endpoint lets OpenSSL encrypt and decrypt; this module exists so
that ``realtime-replay --keylog`` can read what a capture carries after the
handshake (SCTP packets, RFC 8261) given the NSS key log line of the
handshake (``CLIENT_RANDOM <client_random> <master_secret>``) and the two
hello randoms, which travel in the clear.

Key expansion (RFC 5246 §6.3), with the TLS 1.2 PRF of §5 (SHA-256, or
SHA-384 for the ``*_SHA384`` suites)::

    key_block = PRF(master_secret, "key expansion", server_random + client_random)
              = client_write_MAC_key | server_write_MAC_key     (empty for AEAD)
              | client_write_key     | server_write_key         (16 or 32 bytes)
              | client_write_IV      | server_write_IV          (4 for GCM, 12 for ChaCha20)

The DTLS client protects with ``client_write_*`` and the server with
``server_write_*``.  Only the AEAD suites WebRTC stacks negotiate are
covered (:data:`AEAD_SUITES`), plus AES-128-CCM-8 (RFC 6655, RFC 7251), whose
records are laid out like GCM's, because the one independent DTLS vector
with published secrets uses it; a CBC suite raises :class:`UnsupportedSuite`.

An AES-GCM or AES-CCM record (RFC 5288 §3, RFC 6655 §3) starts with an
8-byte explicit nonce; the ChaCha20-Poly1305 record (RFC 7905 §2) has none
and XORs the sequence number into the IV instead::

    DTLS record header (13, clear) | nonce_explicit (8, not ChaCha) | ciphertext | tag (16; CCM-8: 8)

    GCM/CCM nonce = client_write_IV(4) | nonce_explicit(8)
    ChaCha nonce = client_write_IV(12) XOR (0(4) | epoch(2) | sequence_number(6))
    additional_data = epoch(2) | sequence_number(6) | type(1) | version(2) | length(2)

where ``length`` is the plaintext length and the 64-bit "seq_num" of TLS is
DTLS's epoch and sequence number together (RFC 6347 §4.1.2.1).  Every
record decrypts on its own: no state is kept between records, so reordered
and lost datagrams in a capture do not matter.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from realtime.dtls.record import Record
from realtime.errors import DecodeError, LocalProtocolError

KEY_EXPANSION_LABEL = b"key expansion"
"""RFC 5246 §6.3: the PRF label of the key block."""

EXPLICIT_NONCE_LENGTH = 8
"""Bytes of ``nonce_explicit`` at the start of an AES-GCM/CCM record (RFC 5288 §3, RFC 6655 §3)."""


@dataclass(frozen=True, slots=True)
class AeadSuite:
    """What record protection needs to know about one TLS 1.2 AEAD cipher suite.

    :ivar name: the IANA name of the suite.
    :ivar key_length: bytes of each ``*_write_key``.
    :ivar iv_length: bytes of each ``*_write_IV`` (the implicit nonce part).
    :ivar hash_name: the PRF hash (``hashlib`` name).
    :ivar cipher: ``"gcm"`` (RFC 5288), ``"ccm8"`` (RFC 6655) or ``"chacha"`` (RFC 7905).
    """

    name: str
    key_length: int
    iv_length: int
    hash_name: str
    cipher: str = "gcm"

    @property
    def tag_length(self) -> int:
        """Return the bytes of the authentication tag (8 for CCM-8, else 16)."""
        return 8 if self.cipher == "ccm8" else 16

    @property
    def explicit_nonce_length(self) -> int:
        """Return the bytes of ``nonce_explicit`` before the ciphertext (0 for ChaCha20)."""
        return 0 if self.cipher == "chacha" else EXPLICIT_NONCE_LENGTH


AEAD_SUITES: dict[int, AeadSuite] = {
    0xC02B: AeadSuite("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 16, 4, "sha256"),  # RFC 5289
    0xC02C: AeadSuite("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 32, 4, "sha384"),  # RFC 5289
    0xC02F: AeadSuite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 16, 4, "sha256"),  # RFC 5289
    0xC030: AeadSuite("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 32, 4, "sha384"),  # RFC 5289
    0xCCA8: AeadSuite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 32, 12, "sha256", "chacha"),
    0xCCA9: AeadSuite("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", 32, 12, "sha256", "chacha"),
    0xC0A8: AeadSuite("TLS_PSK_WITH_AES_128_CCM_8", 16, 4, "sha256", "ccm8"),  # RFC 6655
    0xC0AE: AeadSuite("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", 16, 4, "sha256", "ccm8"),  # RFC 7251
}
"""Cipher suite number -> :class:`AeadSuite`, the suites this module can decrypt."""


class UnsupportedSuite(DecodeError):
    """Raised when a handshake chose a cipher suite outside :data:`AEAD_SUITES`."""


class RecordDecryptionFailed(DecodeError):
    """Raised when a record is too short or its authentication tag does not verify."""


def tls12_prf(secret: bytes, label: bytes, seed: bytes, length: int,
              hash_name: str = "sha256") -> bytes:
    """Return ``length`` bytes of the TLS 1.2 PRF ``P_hash(secret, label + seed)`` (RFC 5246 §5)."""
    seed = label + seed
    out = bytearray()
    a = seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return bytes(out[:length])


def lookup_suite(cipher_suite: int) -> AeadSuite:
    """Return the :class:`AeadSuite` of a cipher suite number.

    :raises UnsupportedSuite: ``"cipher suite 0x.... is not an AEAD suite this replay decrypts"``.
    """
    suite = AEAD_SUITES.get(cipher_suite)
    if suite is None:
        raise UnsupportedSuite(f"cipher suite 0x{cipher_suite:04x} is not an AEAD suite "
                               "this replay decrypts")
    return suite


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """The write keys and IVs of both DTLS roles (RFC 5246 §6.3, no MAC keys for AEAD)."""

    suite: AeadSuite
    client_write_key: bytes
    server_write_key: bytes
    client_write_iv: bytes
    server_write_iv: bytes

    @classmethod
    def derive(cls, master_secret: bytes, client_random: bytes, server_random: bytes,
               cipher_suite: int) -> "KeyBlock":
        """Expand the master secret into the key block of ``cipher_suite``.

        :raises UnsupportedSuite: for a suite outside :data:`AEAD_SUITES`.
        """
        suite = lookup_suite(cipher_suite)
        k, n = suite.key_length, suite.iv_length
        block = tls12_prf(master_secret, KEY_EXPANSION_LABEL, server_random + client_random,
                          2 * (k + n), suite.hash_name)
        return cls(suite, block[:k], block[k:2 * k], block[2 * k:2 * k + n], block[2 * k + n:])

    def protection(self, client: bool) -> "RecordProtection":
        """Return the protection of the records the client (or the server) sends."""
        if client:
            return RecordProtection(self.suite, self.client_write_key, self.client_write_iv)
        return RecordProtection(self.suite, self.server_write_key, self.server_write_iv)


_SEQ = struct.Struct("!HHI")  # epoch, sequence_number high 16, low 32
_AAD_TAIL = struct.Struct("!BHH")  # type, version, length


class RecordProtection:
    """Encrypt and decrypt the records one side of a DTLS 1.2 connection sends.

    :param suite: the negotiated :class:`AeadSuite`.
    :param key: that side's ``*_write_key``.
    :param iv: that side's ``*_write_IV``.
    """

    def __init__(self, suite: AeadSuite, key: bytes, iv: bytes) -> None:
        if len(key) != suite.key_length or len(iv) != suite.iv_length:
            raise LocalProtocolError(f"{suite.name} needs a {suite.key_length}-byte key and a "
                                     f"{suite.iv_length}-byte IV")
        self.suite = suite
        self._iv = iv
        self._aead: ChaCha20Poly1305 | AESCCM | AESGCM
        if suite.cipher == "chacha":
            self._aead = ChaCha20Poly1305(key)
        elif suite.cipher == "ccm8":
            self._aead = AESCCM(key, tag_length=8)
        else:
            self._aead = AESGCM(key)

    def _seq_num(self, record: Record) -> bytes:
        return _SEQ.pack(record.epoch, record.sequence_number >> 32,
                         record.sequence_number & 0xFFFFFFFF)

    def _aad(self, record: Record, seq_num: bytes, plaintext_length: int) -> bytes:
        return seq_num + _AAD_TAIL.pack(record.content_type, record.version, plaintext_length)

    def _chacha_nonce(self, seq_num: bytes) -> bytes:
        padded = bytes(4) + seq_num
        return bytes(a ^ b for a, b in zip(self._iv, padded))

    def decrypt(self, record: Record) -> bytes:
        """Return the plaintext of a protected (epoch >= 1) record.

        :raises RecordDecryptionFailed: ``"DTLS record of N bytes is shorter than
            its M-byte nonce and tag"`` or ``"DTLS record epoch E seq S failed
            authentication"``.
        """
        fragment = record.fragment
        explicit = self.suite.explicit_nonce_length
        overhead = self.suite.tag_length + explicit
        if len(fragment) < overhead:
            raise RecordDecryptionFailed(f"DTLS record of {len(fragment)} bytes is shorter than "
                                         f"its {overhead}-byte nonce and tag")
        seq_num = self._seq_num(record)
        if explicit:
            nonce, sealed = self._iv + fragment[:explicit], fragment[explicit:]
        else:
            nonce, sealed = self._chacha_nonce(seq_num), fragment
        aad = self._aad(record, seq_num, len(sealed) - self.suite.tag_length)
        try:
            return self._aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise RecordDecryptionFailed(f"DTLS record epoch {record.epoch} seq "
                                         f"{record.sequence_number} failed authentication") from None

    def encrypt(self, content_type: int, version: int, epoch: int, sequence_number: int,
                plaintext: bytes) -> Record:
        """Return the protected record of ``plaintext`` (GCM's explicit nonce is the seq_num).

        The explicit nonce choice follows RFC 5288 §3's suggestion; the
        replay never encrypts, the tests do.
        """
        header = Record(content_type, version, epoch, sequence_number, b"")
        seq_num = self._seq_num(header)
        aad = self._aad(header, seq_num, len(plaintext))
        if self.suite.cipher == "chacha":
            fragment = self._aead.encrypt(self._chacha_nonce(seq_num), plaintext, aad)
        else:
            fragment = seq_num + self._aead.encrypt(self._iv + seq_num, plaintext, aad)
        return Record(content_type, version, epoch, sequence_number, fragment)
