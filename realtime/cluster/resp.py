"""
RESP, the REdis Serialization Protocol (version 2), as a pure codec.

Why our own: RESP is a small, documented, line-oriented protocol
(https://redis.io/docs/reference/protocol-spec/), and the cluster directory
needs only a dozen commands plus pub/sub.  A codec of ~200 lines plus a thin
Twisted protocol (:mod:`realtime.cluster.client`) keeps the reactor free of
blocking I/O, adds no dependency, and lets a reader study the protocol here.

A client sends every command as an *array of bulk strings*::

    *3\\r\\n            array of 3 elements
    $3\\r\\nSET\\r\\n     bulk string, 3 bytes
    $1\\r\\nk\\r\\n       bulk string, 1 byte
    $1\\r\\nv\\r\\n       bulk string, 1 byte

and the server answers with one value per command, its first byte naming the
type:

====  ==================  =============================================
byte  type                decoded here as
====  ==================  =============================================
``+`` simple string       ``str`` (``"OK"``, ``"PONG"``)
``-`` error               :class:`RespError` (a value, not raised)
``:`` integer             ``int``
``$`` bulk string         ``bytes``; ``$-1`` (null bulk) is ``None``
``*`` array               ``list``; ``*-1`` (null array) is ``None``
====  ==================  =============================================

The server is trusted less than fully: :class:`RespReader` bounds every
length, the nesting depth and the line length, and raises only
:class:`~realtime.errors.DecodeError` subclasses on malformed input (the
Hypothesis tests check it), after which the connection must be dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.errors import DecodeError, LocalProtocolError

CRLF = b"\r\n"

#: Largest bulk string accepted (bytes).  Directory records are a few KiB;
#: Redis itself allows 512 MB, which a hostile server could use to exhaust us.
MAX_BULK = 16 * 1024 * 1024
#: Largest array accepted (elements).
MAX_ARRAY = 1024 * 1024
#: Longest header or simple-string line (bytes, without CRLF).
MAX_LINE = 64 * 1024
#: Deepest nesting of arrays accepted (pub/sub messages are depth 1).
MAX_DEPTH = 8


class RespDecodeError(DecodeError):
    """Raised when a server reply is not well-formed RESP."""


@dataclass(frozen=True, slots=True)
class RespError:
    """A RESP error reply (``-ERR unknown command``), kept as a value.

    :ivar message: the text after ``-``, e.g. ``"WRONGPASS invalid username-password pair"``.
    """

    message: str

    @property
    def kind(self) -> str:
        """Return the error's first word (``ERR``, ``WRONGPASS``, ``NOAUTH``...)."""
        return self.message.split(" ", 1)[0]


def encode_command(*args: bytes | str | int) -> bytes:
    """Encode one command as a RESP array of bulk strings.

    ``str`` arguments are UTF-8 encoded, ``int`` arguments written in decimal.

    >>> encode_command("GET", "k")
    b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n'
    """
    if not args:
        raise LocalProtocolError("a RESP command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = _utf8(arg)
        elif isinstance(arg, bool):
            raise LocalProtocolError("RESP has no booleans: pass 0/1 or a string")
        elif isinstance(arg, int):
            data = b"%d" % arg
        elif isinstance(arg, (bytes, bytearray, memoryview)):
            data = bytes(arg)
        else:
            raise LocalProtocolError(f"cannot encode {type(arg).__name__} as a RESP bulk string")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def encode_reply(value: object) -> bytes:
    """Encode a reply value the way a server would (tests and round-trips).

    ``str`` becomes a simple string, so it must not contain CR or LF.
    """
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, RespError):
        return b"-" + _utf8(value.message) + CRLF
    if isinstance(value, str):
        if "\r" in value or "\n" in value:
            raise LocalProtocolError("a simple string cannot hold CR or LF")
        return b"+" + _utf8(value) + CRLF
    if isinstance(value, bool):
        raise LocalProtocolError("RESP has no booleans")
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(encode_reply(v) for v in value)
    raise LocalProtocolError(f"cannot encode {type(value).__name__} as a RESP reply")


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise LocalProtocolError("text with lone surrogates cannot be sent as UTF-8") from None


class _Incomplete(Exception):
    """More bytes are needed (internal: the reader waits for the next feed)."""


