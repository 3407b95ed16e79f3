"""
SCTP chunk parameters and error causes: the TLVs inside chunks.

INIT, INIT ACK, HEARTBEAT and RE-CONFIG chunks carry *parameters*; ABORT
and ERROR chunks carry *error causes*.  Both have the same shape (RFC 9260
§3.2.1 and §3.3.10)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      Parameter Type (Cause Code)  |   Length (header + value)  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    \\                Value, then 0-3 zero bytes of padding           \\
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The length excludes the padding, and the chunk's own length excludes the
padding of its *last* parameter (RFC 9260 §3.2): :func:`encode_tlvs` and
:func:`decode_tlvs` follow that rule so captures re-encode byte for byte.

Parameters this stack acts on are typed; every other one is kept as a
:class:`RawParameter` (unknown things are kept, not dropped).  The RE-CONFIG
parameters come from RFC 6525 §4::

    Outgoing SSN Reset Request (13)       Re-configuration Response (16)
    +-------------------------------+     +-------------------------------+
    | Re-config Request Seq Number  |     | Re-config Response Seq Number |
    | Re-config Response Seq Number |     | Result                        |
    | Sender's Last Assigned TSN    |     | [Sender's Next TSN]           |
    | Stream Number 1 | Stream N .. |     | [Receiver's Next TSN]         |
    +-------------------------------+     +-------------------------------+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, ClassVar, Iterable, Union

from realtime.errors import DecodeError
from realtime.wire import Reader, padding_length


class ParameterType(IntEnum):
    """IANA "Chunk Parameter Types" that appear in WebRTC's SCTP."""

    HEARTBEAT_INFO = 1  #: RFC 9260 §3.3.5
    IPV4_ADDRESS = 5  #: RFC 9260 §3.3.2.1
    IPV6_ADDRESS = 6  #: RFC 9260 §3.3.2.1
    STATE_COOKIE = 7  #: RFC 9260 §3.3.3.1
    UNRECOGNIZED_PARAMETER = 8  #: RFC 9260 §3.3.3.1
    COOKIE_PRESERVATIVE = 9  #: RFC 9260 §3.3.2.1
    SUPPORTED_ADDRESS_TYPES = 12  #: RFC 9260 §3.3.2.1
    OUTGOING_SSN_RESET_REQUEST = 13  #: RFC 6525 §4.1
    INCOMING_SSN_RESET_REQUEST = 14  #: RFC 6525 §4.2
    SSN_TSN_RESET_REQUEST = 15  #: RFC 6525 §4.3
    RECONFIGURATION_RESPONSE = 16  #: RFC 6525 §4.4
    ADD_OUTGOING_STREAMS_REQUEST = 17  #: RFC 6525 §4.5
    ADD_INCOMING_STREAMS_REQUEST = 18  #: RFC 6525 §4.6
    ECN_CAPABLE = 0x8000  #: RFC 9260 Appendix A
    RANDOM = 0x8002  #: RFC 4895 §3.1
    CHUNK_LIST = 0x8003  #: RFC 4895 §3.2
    REQUESTED_HMAC_ALGORITHM = 0x8004  #: RFC 4895 §3.3
    PADDING = 0x8005  #: RFC 4820 §3
    SUPPORTED_EXTENSIONS = 0x8008  #: RFC 5061 §4.2.7
    FORWARD_TSN_SUPPORTED = 0xC000  #: RFC 3758 §3.1
    ADAPTATION_LAYER_INDICATION = 0xC006  #: RFC 5061 §4.2.6


class CauseCode(IntEnum):
    """IANA "Error Cause Codes" (RFC 9260 §3.3.10 unless noted)."""

    INVALID_STREAM_IDENTIFIER = 1
    MISSING_MANDATORY_PARAMETER = 2
    STALE_COOKIE = 3
    OUT_OF_RESOURCE = 4
    UNRESOLVABLE_ADDRESS = 5
    UNRECOGNIZED_CHUNK_TYPE = 6
    INVALID_MANDATORY_PARAMETER = 7
    UNRECOGNIZED_PARAMETERS = 8
    NO_USER_DATA = 9
    COOKIE_RECEIVED_WHILE_SHUTTING_DOWN = 10
    RESTART_WITH_NEW_ADDRESSES = 11
    USER_INITIATED_ABORT = 12
    PROTOCOL_VIOLATION = 13


