"""
Typed SDP attributes: the ``a=`` lines WebRTC relies on.

An attribute line is ``a=<name>`` (a flag) or ``a=<name>:<value>``
(RFC 8866 §5.13).  Each class here parses one attribute's value with
:meth:`parse` and writes it back with :meth:`value`; :meth:`line` gives the
whole line.  Anything we do not model stays an :class:`Attribute` (name and
raw value), so unknown lines survive a round trip untouched.

=====================  ==========================================  =============
line                   class                                       reference
=====================  ==========================================  =============
a=rtpmap:96 VP8/90000  :class:`RtpMap`                             RFC 8866 §6.6
a=fmtp:96 apt=95       :class:`Fmtp`                               RFC 8866 §6.15
a=rtcp-fb:96 nack pli  :class:`RtcpFeedback`                       RFC 4585 §4.2
a=extmap:4 urn:...     :class:`HeaderExtension`                    RFC 8285 §8
a=fingerprint:...      :class:`Fingerprint`                        RFC 8122 §5
a=group:BUNDLE 0 1     :class:`Group`                              RFC 5888 §5, RFC 9143
a=msid:stream track    :class:`Msid`                               RFC 8830 §2
a=ssrc:1 cname:x       :class:`SsrcAttribute`                      RFC 5576 §4.1
a=ssrc-group:FID 1 2   :class:`SsrcGroup`                          RFC 5576 §4.2
=====================  ==========================================  =============

Candidates (RFC 8839) live in :mod:`realtime.ice.candidate`, rid and
simulcast (RFC 8851, RFC 8853) in :mod:`realtime.sdp.simulcast`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from realtime.sdp.errors import SdpError, quote

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+\Z")
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*\Z")


def malformed(name: str, value: str) -> SdpError:
    """Return the error for attribute ``name`` whose value breaks its grammar."""
    return SdpError(f"malformed a={name}: {quote(value)}")


def parse_int(text: str, name: str, value: str, low: int = 0, high: int = 2**63 - 1) -> int:
    """Return ``text`` as a decimal integer in ``[low, high]`` or raise :func:`malformed`."""
    if not text.isdigit() or not text.isascii() or len(text) > 20:
        raise malformed(name, value)
    number = int(text)
    if not low <= number <= high:
        raise malformed(name, value)
    return number


def is_token(text: str) -> bool:
    """Return whether ``text`` is an RFC 8866 ``token`` (no spaces or separators)."""
    return _TOKEN.match(text) is not None


@dataclass(frozen=True, slots=True)
class Attribute:
    """Keep an attribute we do not model: ``a=name`` or ``a=name:value``, verbatim."""

    name: str
    raw: str | None = None

    def value(self) -> str | None:
        """Return the value after the colon, or ``None`` for a flag."""
        return self.raw

    def line(self) -> str:
        """Return the whole ``a=`` line."""
        return f"a={self.name}" if self.raw is None else f"a={self.name}:{self.raw}"


class _Typed:
    """Mixin: the ``a=name:value`` line of a typed attribute."""

    __slots__ = ()
    name: ClassVar[str]

    def line(self) -> str:
        """Return the whole ``a=`` line."""
        return f"a={self.name}:{self.value()}"  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class RtpMap(_Typed):
    """Map an RTP payload type to ``encoding/clock[/channels]`` (RFC 8866 §6.6)."""

    name: ClassVar[str] = "rtpmap"
    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        """Parse ``96 VP8/90000`` or ``111 opus/48000/2``."""
        pt, _, encoding = value.partition(" ")
        parts = encoding.split("/")
        if len(parts) not in (2, 3) or not is_token(parts[0]):
            raise malformed(cls.name, value)
        channels = parse_int(parts[2], cls.name, value, 1, 255) if len(parts) == 3 else None
        return cls(
            parse_int(pt, cls.name, value, 0, 127),
            parts[0],
            parse_int(parts[1], cls.name, value, 1, 2**32 - 1),
            channels,
        )

    def value(self) -> str:
        """Return ``pt name/clock[/channels]``."""
        tail = "" if self.channels is None else f"/{self.channels}"
        return f"{self.payload_type} {self.encoding_name}/{self.clock_rate}{tail}"


def parse_format_parameters(text: str) -> tuple[tuple[str, str | None], ...]:
    """Split ``a=fmtp`` parameters ``k=v;k2=v2`` into ordered pairs (``None`` for bare words)."""
    pairs: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        pairs.append((key.strip(), val.strip() if sep else None))
    return tuple(pairs)


def format_parameters(pairs: tuple[tuple[str, str | None], ...]) -> str:
    """Join parameter pairs back into ``k=v;k2=v2`` (the form browsers write)."""
    return ";".join(key if val is None else f"{key}={val}" for key, val in pairs)


@dataclass(frozen=True, slots=True)
class Fmtp(_Typed):
    """Give format-specific parameters to one payload type (RFC 8866 §6.15).

    ``parameters`` is kept as written so the line round-trips byte for byte;
    :attr:`pairs` splits it.
    """

    name: ClassVar[str] = "fmtp"
    payload_type: int
    parameters: str

    @classmethod
    def parse(cls, value: str) -> Fmtp:
        """Parse ``97 apt=96``."""
        pt, sep, parameters = value.partition(" ")
        if not sep:
            raise malformed(cls.name, value)
        return cls(parse_int(pt, cls.name, value, 0, 127), parameters)

    @property
    def pairs(self) -> tuple[tuple[str, str | None], ...]:
        """Return the parameters as ordered ``(key, value)`` pairs."""
        return parse_format_parameters(self.parameters)

    def value(self) -> str:
        """Return ``pt parameters``."""
        return f"{self.payload_type} {self.parameters}"


@dataclass(frozen=True, slots=True)
class RtcpFeedback(_Typed):
    """Announce an RTCP feedback message for a payload type, or all (``*``) (RFC 4585 §4.2)."""

    name: ClassVar[str] = "rtcp-fb"
    payload_type: int | None
    type: str
    parameter: str | None = None

    @classmethod
    def parse(cls, value: str) -> RtcpFeedback:
        """Parse ``96 nack pli``, ``96 goog-remb`` or ``* transport-cc``."""
        parts = value.split(" ", 2)
        if len(parts) < 2 or not is_token(parts[1]):
            raise malformed(cls.name, value)
        pt = None if parts[0] == "*" else parse_int(parts[0], cls.name, value, 0, 127)
        return cls(pt, parts[1], parts[2] if len(parts) == 3 else None)

    def value(self) -> str:
        """Return ``pt type [parameter]``."""
        pt = "*" if self.payload_type is None else str(self.payload_type)
        tail = "" if self.parameter is None else f" {self.parameter}"
        return f"{pt} {self.type}{tail}"


_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@dataclass(frozen=True, slots=True)
class HeaderExtension(_Typed):
    """Bind an RTP header extension URI to a local id (RFC 8285 §8).

    ``a=extmap:<id>[/<direction>] <uri> [<attributes>]``; ids 1-14 fit the
    one-byte form, 15-255 need the two-byte form, 4096-4351 are the
    "answerer, please choose" range of RFC 8285 §7.
    """

    name: ClassVar[str] = "extmap"
    id: int
    uri: str
    direction: str | None = None
    attributes: str | None = None

    @classmethod
    def parse(cls, value: str) -> HeaderExtension:
        """Parse ``4 urn:ietf:params:rtp-hdrext:sdes:mid`` (optionally ``4/sendonly``)."""
        parts = value.split(" ", 2)
        if len(parts) < 2 or not parts[1]:
            raise malformed(cls.name, value)
        ident, slash, direction = parts[0].partition("/")
        if slash and direction not in _DIRECTIONS:
            raise malformed(cls.name, value)
        number = parse_int(ident, cls.name, value, 1, 4351)
        if 255 < number < 4096:
            raise malformed(cls.name, value)
        return cls(number, parts[1], direction or None, parts[2] if len(parts) == 3 else None)

    def value(self) -> str:
        """Return ``id[/direction] uri [attributes]``."""
        ident = str(self.id) if self.direction is None else f"{self.id}/{self.direction}"
        tail = "" if self.attributes is None else f" {self.attributes}"
        return f"{ident} {self.uri}{tail}"


@dataclass(frozen=True, slots=True)
class Fingerprint(_Typed):
    """Name the hash of the DTLS certificate a peer will present (RFC 8122 §5)."""

    name: ClassVar[str] = "fingerprint"
    hash_function: str
    fingerprint: str

    @classmethod
    def parse(cls, value: str) -> Fingerprint:
        """Parse ``sha-256 AB:CD:...`` (upper- or lower-case hex pairs)."""
        hash_function, _, fingerprint = value.partition(" ")
        if not is_token(hash_function) or _HEX_PAIRS.match(fingerprint) is None:
            raise malformed(cls.name, value)
        return cls(hash_function, fingerprint)

    @classmethod
    def from_digest(cls, hash_function: str, digest: bytes) -> Fingerprint:
        """Build the attribute for ``digest`` in upper-case colon-separated hex."""
        return cls(hash_function, ":".join(f"{byte:02X}" for byte in digest))

    @property
    def digest(self) -> bytes:
        """Return the fingerprint as bytes (compare with ``hmac.compare_digest``)."""
        return bytes.fromhex(self.fingerprint.replace(":", ""))

    def value(self) -> str:
        """Return ``hash-function fingerprint``."""
        return f"{self.hash_function} {self.fingerprint}"


@dataclass(frozen=True, slots=True)
class Group(_Typed):
    """Group media sections by mid, e.g. ``BUNDLE 0 1 2`` (RFC 5888 §5, RFC 9143)."""

    name: ClassVar[str] = "group"
    semantics: str
    mids: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> Group:
        """Parse ``BUNDLE 0 1 2`` (a group may list no mids)."""
        parts = value.split(" ")
        if not is_token(parts[0]) or not all(is_token(mid) for mid in parts[1:]):
            raise malformed(cls.name, value)
        return cls(parts[0], tuple(parts[1:]))

    def value(self) -> str:
        """Return ``semantics mid...``."""
        return " ".join((self.semantics, *self.mids))


@dataclass(frozen=True, slots=True)
class Msid(_Typed):
    """Tie a media section to a MediaStream id and track id (RFC 8830 §2)."""

    name: ClassVar[str] = "msid"
    stream_id: str
    track_id: str | None = None

    @classmethod
    def parse(cls, value: str) -> Msid:
        """Parse ``stream-id [track-id]``."""
        parts = value.split(" ")
        if len(parts) > 2 or not all(parts):
            raise malformed(cls.name, value)
        return cls(parts[0], parts[1] if len(parts) == 2 else None)

    def value(self) -> str:
        """Return ``stream-id [track-id]``."""
        return self.stream_id if self.track_id is None else f"{self.stream_id} {self.track_id}"


@dataclass(frozen=True, slots=True)
class SsrcAttribute(_Typed):
    """Attach a source attribute (``cname``, ``msid``...) to an SSRC (RFC 5576 §4.1)."""

    name: ClassVar[str] = "ssrc"
    ssrc: int
    attribute: str
    attribute_value: str | None = None

    @classmethod
    def parse(cls, value: str) -> SsrcAttribute:
        """Parse ``12500962 cname:/A3ikQUdezxx453e``."""
        ssrc, sep, rest = value.partition(" ")
        attribute, colon, attribute_value = rest.partition(":")
        if not sep or not is_token(attribute):
            raise malformed(cls.name, value)
        return cls(
            parse_int(ssrc, cls.name, value, 0, 2**32 - 1),
            attribute,
            attribute_value if colon else None,
        )

    def value(self) -> str:
        """Return ``ssrc attribute[:value]``."""
        tail = "" if self.attribute_value is None else f":{self.attribute_value}"
        return f"{self.ssrc} {self.attribute}{tail}"


@dataclass(frozen=True, slots=True)
class SsrcGroup(_Typed):
    """Relate SSRCs: ``FID`` (media + RTX), ``SIM`` (simulcast layers) (RFC 5576 §4.2)."""

    name: ClassVar[str] = "ssrc-group"
    semantics: str
    ssrcs: tuple[int, ...]

    @classmethod
    def parse(cls, value: str) -> SsrcGroup:
        """Parse ``FID 1327736354 220366198``."""
        parts = value.split(" ")
        if not is_token(parts[0]):
            raise malformed(cls.name, value)
        ssrcs = tuple(parse_int(part, cls.name, value, 0, 2**32 - 1) for part in parts[1:])
        return cls(parts[0], ssrcs)

    def value(self) -> str:
        """Return ``semantics ssrc...``."""
        return " ".join((self.semantics, *map(str, self.ssrcs)))
