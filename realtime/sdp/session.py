"""
Session descriptions (RFC 8866): parse and serialize the text.

An SDP is lines ``<type>=<value>`` ended by CRLF (LF alone is tolerated on
input).  A session part comes first, then one part per ``m=`` line::

    v=0                                         version (always 0)
    o=- 1479153219286541105 2 IN IP4 127.0.0.1  origin
    s=-                                         session name
    t=0 0                                       timing
    a=group:BUNDLE 0 1 2                        session attributes ...
    +-------------------------------------------------------------+
    | m=audio 41516 UDP/TLS/RTP/SAVPF 111 0     media description |
    | c=IN IP4 127.0.0.1                        (one per m= line, |
    | a=mid:0                                    each with its    |
    | a=rtpmap:111 opus/48000/2                  own lines)       |
    | ...                                                         |
    +-------------------------------------------------------------+
    | m=application 9 UDP/DTLS/SCTP webrtc-datachannel            |
    | ...                                                         |
    +-------------------------------------------------------------+

Every line after ``s=`` is kept *in order* as a value object: typed where we
understand it (:mod:`realtime.sdp.attributes`, :mod:`realtime.ice.candidate`,
:mod:`~realtime.sdp.simulcast`), :class:`~realtime.sdp.attributes.Attribute`
or :class:`Line` otherwise.  So ``SessionDescription.parse(text).serialize()``
gives back the same text (bar CRLF normalisation), and properties such as
:attr:`MediaDescription.codecs` read the typed lines on demand.
"""

from __future__ import annotations

import re

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtime.sdp.attributes import (
    Attribute, Fingerprint, Fmtp, Group, HeaderExtension, Msid, RtcpFeedback, RtpMap,
    SsrcAttribute, SsrcGroup, is_token, malformed, parse_int,
)
from realtime.errors import DecodeError
from realtime.ice.candidate import Candidate
from realtime.sdp.codecs import Codec, collect_codecs
from realtime.sdp.errors import SdpError, quote
from realtime.sdp.simulcast import RidDescription, Simulcast

#: longest description we parse (bytes of text); bigger ones are refused
MAX_LENGTH = 512 * 1024
#: most ``m=`` sections we parse
MAX_MEDIA = 1024

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
SETUP_ROLES = ("active", "passive", "actpass", "holdconn")

def _parse_candidate(value: str) -> Candidate:
    """Parse ``a=candidate`` with the ICE codec; its errors become :class:`SdpError`."""
    try:
        return Candidate.parse(value)
    except DecodeError:
        raise malformed("candidate", value) from None


_TYPED: dict[str, Callable[[str], Any]] = {
    cls.name: cls.parse
    for cls in (RtpMap, Fmtp, RtcpFeedback, HeaderExtension, Fingerprint, Group, Msid,
                SsrcAttribute, SsrcGroup, RidDescription, Simulcast)
}
_TYPED["candidate"] = _parse_candidate


def _check_setup(value: str) -> None:
    if value not in SETUP_ROLES:
        raise malformed("setup", value)