class ReconfigResult(IntEnum):
    """Results of a Re-configuration Response (RFC 6525 §4.4)."""

    SUCCESS_NOTHING_TO_DO = 0
    SUCCESS_PERFORMED = 1
    DENIED = 2
    ERROR_WRONG_SSN = 3
    ERROR_REQUEST_ALREADY_IN_PROGRESS = 4
    ERROR_BAD_SEQUENCE_NUMBER = 5
    IN_PROGRESS = 6


@dataclass(frozen=True, slots=True)
class RawParameter:
    """A parameter this stack does not interpret, kept byte for byte."""

    type: int
    value: bytes

    def encode_value(self) -> bytes:
        """Return the value bytes."""
        return self.value


@dataclass(frozen=True, slots=True)
class ErrorCause:
    """One error cause of an ABORT or ERROR chunk: a code and its raw information."""

    code: int
    info: bytes = b""

    @property
    def type(self) -> int:
        """The cause code (the TLV type)."""
        return self.code

    def encode_value(self) -> bytes:
        """Return the cause-specific information."""
        return self.info


@dataclass(frozen=True, slots=True)
class StateCookie:
    """The opaque cookie an INIT ACK carries and COOKIE ECHO returns (§3.3.3.1)."""

    TYPE: ClassVar[int] = ParameterType.STATE_COOKIE
    cookie: bytes

    @property
    def type(self) -> int:
        """The parameter type."""
        return self.TYPE

    def encode_value(self) -> bytes:
        """Return the cookie bytes."""
        return self.cookie

    @classmethod
    def from_value(cls, value: bytes) -> "StateCookie":
        """Wrap the cookie bytes."""
        return cls(value)


@dataclass(frozen=True, slots=True)
class HeartbeatInfo:
    """Sender-specific data a HEARTBEAT carries and its ACK echoes (§3.3.5)."""

    TYPE: ClassVar[int] = ParameterType.HEARTBEAT_INFO
    info: bytes

    @property
    def type(self) -> int:
        """The parameter type."""
        return self.TYPE

    def encode_value(self) -> bytes:
        """Return the info bytes."""
        return self.info

    @classmethod
    def from_value(cls, value: bytes) -> "HeartbeatInfo":
        """Wrap the info bytes."""
        return cls(value)


@dataclass(frozen=True, slots=True)
class SupportedExtensions:
    """The chunk types the sender supports beyond RFC 9260 (RFC 5061 §4.2.7)."""

    TYPE: ClassVar[int] = ParameterType.SUPPORTED_EXTENSIONS
    chunk_types: tuple[int, ...]

    @property
    def type(self) -> int:
        """The parameter type."""
        return self.TYPE

    def encode_value(self) -> bytes:
        """Return one byte per chunk type."""
        return bytes(self.chunk_types)

    @classmethod
    def from_value(cls, value: bytes) -> "SupportedExtensions":
        """Read one chunk type per byte."""
        return cls(tuple(value))


@dataclass(frozen=True, slots=True)
class ForwardTsnSupported:
    """The sender speaks partial reliability (RFC 3758 §3.1); it has no value."""

    TYPE: ClassVar[int] = ParameterType.FORWARD_TSN_SUPPORTED

    @property
    def type(self) -> int:
        """The parameter type."""
        return self.TYPE

    def encode_value(self) -> bytes:
        """Return the empty value."""
        return b""

    @classmethod
    def from_value(cls, value: bytes) -> "ForwardTsnSupported":
        """Accept only an empty value."""
        if value:
            raise DecodeError(f"Forward-TSN-Supported has a {len(value)}-byte value")
        return cls()


