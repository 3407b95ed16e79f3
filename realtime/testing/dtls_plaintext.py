"""
Decrypt the protected DTLS 1.2 records of a capture, given an NSS key log.

After ChangeCipherSpec every record of a DTLS connection (epoch >= 1) is
encrypted: the Finished messages, alerts, and in WebRTC the SCTP packets
that carry DataChannels (RFC 8261 §4).  :class:`DtlsDecryptor` watches the
capture's epoch-0 hellos to learn, per connection, what a key log line does
not say::

    client ──ClientHello(client_random)──────────────> server   key log:
    client <──ServerHello(server_random, cipher_suite)── server   client_random -> master_secret
            ... ChangeCipherSpec, epoch 1 ...
    client ══application_data (client_write_*)═══════> server
    client <═application_data (server_write_*)════════ server

and then opens each protected record with
:class:`realtime.dtls.keylog.RecordProtection` (RFC 5246 §6.3 key block,
RFC 5288 / RFC 7905 AEAD).  A connection is the pair of addresses; the
sender of the ClientHello is the DTLS client.  A HelloVerifyRequest round
repeats the same ClientHello random (RFC 6347 §4.2.1), and a later
handshake on the same pair replaces the keys.

:func:`summarize_plaintext` turns what a record held into one line part:
``FINISHED#5`` for a handshake record, ``alert warning close_notify``, or
the SCTP packet of an application_data record
(:func:`realtime.testing.sctp_summary.summarize_sctp`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from realtime.addresses import Address
from realtime.dtls.keylog import KeyBlock, UnsupportedSuite
from realtime.dtls.record import ContentType, HandshakeType, Record, parse_handshake, parse_records
from realtime.errors import DecodeError
from realtime.testing.dtls_keys import hello_fields, hellos
from realtime.testing.sctp_summary import summarize_sctp

ALERT_DESCRIPTIONS = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
    40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
    44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
    47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
    51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
    80: "internal_error", 90: "user_canceled", 100: "no_renegotiation",
    110: "unsupported_extension",
}
"""TLS AlertDescription registry names (RFC 5246 §7.2) for the alert lines."""


@dataclass(frozen=True, slots=True)
class OpenedRecord:
    """One protected record of a datagram and what decrypting it gave.

    :ivar record: the record as captured.
    :ivar plaintext: the decrypted fragment, or None when it could not be opened.
    :ivar error: why it could not be opened (``no key ...`` or a DecodeError message).
    """

    record: Record
    plaintext: bytes | None
    error: str = ""


class DtlsDecryptor:
    """Open the protected records of every DTLS 1.2 connection in a capture.

    Feed it every DTLS datagram in capture order through :meth:`open_datagram`.

    :param secrets: ``client_random -> master_secret``
        (:func:`realtime.testing.dtls_keys.read_nss_keylog`).
    """

    def __init__(self, secrets: dict[bytes, bytes]) -> None:
        self.secrets = secrets
        self._client_randoms: dict[tuple[Address, Address], bytes] = {}
        self._keys: dict[tuple[Address, Address], KeyBlock | str] = {}
        #: ``dtls-decrypted``, ``dtls-failed`` and ``dtls-no-key`` per protected record.
        self.counts: Counter[str] = Counter()

    def _learn(self, src: Address, dst: Address, record: Record) -> None:
        """Note the randoms and cipher suite of the hellos in an epoch-0 record."""
        for msg_type, body in hellos(record.encode()):
            server = msg_type == HandshakeType.SERVER_HELLO
            random, suite, _ = hello_fields(body, server)
            if not server:
                self._client_randoms[(src, dst)] = random
                continue
            client_random = self._client_randoms.get((dst, src))
            secret = self.secrets.get(client_random) if client_random else None
            if secret is None or client_random is None:
                self._keys[(dst, src)] = "no key log line for this handshake"
                continue
            try:
                self._keys[(dst, src)] = KeyBlock.derive(secret, client_random, random, suite)
            except UnsupportedSuite as exc:
                self._keys[(dst, src)] = str(exc)

    def _open(self, src: Address, dst: Address, record: Record) -> OpenedRecord:
        if (src, dst) in self._keys:
            keys, client = self._keys[(src, dst)], True
        elif (dst, src) in self._keys:
            keys, client = self._keys[(dst, src)], False
        else:
            keys, client = "no handshake seen for this pair", True
        if isinstance(keys, str):
            self.counts["dtls-no-key"] += 1
            return OpenedRecord(record, None, keys)
        try:
            plaintext = keys.protection(client).decrypt(record)
        except DecodeError as exc:
            self.counts["dtls-failed"] += 1
            return OpenedRecord(record, None, str(exc))
        self.counts["dtls-decrypted"] += 1
        return OpenedRecord(record, plaintext)

    def open_datagram(self, src: Address, dst: Address, datagram: bytes) -> list[OpenedRecord]:
        """Learn from the hellos of a datagram and return its protected records, opened.

        A datagram that is not well-formed DTLS gives ``[]`` (the replay line
        already says ``undecodable``).
        """
        try:
            records = parse_records(datagram)
        except DecodeError:
            return []
        opened = []
        for record in records:
            if not isinstance(record, Record):
                continue  # DTLS 1.3 unified header: not covered
            if record.epoch == 0:
                if record.content_type == ContentType.HANDSHAKE:
                    try:
                        self._learn(src, dst, record)
                    except DecodeError:
                        pass
                continue
            opened.append(self._open(src, dst, record))
        return opened


def summarize_plaintext(opened: OpenedRecord, counts: Counter[str] | None = None) -> str:
    """Return what one opened record holds: SCTP, an alert, handshake messages, or why not."""
    if opened.plaintext is None:
        return f"undecrypted: {opened.error}"
    content_type, plaintext = opened.record.content_type, opened.plaintext
    try:
        if content_type == ContentType.APPLICATION_DATA:
            return summarize_sctp(plaintext, counts)
        if content_type == ContentType.ALERT and len(plaintext) == 2:
            level = {1: "warning", 2: "fatal"}.get(plaintext[0], str(plaintext[0]))
            return f"alert {level} {ALERT_DESCRIPTIONS.get(plaintext[1], plaintext[1])}"
        if content_type == ContentType.HANDSHAKE:
            names = []
            for fragment in parse_handshake(plaintext):
                try:
                    name = HandshakeType(fragment.msg_type).name
                except ValueError:
                    name = f"type{fragment.msg_type}"
                names.append(f"{name}#{fragment.message_seq}")
            return ",".join(names)
    except DecodeError as exc:
        return f"undecodable: {exc}"
    return f"type{content_type} plaintext={len(plaintext)}"
