"""
DTLS record and handshake headers: a pure codec for looking at DTLS on the wire.

The DTLS endpoint (:mod:`realtime.dtls.endpoint`) hands records to OpenSSL
and never needs this module to *speak* DTLS.  It exists so that the media
adapter can make quick checks on a datagram (is this a ClientHello?), so
that the endpoint can pack OpenSSL's output into datagrams of at most one
MTU on record boundaries, and so that ``realtime-replay`` can print what a
capture carries.  Nothing here decrypts.

DTLS 1.2 record layer, RFC 6347 §4.1 (one datagram may carry several
records, §4.1.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  ContentType  |     ProtocolVersion (0xFEFD = DTLS 1.2)       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |            epoch              |                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+     sequence_number (48 bits) |
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |            length             |  fragment (length bytes) ...  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Handshake message header inside an epoch-0 handshake record, RFC 6347
§4.2.2 (a record may carry several, and a message may be split into
fragments across records)::

    +---------------+-----------------------------------------------+
    |   msg_type    |                 length (24)                   |
    +---------------+---------------+-------------------------------+
    |        message_seq (16)       |      fragment_offset (24) ... |
    +---------------+---------------+---------------+---------------+
    |  ... offset   |             fragment_length (24)              |
    +---------------+-----------------------------------------------+
    |                 body fragment (fragment_length bytes) ...     |

DTLS 1.3 records (RFC 9147 §4) start with a unified header whose first
byte is ``001CSLEE``; they are kept as :class:`CiphertextRecord`.  When the
C bit says a connection ID is present its length is not on the wire (it was
negotiated), so such a record is kept whole, to the end of the datagram.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from realtime.errors import DecodeError, LocalProtocolError
from realtime.wire import Reader, Writer

RECORD_HEADER_LENGTH = 13
"""Bytes before the fragment of a DTLS 1.0/1.2 record (RFC 6347 §4.1)."""

HANDSHAKE_HEADER_LENGTH = 12
"""Bytes before the body of a DTLS handshake fragment (RFC 6347 §4.2.2)."""

MAX_RECORD_LENGTH = 2**14 + 2048
"""Largest ``length`` of a protected record (RFC 6347 §4.1, RFC 5246 §6.2.3)."""

DTLS_1_0 = 0xFEFF
"""``ProtocolVersion`` of DTLS 1.0 (RFC 4347), also used in first ClientHellos."""

DTLS_1_2 = 0xFEFD
"""``ProtocolVersion`` of DTLS 1.2 (RFC 6347 §4.1)."""


class ContentType(IntEnum):
    """TLS ContentType registry values that appear in DTLS records."""

    CHANGE_CIPHER_SPEC = 20  #: RFC 5246 §7.1
    ALERT = 21  #: RFC 5246 §7.2
    HANDSHAKE = 22  #: RFC 5246 §7.4, RFC 6347 §4.2
    APPLICATION_DATA = 23  #: RFC 5246 §10
    HEARTBEAT = 24  #: RFC 6520
    TLS12_CID = 25  #: RFC 9146 §4
    ACK = 26  #: RFC 9147 §7


class HandshakeType(IntEnum):
    """TLS HandshakeType registry values used by DTLS 1.2."""

    HELLO_REQUEST = 0  #: RFC 5246 §7.4.1.1
    CLIENT_HELLO = 1  #: RFC 5246 §7.4.1.2, cookie per RFC 6347 §4.2.1
    SERVER_HELLO = 2  #: RFC 5246 §7.4.1.3
    HELLO_VERIFY_REQUEST = 3  #: RFC 6347 §4.2.1
    NEW_SESSION_TICKET = 4  #: RFC 5077 §3.3
    CERTIFICATE = 11  #: RFC 5246 §7.4.2
    SERVER_KEY_EXCHANGE = 12  #: RFC 5246 §7.4.3
    CERTIFICATE_REQUEST = 13  #: RFC 5246 §7.4.4
    SERVER_HELLO_DONE = 14  #: RFC 5246 §7.4.5
    CERTIFICATE_VERIFY = 15  #: RFC 5246 §7.4.8
    CLIENT_KEY_EXCHANGE = 16  #: RFC 5246 §7.4.7
    FINISHED = 20  #: RFC 5246 §7.4.9


@dataclass(frozen=True, slots=True)
class Record:
    """One DTLS 1.0/1.2 record (RFC 6347 §4.1); the fragment is kept opaque.

    :ivar content_type: a :class:`ContentType` value (unknown values kept).
    :ivar version: ``ProtocolVersion`` as a 16-bit integer (0xFEFD, 0xFEFF...).
    :ivar epoch: cipher-state counter, 0 before ChangeCipherSpec.
    :ivar sequence_number: 48-bit record number within the epoch.
    :ivar fragment: the record body (plaintext in epoch 0, else protected).
    """

    content_type: int
    version: int
    epoch: int
    sequence_number: int
    fragment: bytes

    @classmethod
    def decode(cls, data: bytes) -> "Record":
        """Decode exactly one record; trailing bytes are a :class:`DecodeError`."""
        reader = Reader(data, "DTLS record")
        record = cls.read(reader)
        reader.expect_end()
        return record

    @classmethod
    def read(cls, reader: Reader) -> "Record":
        """Read one record from ``reader`` and leave it after the fragment."""
        content_type = reader.u8()
        if not 20 <= content_type <= 31:
            raise DecodeError(f"DTLS record content type {content_type} is not in 20..31")
        version = reader.u16()
        epoch = reader.u16()
        sequence_number = (reader.u16() << 32) | reader.u32()
        length = reader.u16()
        if length > MAX_RECORD_LENGTH:
            raise DecodeError(f"DTLS record length {length} exceeds {MAX_RECORD_LENGTH}")
        return cls(content_type, version, epoch, sequence_number, reader.bytes(length))

    def encode(self) -> bytes:
        """Return the record header followed by the fragment."""
        if len(self.fragment) > MAX_RECORD_LENGTH:
            raise LocalProtocolError(f"DTLS fragment of {len(self.fragment)} bytes is too long")
        writer = Writer()
        writer.u8(self.content_type).u16(self.version).u16(self.epoch)
        writer.u16(self.sequence_number >> 32).u32(self.sequence_number & 0xFFFFFFFF)
        writer.u16(len(self.fragment)).bytes(self.fragment)
        return writer.getvalue()

    def handshake_fragments(self) -> tuple["HandshakeFragment", ...]:
        """Parse the fragment as plaintext handshake messages (epoch 0 only)."""
        if self.content_type != ContentType.HANDSHAKE:
            raise DecodeError(f"DTLS record of content type {self.content_type} is not a handshake")
        if self.epoch != 0:
            raise DecodeError(f"DTLS handshake record in epoch {self.epoch} is encrypted")
        return parse_handshake(self.fragment)


@dataclass(frozen=True, slots=True)
class CiphertextRecord:
    """One DTLS 1.3 record with a unified header (RFC 9147 §4), kept opaque.

    :ivar header: the unified header bytes (``001CSLEE`` flags, sequence
        number bits, length) -- with the C bit set, only the flags byte.
    :ivar encrypted_record: everything after the header.
    """

    header: bytes
    encrypted_record: bytes

    @property
    def flags(self) -> int:
        """Return the first byte, ``001CSLEE``."""
        return self.header[0]

    @classmethod
    def read(cls, reader: Reader) -> "CiphertextRecord":
        """Read one unified-header record from ``reader``."""
        flags = reader.u8()
        if flags & 0xE0 != 0x20:
            raise DecodeError(f"DTLS 1.3 header byte {flags:#04x} is not 001CSLEE")
        if flags & 0x10:  # C: connection ID of negotiated (unknown) length
            return cls(bytes([flags]), reader.rest())
        header = Writer().u8(flags)
        header.bytes(reader.bytes(2 if flags & 0x08 else 1))
        if flags & 0x04:
            length = reader.u16()
            header.u16(length)
            body = reader.bytes(length)
        else:
            body = reader.rest()
        return cls(header.getvalue(), body)

    def encode(self) -> bytes:
        """Return the header followed by the encrypted record."""
        return self.header + self.encrypted_record


@dataclass(frozen=True, slots=True)
class HandshakeFragment:
    """One handshake message fragment (RFC 6347 §4.2.2).

    :ivar msg_type: a :class:`HandshakeType` value (unknown values kept).
    :ivar length: length of the whole message body.
    :ivar message_seq: handshake message sequence number.
    :ivar fragment_offset: where this fragment starts in the body.
    :ivar body: the fragment bytes (``fragment_length`` is ``len(body)``).
    """

    msg_type: int
    length: int
    message_seq: int
    fragment_offset: int
    body: bytes

    @property
    def fragment_length(self) -> int:
        """Return the number of body bytes carried here."""
        return len(self.body)

    @property
    def is_complete(self) -> bool:
        """Return True when this fragment carries the whole message."""
        return self.fragment_offset == 0 and len(self.body) == self.length

    @classmethod
    def read(cls, reader: Reader) -> "HandshakeFragment":
        """Read one handshake fragment header and its body."""
        msg_type = reader.u8()
        length = reader.u24()
        message_seq = reader.u16()
        fragment_offset = reader.u24()
        fragment_length = reader.u24()
        if fragment_offset + fragment_length > length:
            raise DecodeError(
                f"DTLS handshake fragment {fragment_offset}+{fragment_length} "
                f"overruns message length {length}"
            )
        return cls(msg_type, length, message_seq, fragment_offset, reader.bytes(fragment_length))

    @classmethod
    def decode(cls, data: bytes) -> "HandshakeFragment":
        """Decode exactly one handshake fragment."""
        reader = Reader(data, "DTLS handshake")
        fragment = cls.read(reader)
        reader.expect_end()
        return fragment

    def encode(self) -> bytes:
        """Return the 12-byte header followed by the body fragment."""
        writer = Writer().u8(self.msg_type).u24(self.length).u16(self.message_seq)
        writer.u24(self.fragment_offset).u24(len(self.body)).bytes(self.body)
        return writer.getvalue()


AnyRecord = Record | CiphertextRecord


def parse_records(datagram: bytes) -> tuple[AnyRecord, ...]:
    """Split a datagram into its records (RFC 6347 §4.1.1, RFC 9147 §4).

    Raises :class:`DecodeError` if any record is malformed or truncated; an
    empty datagram is an error too.
    """
    if not datagram:
        raise DecodeError("DTLS datagram is empty")
    reader = Reader(datagram, "DTLS record")
    records: list[AnyRecord] = []
    while reader.remaining:
        if datagram[reader.position] & 0xE0 == 0x20:
            records.append(CiphertextRecord.read(reader))
        else:
            records.append(Record.read(reader))
    return tuple(records)


def encode_records(records: "list[AnyRecord] | tuple[AnyRecord, ...]") -> bytes:
    """Return the datagram that carries ``records`` back to back."""
    return b"".join(record.encode() for record in records)


def parse_handshake(fragment: bytes) -> tuple[HandshakeFragment, ...]:
    """Split a plaintext handshake record fragment into handshake fragments."""
    reader = Reader(fragment, "DTLS handshake")
    messages: list[HandshakeFragment] = []
    while reader.remaining:
        messages.append(HandshakeFragment.read(reader))
    return tuple(messages)


def is_client_hello(datagram: bytes) -> bool:
    """Return True if the datagram starts with an epoch-0 ClientHello record.

    A header-only check for adapters (RFC 6347 §4.2.1): content type 22,
    epoch 0 and handshake type 1 at offset 13.  It never raises.
    """
    return (
        len(datagram) > RECORD_HEADER_LENGTH
        and datagram[0] == ContentType.HANDSHAKE
        and datagram[3] == 0
        and datagram[4] == 0
        and datagram[RECORD_HEADER_LENGTH] == HandshakeType.CLIENT_HELLO
    )


def pack_datagrams(data: bytes, mtu: int) -> list[bytes]:
    """Split concatenated records into datagrams of at most ``mtu`` bytes.

    Records are never split (RFC 6347 §4.1.1); a record longer than ``mtu``
    travels alone.  ``data`` comes from our own OpenSSL, so a malformed
    record is a :class:`DecodeError` just the same.
    """
    datagrams: list[bytes] = []
    current = b""
    for record in parse_records(data):
        encoded = record.encode()
        if current and len(current) + len(encoded) > mtu:
            datagrams.append(current)
            current = b""
        current += encoded
    if current:
        datagrams.append(current)
    return datagrams