def _streams(value: bytes, offset: int, what: str) -> tuple[int, ...]:
    """Read the list of 16-bit stream numbers that ends a reset request."""
    if (len(value) - offset) % 2:
        raise DecodeError(f"{what} has an odd-length stream list")
    return tuple(struct.unpack_from(f"!{(len(value) - offset) // 2}H", value, offset))


@dataclass(frozen=True, slots=True)
class OutgoingSsnResetRequest:
    """Ask the peer to reset the incoming side of our outgoing streams (RFC 6525 §4.1).

    An empty ``streams`` means every stream.
    """

    TYPE: ClassVar[int] = ParameterType.OUTGOING_SSN_RESET_REQUEST
    request_seq: int
    response_seq: int
    last_tsn: int
    streams: tuple[int, ...] = ()

    @property
    def type(self) -> int:
        """The parameter type."""
        return self.TYPE

    def encode_value(self) -> bytes:
        """Return the three sequence fields and the stream list."""
        return struct.pack(f"!III{len(self.streams)}H", self.request_seq, self.response_seq,
                           self.last_tsn, *self.streams)

    @classmethod
    def from_value(cls, value: bytes) -> "OutgoingSsnResetRequest":
        """Decode the value; the stream list must hold whole 16-bit numbers."""
        if len(value) < 12:
            raise DecodeError(
                f"Outgoing SSN Reset Request value of {len(value)} bytes is too short")
        request_seq, response_seq, last_tsn = struct.unpack_from("!III", value)
        return cls(request_seq, response_seq, last_tsn,
                   _streams(value, 12, "Outgoing SSN Reset Request"))


@dataclass(frozen=True, slots=True)
class IncomingSsnResetRequest:
    """Ask the peer to reset its outgoing streams (RFC 6525 §4.2)."""

    TYPE: ClassVar[int] = ParameterType.INCOMING_SSN_RESET_REQUEST
    request_seq: int
    streams: tuple[int, ...] = ()

    @property
    def type(self) -> int:
        """The parameter type."""
        return self.TYPE

    def encode_value(self) -> bytes:
        """Return the sequence number and the stream list."""
        return struct.pack(f"!I{len(self.streams)}H", self.request_seq, *self.streams)

    @classmethod
    def from_value(cls, value: bytes) -> "IncomingSsnResetRequest":
        """Decode the value; the stream list must hold whole 16-bit numbers."""
        if len(value) < 4:
            raise DecodeError(
                f"Incoming SSN Reset Request value of {len(value)} bytes is too short")
        return cls(struct.unpack_from("!I", value)[0],
                   _streams(value, 4, "Incoming SSN Reset Request"))


@dataclass(frozen=True, slots=True)
class ReconfigurationResponse:
    """Answer a re-configuration request (RFC 6525 §4.4)."""

    TYPE: ClassVar[int] = ParameterType.RECONFIGURATION_RESPONSE
    response_seq: int
    result: int
    sender_next_tsn: int | None = None
    receiver_next_tsn: int | None = None

    @property
    def type(self) -> int:
        """The parameter type."""
        return self.TYPE

    def encode_value(self) -> bytes:
        """Return the fields; the two TSNs only when both are set."""
        if self.sender_next_tsn is None or self.receiver_next_tsn is None:
            return struct.pack("!II", self.response_seq, self.result)
        return struct.pack("!IIII", self.response_seq, self.result,
                           self.sender_next_tsn, self.receiver_next_tsn)

    @classmethod
    def from_value(cls, value: bytes) -> "ReconfigurationResponse":
        """Decode an 8- or 16-byte value."""
        if len(value) == 8:
            return cls(*struct.unpack("!II", value))
        if len(value) == 16:
            return cls(*struct.unpack("!IIII", value))
        raise DecodeError(f"Re-configuration Response value of {len(value)} bytes is not 8 or 16")