class RespReader:
    """Turn a byte stream from the server into reply values, incrementally.

    ``feed(data)`` appends bytes; ``next_reply()`` returns the next complete
    value or :data:`NEED_MORE`.  A malformed stream raises
    :class:`RespDecodeError` and leaves the reader unusable (the connection
    must be closed: there is no resynchronising a byte stream).
    """

    __slots__ = ("_buffer", "_failed")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed: RespDecodeError | None = None

    def feed(self, data: bytes) -> None:
        """Append bytes received from the server."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a reply."""
        return len(self._buffer)

    def next_reply(self) -> object:
        """Return the next reply, or :data:`NEED_MORE` if it is not complete yet."""
        if self._failed is not None:
            raise self._failed
        try:
            value, end = _parse(self._buffer, 0, 0)
        except _Incomplete:
            return NEED_MORE
        except RespDecodeError as error:
            self._failed = error
            raise
        del self._buffer[:end]
        return value

    def replies(self) -> list[object]:
        """Return every complete reply buffered so far (possibly none)."""
        out = []
        while (value := self.next_reply()) is not NEED_MORE:
            out.append(value)
        return out


class _NeedMore:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


#: Returned by :meth:`RespReader.next_reply` while a reply is incomplete.
NEED_MORE = _NeedMore()


def decode_replies(data: bytes) -> list[object]:
    """Decode a complete byte string of replies (raises if one is cut short)."""
    reader = RespReader()
    reader.feed(data)
    values = reader.replies()
    if reader.buffered:
        raise RespDecodeError(f"RESP reply truncated: {reader.buffered} bytes left over")
    return values


def _line(buffer: bytearray, pos: int) -> tuple[bytes, int]:
    end = buffer.find(CRLF, pos, pos + MAX_LINE + 2)
    if end < 0:
        if len(buffer) - pos > MAX_LINE + 1:
            raise RespDecodeError(f"RESP line longer than {MAX_LINE} bytes")
        raise _Incomplete
    line = bytes(buffer[pos:end])
    if b"\r" in line or b"\n" in line:
        raise RespDecodeError("RESP line contains a bare CR or LF")
    return line, end + 2


def _integer(text: bytes, what: str) -> int:
    body = text[1:] if text[:1] == b"-" else text
    if not body or not body.isdigit() or len(body) > 19:
        raise RespDecodeError(f"RESP {what} is not a decimal integer: {text[:32]!r}")
    return int(text)


def _length(text: bytes, what: str, limit: int) -> int:
    value = _integer(text, what)
    if value < -1:
        raise RespDecodeError(f"RESP {what} is negative: {value}")
    if value > limit:
        raise RespDecodeError(f"RESP {what} {value} exceeds the limit {limit}")
    return value


def _text(line: bytes, what: str) -> str:
    try:
        return line.decode()
    except UnicodeDecodeError:
        raise RespDecodeError(f"RESP {what} is not UTF-8") from None


def _parse(buffer: bytearray, pos: int, depth: int) -> tuple[object, int]:
    if pos >= len(buffer):
        raise _Incomplete
    kind = buffer[pos]
    line, pos = _line(buffer, pos + 1)
    if kind == 0x2B:  # '+' simple string
        return _text(line, "simple string"), pos
    if kind == 0x2D:  # '-' error
        return RespError(_text(line, "error")), pos
    if kind == 0x3A:  # ':' integer
        return _integer(line, "integer"), pos
    if kind == 0x24:  # '$' bulk string
        size = _length(line, "bulk length", MAX_BULK)
        if size == -1:
            return None, pos
        if len(buffer) < pos + size + 2:
            raise _Incomplete
        if buffer[pos + size:pos + size + 2] != CRLF:
            raise RespDecodeError("RESP bulk string is not followed by CRLF")
        return bytes(buffer[pos:pos + size]), pos + size + 2
    if kind == 0x2A:  # '*' array
        count = _length(line, "array length", MAX_ARRAY)
        if count == -1:
            return None, pos
        if depth >= MAX_DEPTH:
            raise RespDecodeError(f"RESP arrays nested deeper than {MAX_DEPTH}")
        items = []
        for _ in range(count):
            item, pos = _parse(buffer, pos, depth + 1)
            items.append(item)
        return items, pos
    raise RespDecodeError(f"RESP type byte 0x{kind:02x} is not one of + - : $ *")
