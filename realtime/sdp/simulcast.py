"""
RTP stream identifiers (RFC 8851) and simulcast (RFC 8853) in SDP.

A simulcast sender offers several encodings of one source, each named by a
``rid`` and sent as its own RTP stream tagged with the RtpStreamId header
extension::

    a=rid:f send                       rid-id, direction     (RFC 8851 §10)
    a=rid:h send pt=96;max-width=640   ... with restrictions
    a=simulcast:send f;h;~q recv r1    (RFC 8853 §5.1)

    sc-value    = sc-send [SP sc-recv] / sc-recv [SP sc-send]
    sc-str-list = sc-alt-list *( ";" sc-alt-list )   one entry per stream
    sc-alt-list = sc-id *( "," sc-id )                alternatives for a stream
    sc-id       = ["~"] rid-id                        "~" = starts paused

The answerer mirrors the lists: an offer's ``send f;h;q`` is answered with
``recv f;h;q`` and each ``a=rid:X send`` with ``a=rid:X recv``
(RFC 8853 §5.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from realtime.sdp.attributes import malformed, parse_format_parameters, format_parameters

_RID_ID = re.compile(r"[A-Za-z0-9_-]{1,255}\Z")


def _reverse(direction: str) -> str:
    return "recv" if direction == "send" else "send"


@dataclass(frozen=True, slots=True)
class RidDescription:
    """Describe one RTP stream by rid: direction, payload types, restrictions (RFC 8851 §10)."""

    name: ClassVar[str] = "rid"
    rid: str
    direction: str
    payload_types: tuple[int, ...] = ()
    restrictions: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, value: str) -> RidDescription:
        """Parse ``f send`` or ``h send pt=96,97;max-width=640``."""
        parts = value.split(" ")
        if len(parts) not in (2, 3) or _RID_ID.match(parts[0]) is None:
            raise malformed(cls.name, value)
        if parts[1] not in ("send", "recv"):
            raise malformed(cls.name, value)
        payload_types: tuple[int, ...] = ()
        restrictions: list[tuple[str, str | None]] = []
        for key, item in parse_format_parameters(parts[2]) if len(parts) == 3 else ():
            if key == "pt" and not payload_types and not restrictions:
                numbers = (item or "").split(",")
                if not all(n.isdigit() and n.isascii() and int(n) < 128 for n in numbers):
                    raise malformed(cls.name, value)
                payload_types = tuple(int(n) for n in numbers)
            else:
                restrictions.append((key, item))
        return cls(parts[0], parts[1], payload_types, tuple(restrictions))

    def reversed(self) -> RidDescription:
        """Return the answer's mirror: same rid and restrictions, opposite direction."""
        return RidDescription(self.rid, _reverse(self.direction), self.payload_types,
                              self.restrictions)

    def value(self) -> str:
        """Return ``rid direction [params]``."""
        params: list[tuple[str, str | None]] = []
        if self.payload_types:
            params.append(("pt", ",".join(map(str, self.payload_types))))
        params += self.restrictions
        tail = f" {format_parameters(tuple(params))}" if params else ""
        return f"{self.rid} {self.direction}{tail}"

    def line(self) -> str:
        """Return the whole ``a=rid:`` line."""
        return f"a=rid:{self.value()}"


@dataclass(frozen=True, slots=True)
class SimulcastStream:
    """Name one alternative of a simulcast stream: a rid, maybe paused (``~``)."""

    rid: str
    paused: bool = False

    def __str__(self) -> str:
        return f"~{self.rid}" if self.paused else self.rid


#: one simulcast stream: its alternatives, most preferred first
Alternatives = tuple[SimulcastStream, ...]


def _parse_list(text: str, value: str) -> tuple[Alternatives, ...]:
    streams = []
    for alternatives in text.split(";"):
        ids = []
        for item in alternatives.split(","):
            paused = item.startswith("~")
            rid = item[1:] if paused else item
            if _RID_ID.match(rid) is None:
                raise malformed("simulcast", value)
            ids.append(SimulcastStream(rid, paused))
        streams.append(tuple(ids))
    return tuple(streams)


def _format_list(streams: tuple[Alternatives, ...]) -> str:
    return ";".join(",".join(map(str, alternatives)) for alternatives in streams)


@dataclass(frozen=True, slots=True)
class Simulcast:
    """Hold the send and receive stream lists of ``a=simulcast`` (RFC 8853 §5.1)."""

    name: ClassVar[str] = "simulcast"
    send: tuple[Alternatives, ...] = ()
    recv: tuple[Alternatives, ...] = ()
    #: whether ``recv`` is written first (only meaningful when both lists exist)
    recv_first: bool = False

    @classmethod
    def parse(cls, value: str) -> Simulcast:
        """Parse ``send f;h;q``, ``recv a,b;~c`` or both directions in either order."""
        parts = value.split(" ")
        if len(parts) not in (2, 4) or parts[0] not in ("send", "recv"):
            raise malformed(cls.name, value)
        if len(parts) == 4 and parts[2] != _reverse(parts[0]):
            raise malformed(cls.name, value)
        lists = {parts[0]: _parse_list(parts[1], value)}
        if len(parts) == 4:
            lists[parts[2]] = _parse_list(parts[3], value)
        both = len(parts) == 4
        return cls(lists.get("send", ()), lists.get("recv", ()), both and parts[0] == "recv")

    @property
    def send_rids(self) -> tuple[str, ...]:
        """Return the first-choice rid of every send stream, in order."""
        return tuple(alternatives[0].rid for alternatives in self.send)

    @property
    def recv_rids(self) -> tuple[str, ...]:
        """Return the first-choice rid of every receive stream, in order."""
        return tuple(alternatives[0].rid for alternatives in self.recv)

    def reversed(self) -> Simulcast:
        """Return the answer's mirror: send lists become receive lists and back."""
        both = bool(self.send) and bool(self.recv)
        return Simulcast(self.recv, self.send, both and not self.recv_first)

    def value(self) -> str:
        """Return ``send <list> [recv <list>]`` in the order it was written."""
        parts = []
        for direction in (("recv", "send") if self.recv_first else ("send", "recv")):
            streams = self.send if direction == "send" else self.recv
            if streams:
                parts.append(f"{direction} {_format_list(streams)}")
        return " ".join(parts)

    def line(self) -> str:
        """Return the whole ``a=simulcast:`` line."""
        return f"a=simulcast:{self.value()}"