@dataclass(frozen=True, slots=True)
class AddOutgoingStreamsRequest:
    """Ask to add outgoing streams (RFC 6525 §4.5)."""

    TYPE: ClassVar[int] = ParameterType.ADD_OUTGOING_STREAMS_REQUEST
    request_seq: int
    new_streams: int
    reserved: int = 0

    @property
    def type(self) -> int:
        """The parameter type."""
        return self.TYPE

    def encode_value(self) -> bytes:
        """Return the sequence number, the stream count and the reserved field."""
        return struct.pack("!IHH", self.request_seq, self.new_streams, self.reserved)

    @classmethod
    def from_value(cls, value: bytes) -> "AddOutgoingStreamsRequest":
        """Decode the 8-byte value."""
        if len(value) != 8:
            raise DecodeError(f"Add Streams Request value of {len(value)} bytes is not 8")
        return cls(*struct.unpack("!IHH", value))


@dataclass(frozen=True, slots=True)
class AddIncomingStreamsRequest(AddOutgoingStreamsRequest):
    """Ask the peer to add its outgoing streams (RFC 6525 §4.6)."""

    TYPE: ClassVar[int] = ParameterType.ADD_INCOMING_STREAMS_REQUEST


Parameter = Union[
    RawParameter, StateCookie, HeartbeatInfo, SupportedExtensions, ForwardTsnSupported,
    OutgoingSsnResetRequest, IncomingSsnResetRequest, ReconfigurationResponse,
    AddOutgoingStreamsRequest, AddIncomingStreamsRequest,
]

#: The requests a RE-CONFIG chunk may carry (RFC 6525 §4.1-4.6), answered by
#: :meth:`~realtime.sctp.reconfig.StreamReconfiguration.handle_request`.
ReconfigRequest = Union[
    OutgoingSsnResetRequest, IncomingSsnResetRequest, AddOutgoingStreamsRequest,
    AddIncomingStreamsRequest,
]
RECONFIG_REQUESTS = (OutgoingSsnResetRequest, IncomingSsnResetRequest, AddOutgoingStreamsRequest,
                     AddIncomingStreamsRequest)

PARAMETER_CLASSES: dict[int, Callable[[bytes], Parameter]] = {
    cls.TYPE: cls.from_value
    for cls in (StateCookie, HeartbeatInfo, SupportedExtensions, ForwardTsnSupported,
                OutgoingSsnResetRequest, IncomingSsnResetRequest, ReconfigurationResponse,
                AddOutgoingStreamsRequest, AddIncomingStreamsRequest)
}
"""Parameter type -> decoder of its value, for the typed parameters."""


def decode_parameter(type_: int, value: bytes) -> Parameter:
    """Return the typed parameter for ``type_``, or a :class:`RawParameter`."""
    decoder = PARAMETER_CLASSES.get(type_)
    return decoder(value) if decoder is not None else RawParameter(type_, value)


def decode_cause(code: int, info: bytes) -> ErrorCause:
    """Return an :class:`ErrorCause` (causes are kept raw)."""
    return ErrorCause(code, info)


def decode_tlvs(data: bytes | memoryview, factory: Callable[[int, bytes], object],
                what: str = "SCTP parameter") -> tuple:
    """Decode a run of padded TLVs with ``factory(type, value)``.

    The padding after the last TLV may be missing (the chunk length excludes it).

    :raises DecodeError: if a length is below 4 or runs past the data.
    """
    reader = Reader(data, what)
    items = []
    while reader.remaining:
        type_ = reader.u16()
        length = reader.u16()
        if length < 4:
            raise DecodeError(f"{what} length {length} is shorter than its 4-byte header")
        items.append(factory(type_, reader.bytes(length - 4)))
        reader.skip(min(padding_length(length), reader.remaining))
    return tuple(items)


def encode_tlvs(items: Iterable[Parameter | ErrorCause]) -> bytes:
    """Encode TLVs, padding all but the last (whose padding the chunk adds)."""
    out = bytearray()
    for item in items:
        if len(out) % 4:
            out += bytes(padding_length(len(out)))
        value = item.encode_value()
        out += struct.pack("!HH", item.type, 4 + len(value))
        out += value
    return bytes(out)