def _check_token(name: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        if not is_token(value):
            raise malformed(name, value)
    return check


def _check_ice_chars(name: str, minimum: int) -> Callable[[str], None]:
    """Check ``minimum``..256 ice-chars (ALPHA / DIGIT / "+" / "/", RFC 8839 §5.4)."""
    def check(value: str) -> None:
        if not minimum <= len(value) <= 256 or _ICE_CHARS.fullmatch(value) is None:
            raise malformed(name, value)
    return check


def _check_number(name: str, high: int) -> Callable[[str], None]:
    def check(value: str) -> None:
        parse_int(value, name, value, 0, high)
    return check


_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")

_CHECKED: dict[str, Callable[[str], None]] = {
    "setup": _check_setup,
    "mid": _check_token("mid"),
    "ice-ufrag": _check_ice_chars("ice-ufrag", 4),
    "ice-pwd": _check_ice_chars("ice-pwd", 22),
    "sctp-port": _check_number("sctp-port", 65535),
    "max-message-size": _check_number("max-message-size", 2**64 - 1),
}


def parse_attribute(text: str) -> Any:
    """Return the value object for ``text``, an ``a=`` line without the ``a=``."""
    name, colon, value = text.partition(":")
    if not is_token(name):
        raise SdpError(f"malformed attribute name: {quote(text)}")
    if colon and name in _TYPED:
        return _TYPED[name](value)
    if colon and name in _CHECKED:
        _CHECKED[name](value)
    elif not colon and (name in _TYPED or name in _CHECKED):
        raise malformed(name, "")
    return Attribute(name, value if colon else None)


@dataclass(frozen=True, slots=True)
class Line:
    """Keep a non-attribute line we carry but do not interpret (``i=``, ``u=``, ``k=`` ...)."""

    type: str
    text: str

    def line(self) -> str:
        """Return ``<type>=<text>``."""
        return f"{self.type}={self.text}"


@dataclass(frozen=True, slots=True)
class Origin:
    """Identify the session and its version: the ``o=`` line (RFC 8866 §5.2)."""

    session_id: int
    session_version: int
    username: str = "-"
    address: str = "0.0.0.0"
    address_type: str = "IP4"
    network_type: str = "IN"

    @classmethod
    def parse(cls, text: str) -> Origin:
        """Parse ``- 1479153219286541105 2 IN IP4 127.0.0.1``."""
        parts = text.split(" ")
        if len(parts) != 6 or not all(parts):
            raise SdpError(f"malformed o= line: {quote(text)}")
        user, sid, version, nettype, addrtype, address = parts
        if not (sid + version).isdigit() or not (sid + version).isascii() or len(sid) > 20:
            raise SdpError(f"malformed o= line: {quote(text)}")
        if len(version) > 20:
            raise SdpError(f"malformed o= line: {quote(text)}")
        return cls(int(sid), int(version), user, address, addrtype, nettype)

    def line(self) -> str:
        """Return the ``o=`` line."""
        return (f"o={self.username} {self.session_id} {self.session_version} "
                f"{self.network_type} {self.address_type} {self.address}")


@dataclass(frozen=True, slots=True)
class Connection:
    """Give the connection address: the ``c=`` line (RFC 8866 §5.7)."""

    address: str = "0.0.0.0"
    address_type: str = "IP4"
    network_type: str = "IN"

    @classmethod
    def parse(cls, text: str) -> Connection:
        """Parse ``IN IP4 127.0.0.1``."""
        parts = text.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SdpError(f"malformed c= line: {quote(text)}")
        return cls(parts[2], parts[1], parts[0])

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """Return ``IN IP6 addr`` for an IPv6 address, else ``IN IP4 addr``."""
        return cls(address, "IP6" if ":" in address else "IP4")

    def line(self) -> str:
        """Return the ``c=`` line."""
        return f"c={self.network_type} {self.address_type} {self.address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """Limit bandwidth: the ``b=<type>:<kbps or bps>`` line (RFC 8866 §5.8, RFC 3890)."""

    type: str
    bandwidth: int

    @classmethod
    def parse(cls, text: str) -> Bandwidth:
        """Parse ``AS:2000`` or ``TIAS:2000000``."""
        kind, colon, value = text.partition(":")
        if not colon or not is_token(kind) or not value.isdigit() or not value.isascii():
            raise SdpError(f"malformed b= line: {quote(text)}")
        if len(value) > 20:
            raise SdpError(f"malformed b= line: {quote(text)}")
        return cls(kind, int(value))

    def line(self) -> str:
        """Return the ``b=`` line."""
        return f"b={self.type}:{self.bandwidth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """Say when the session is active: ``t=0 0`` means unbounded (RFC 8866 §5.9)."""

    start: int = 0
    stop: int = 0

    @classmethod
    def parse(cls, text: str) -> Timing:
        """Parse ``0 0``."""
        parts = text.split(" ")
        if len(parts) != 2 or not all(p.isdigit() and p.isascii() and len(p) <= 20 for p in parts):
            raise SdpError(f"malformed t= line: {quote(text)}")
        return cls(int(parts[0]), int(parts[1]))

    def line(self) -> str:
        """Return the ``t=`` line."""
        return f"t={self.start} {self.stop}"


class _Attributes:
    """Mixin: look attributes up in ``self.lines``."""

    __slots__ = ()
    lines: tuple[Any, ...]

    def attribute(self, name: str) -> str | None:
        """Return the raw value of the first untyped ``a=name`` ("" for a flag), else ``None``."""
        for item in self.lines:
            if isinstance(item, Attribute) and item.name == name:
                return "" if item.raw is None else item.raw
        return None

    def has(self, name: str) -> bool:
        """Return whether an untyped ``a=name`` line is present."""
        return self.attribute(name) is not None

    def typed(self, cls: type) -> tuple[Any, ...]:
        """Return every line that is an instance of ``cls``, in order."""
        return tuple(item for item in self.lines if isinstance(item, cls))

    @property
    def ice_ufrag(self) -> str | None:
        """Return ``a=ice-ufrag`` (RFC 8839 §5.4)."""
        return self.attribute("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        """Return ``a=ice-pwd`` (RFC 8839 §5.4)."""
        return self.attribute("ice-pwd")

    @property
    def ice_options(self) -> tuple[str, ...]:
        """Return the ``a=ice-options`` tags, e.g. ``("trickle",)`` (RFC 8839 §5.6)."""
        value = self.attribute("ice-options")
        return tuple(value.split()) if value else ()

    @property
    def setup(self) -> str | None:
        """Return ``a=setup``: active, passive, actpass or holdconn (RFC 8842 §3)."""
        return self.attribute("setup")

    @property
    def fingerprints(self) -> tuple[Fingerprint, ...]:
        """Return the ``a=fingerprint`` lines (RFC 8122 §5)."""
        return self.typed(Fingerprint)

    @property
    def connection(self) -> Connection | None:
        """Return the ``c=`` line, if any."""
        found = self.typed(Connection)
        return found[0] if found else None

    @property
    def extensions(self) -> tuple[HeaderExtension, ...]:
        """Return the ``a=extmap`` lines (RFC 8285 §8)."""
        return self.typed(HeaderExtension)


@dataclass(frozen=True, slots=True)
class MediaDescription(_Attributes):
    """Describe one ``m=`` section: media line plus its lines in order (RFC 8866 §5.14)."""

    kind: str
    port: int
    protocol: str
    formats: tuple[str, ...]
    lines: tuple[Any, ...] = ()
    port_count: int | None = None

    @classmethod
    def parse_media_line(cls, text: str) -> MediaDescription:
        """Parse the value of an ``m=`` line into an empty section."""
        parts = text.split(" ")
        if len(parts) < 4 or not all(parts) or not is_token(parts[0]):
            raise SdpError(f"malformed m= line: {quote(text)}")
        port, slash, count = parts[1].partition("/")
        if not port.isdigit() or not port.isascii() or int(port) > 65535:
            raise SdpError(f"malformed m= line: {quote(text)}")
        if slash and (not count.isdigit() or not count.isascii() or len(count) > 5):
            raise SdpError(f"malformed m= line: {quote(text)}")
        return cls(parts[0], int(port), parts[2], tuple(parts[3:]), (),
                   int(count) if slash else None)

    def media_line(self) -> str:
        """Return the ``m=`` line."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join((f"m={self.kind}", port, self.protocol, *self.formats))

    @property
    def mid(self) -> str | None:
        """Return ``a=mid`` (RFC 5888 §4)."""
        return self.attribute("mid")

    @property
    def direction(self) -> str:
        """Return the last direction attribute, ``sendrecv`` when absent (RFC 8866 §6.7)."""
        found = "sendrecv"
        for item in self.lines:
            if isinstance(item, Attribute) and item.raw is None and item.name in DIRECTIONS:
                found = item.name
        return found

    @property
    def rejected(self) -> bool:
        """Return whether the section is rejected or closed (port 0, not bundle-only)."""
        return self.port == 0 and not self.has("bundle-only")

    @property
    def rtcp_mux(self) -> bool:
        """Return whether RTP and RTCP share the port (``a=rtcp-mux``, RFC 5761 §5.1.1)."""
        return self.has("rtcp-mux")

    @property
    def rtcp_rsize(self) -> bool:
        """Return whether reduced-size RTCP is allowed (``a=rtcp-rsize``, RFC 5506 §5)."""
        return self.has("rtcp-rsize")

    @property
    def msids(self) -> tuple[Msid, ...]:
        """Return the ``a=msid`` lines (RFC 8830)."""
        return self.typed(Msid)

    @property
    def ssrc_attributes(self) -> tuple[SsrcAttribute, ...]:
        """Return the ``a=ssrc`` lines (RFC 5576 §4.1)."""
        return self.typed(SsrcAttribute)

    @property
    def ssrcs(self) -> tuple[int, ...]:
        """Return each SSRC named by ``a=ssrc``, once, in first-seen order."""
        return tuple(dict.fromkeys(a.ssrc for a in self.ssrc_attributes))

    @property
    def ssrc_groups(self) -> tuple[SsrcGroup, ...]:
        """Return the ``a=ssrc-group`` lines (RFC 5576 §4.2)."""
        return self.typed(SsrcGroup)

    @property
    def codecs(self) -> tuple[Codec, ...]:
        """Return one :class:`~realtime.sdp.codecs.Codec` per payload type, in ``m=`` order."""
        return collect_codecs(self.formats, self.lines)

    @property
    def rids(self) -> tuple[RidDescription, ...]:
        """Return the ``a=rid`` lines (RFC 8851)."""
        return self.typed(RidDescription)

    @property
    def simulcast(self) -> Simulcast | None:
        """Return ``a=simulcast`` (RFC 8853), if present."""
        found = self.typed(Simulcast)
        return found[0] if found else None

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """Return the ``a=candidate`` lines (RFC 8839 §5.1)."""
        return self.typed(Candidate)

    @property
    def end_of_candidates(self) -> bool:
        """Return whether ``a=end-of-candidates`` is present (RFC 8839 §5.2)."""
        return self.has("end-of-candidates")

    @property
    def sctp_port(self) -> int | None:
        """Return ``a=sctp-port`` (RFC 8841 §5)."""
        value = self.attribute("sctp-port")
        return None if value is None else int(value)

    @property
    def max_message_size(self) -> int | None:
        """Return ``a=max-message-size`` (RFC 8841 §6)."""
        value = self.attribute("max-message-size")
        return None if value is None else int(value)

    def serialize_lines(self) -> list[str]:
        """Return the section's lines, ``m=`` first, without line ends."""
        return [self.media_line(), *(item.line() for item in self.lines)]


@dataclass(frozen=True, slots=True)
class SessionDescription(_Attributes):
    """Hold a whole SDP: origin, session lines in order, media sections in order."""

    origin: Origin
    lines: tuple[Any, ...] = (Timing(),)
    media: tuple[MediaDescription, ...] = ()
    name: str = "-"
    version: int = 0

    @classmethod
    def parse(cls, text: str) -> SessionDescription:
        """Parse SDP text; raise :class:`~realtime.sdp.errors.SdpError` if malformed."""
        return _parse(text)

    @classmethod
    def decode(cls, data: bytes) -> SessionDescription:
        """Parse SDP bytes (UTF-8, RFC 8866 §5 charset)."""
        if len(data) > MAX_LENGTH:
            raise SdpError(f"SDP is longer than {MAX_LENGTH} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("SDP is not valid UTF-8") from None
        return _parse(text)

    def serialize(self) -> str:
        """Return the SDP text, every line ended by CRLF."""
        out = [f"v={self.version}", self.origin.line(), f"s={self.name}"]
        out += [item.line() for item in self.lines]
        for media in self.media:
            out += media.serialize_lines()
        return "\r\n".join(out) + "\r\n"

    def encode(self) -> bytes:
        """Return :meth:`serialize` as UTF-8 bytes."""
        return self.serialize().encode("utf-8")

    @property
    def groups(self) -> tuple[Group, ...]:
        """Return the ``a=group`` lines (RFC 5888 §5)."""
        return self.typed(Group)

    @property
    def bundle(self) -> tuple[str, ...]:
        """Return the mids of the first BUNDLE group (RFC 9143 §7), or ``()``."""
        for group in self.groups:
            if group.semantics == "BUNDLE":
                return group.mids
        return ()

    @property
    def ice_lite(self) -> bool:
        """Return whether the endpoint is ICE-lite (``a=ice-lite``, RFC 8839 §5.3)."""
        return self.has("ice-lite")

    def media_by_mid(self, mid: str) -> MediaDescription | None:
        """Return the media section whose ``a=mid`` is ``mid``."""
        for media in self.media:
            if media.mid == mid:
                return media
        return None

    def transport_value(self, media: MediaDescription, name: str) -> str | None:
        """Return attribute ``name`` of ``media``, falling back to the session level."""
        value = media.attribute(name)
        return self.attribute(name) if value is None else value

    def fingerprints_for(self, media: MediaDescription) -> tuple[Fingerprint, ...]:
        """Return the fingerprints of ``media``, else the session-level ones."""
        return media.fingerprints or self.fingerprints


_MEDIA_TYPES = frozenset("icbka")
_SESSION_PARSERS: dict[str, Callable[[str], Any]] = {
    "c": Connection.parse, "b": Bandwidth.parse, "t": Timing.parse,
}


def _split_lines(text: str) -> list[str]:
    if len(text) > MAX_LENGTH:
        raise SdpError(f"SDP is longer than {MAX_LENGTH} bytes")
    if "\x00" in text:
        raise SdpError("SDP contains a NUL character")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise SdpError("SDP is empty")
    return lines


def _parse(text: str) -> SessionDescription:
    lines = _split_lines(text)
    for number, line in enumerate(lines, 1):
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z") or "\r" in line:
            raise SdpError(f"SDP line {number} is not <type>=<value>: {quote(line)}")
    if lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    if len(lines) < 3 or lines[1][0] != "o" or lines[2][0] != "s":
        raise SdpError("SDP must begin with v=, o= and s= lines")
    origin = Origin.parse(lines[1][2:])
    session: list[Any] = []
    media: list[MediaDescription] = []
    current: list[Any] = session
    for number, line in enumerate(lines[3:], 4):
        kind, value = line[0], line[2:]
        if kind == "m":
            if len(media) == MAX_MEDIA:
                raise SdpError(f"SDP has more than {MAX_MEDIA} media sections")
            _close(media, current)
            media.append(MediaDescription.parse_media_line(value))
            current = []
        elif kind in "vos":
            raise SdpError(f"SDP line {number}: {kind}= may appear only once")
        elif media and kind not in _MEDIA_TYPES:
            raise SdpError(f"SDP line {number}: {kind}= is not allowed in a media section")
        elif kind == "a":
            current.append(parse_attribute(value))
        elif kind in _SESSION_PARSERS:
            current.append(_SESSION_PARSERS[kind](value))
        else:
            current.append(Line(kind, value))
    _close(media, current)
    if not any(isinstance(item, Timing) for item in session):
        raise SdpError("SDP has no t= line")
    return SessionDescription(origin, tuple(session), tuple(media), lines[2][2:])


def _close(media: list[MediaDescription], lines: list[Any]) -> None:
    if media:
        last = media[-1]
        media[-1] = MediaDescription(last.kind, last.port, last.protocol, last.formats,
                                     tuple(lines), last.port_count)
