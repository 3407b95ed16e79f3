"""
What the cluster directory holds, as typed records with a pure codec.

Every record is a frozen dataclass; ``record.encode()`` is compact JSON
(UTF-8, sorted keys) and ``Record.decode(data)`` checks every field's type and
size and raises only :class:`RecordDecodeError` (a
:class:`~realtime.errors.DecodeError`): the directory is shared by many
processes, so a node never trusts a value it did not write itself.
``decode(r.encode()) == r`` for every record (Hypothesis checks it).

Where each record lives is in :mod:`realtime.cluster.keys` and
``docs/cluster.md``; the Redis I/O is in :mod:`realtime.cluster.directory`.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, cast

from realtime.errors import DecodeError

#: Largest encoded record accepted (bytes); a negotiated SDP answer is a few KiB.
MAX_RECORD = 256 * 1024
#: Longest string field, except the media description.
MAX_TEXT = 1024
#: Longest list field.
MAX_ITEMS = 256


class RecordDecodeError(DecodeError):
    """Raised when bytes read from the directory are not a valid record."""


def _check(name: str, kind: str, value: object, limit: int) -> object:
    """Return ``value`` (lists as tuples) if it is of ``kind``; raise otherwise."""
    if kind.endswith(" | None"):
        return None if value is None else _check(name, kind[:-7], value, limit)
    if kind == "str":
        if not isinstance(value, str) or len(value) > limit:
            raise RecordDecodeError(f"field {name!r} is not a string of at most {limit} characters")
        return value
    if kind == "int":
        if type(value) is not int or not -(2**63) <= value < 2**64:
            raise RecordDecodeError(f"field {name!r} is not a 64-bit integer")
        return value
    if kind == "float":
        if (type(value) not in (int, float) or not isinstance(value, (int, float))
                or not math.isfinite(value)):
            raise RecordDecodeError(f"field {name!r} is not a finite number")
        return float(value)
    if kind == "bool":
        if type(value) is not bool:
            raise RecordDecodeError(f"field {name!r} is not a boolean")
        return value
    if kind.startswith("tuple[") and kind.endswith(", ...]"):
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            raise RecordDecodeError(f"field {name!r} is not a list of at most {MAX_ITEMS} items")
        return tuple(_check(name, kind[6:-6], item, MAX_TEXT) for item in value)
    if kind.startswith("dict[str, ") and kind.endswith("]"):
        if not isinstance(value, dict) or len(value) > MAX_ITEMS:
            raise RecordDecodeError(f"field {name!r} is not an object of at most {MAX_ITEMS} items")
        return {_check(name, "str", key, limit): _check(name, kind[10:-1], item, limit)
                for key, item in value.items()}
    raise TypeError(f"record field type {kind!r} is not supported")  # our bug


class Record:
    """Mixin: JSON encode/decode with per-field type checks (see module docstring)."""

    #: Names the record type in error messages and in control messages.
    kind: ClassVar[str] = "record"
    #: Fields allowed to be longer than :data:`MAX_TEXT` (name -> limit).
    long_fields: ClassVar[dict[str, int]] = {}

    def encode(self) -> bytes:
        """Return the record as compact, key-sorted UTF-8 JSON."""
        body = {f.name: getattr(self, f.name) for f in fields(cast(Any, self))}
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes):
        """Parse bytes written by :meth:`encode`; raise :class:`RecordDecodeError` if invalid.

        A field with a default may be absent (it was added after the node that
        wrote the record was built: a rolling upgrade); every other one must be there.
        """
        if len(data) > MAX_RECORD:
            raise RecordDecodeError(f"{cls.kind} record of {len(data)} bytes exceeds {MAX_RECORD}")
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise RecordDecodeError(f"{cls.kind} record is not JSON") from None
        if not isinstance(body, dict):
            raise RecordDecodeError(f"{cls.kind} record is not a JSON object")
        values = {}
        for f in fields(cast(Any, cls)):
            if f.name not in body:
                if f.default is not MISSING or f.default_factory is not MISSING:
                    # added later: a record an older node wrote
                    continue
                raise RecordDecodeError(f"{cls.kind} record has no {f.name!r}")
            limit = cls.long_fields.get(f.name, MAX_TEXT)
            values[f.name] = _check(f.name, str(f.type), body[f.name], limit)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class AppRecord(Record):
    """An app (Cloudflare's ``appId`` + bearer secret), shared so any node authenticates it."""

    kind: ClassVar[str] = "app"
    app_id: str
    secret: str
    created: float


@dataclass(frozen=True, slots=True)
class TurnKeyRecord(Record):
    """A TURN key credentials are issued under (RFC 8489 §9.2 long-term credentials)."""

    kind: ClassVar[str] = "turn-key"
    key_id: str
    token: str
    created: float


@dataclass(frozen=True, slots=True)
class SessionRecord(Record):
    """One PeerConnection's negotiated parameters: all a node needs to take it over.

    ``ice_ufrag``/``ice_pwd`` are *our* (ICE-lite) credentials from the answer
    (RFC 8445 §5.3): the first STUN Binding's USERNAME starts with
    ``ice_ufrag`` and its MESSAGE-INTEGRITY is keyed with ``ice_pwd``.
    ``remote_fingerprints`` are the peer's ``a=fingerprint`` values
    (RFC 8122 §5), ``dtls_role`` is our role after ``a=setup`` (RFC 4145 §4),
    ``local_fingerprint`` the certificate fingerprint our answer carried.
    ``media_description`` is our answer (the negotiated SDP) and
    ``remote_description`` the peer's offer: with both, a node that did not
    make the session rebuilds it exactly (same ufrag, SSRCs, DTLS role).
    ``session_kind`` says what to rebuild: ``"echo"`` or ``"sfu"``.

    An SFU session (either side may offer, RFC 8829 §5) stores its last
    completed exchange raw: ``local_description`` ours, ``remote_description``
    the client's, ``local_offered`` whether ours was the offer; its
    ``media_description`` is then the plan of :mod:`realtime.sfu.restore`
    (per mid: role, pushed track name, pulled track, payload types we chose).
    ``sealed_media`` lets a node resume the connected session without a new
    DTLS handshake (:mod:`realtime.cluster.resume`).
    """

    kind: ClassVar[str] = "session"
    long_fields: ClassVar[dict[str, int]] = {"media_description": 64 * 1024,
                                             "remote_description": 64 * 1024,
                                             "local_description": 64 * 1024,
                                             "sealed_media": 16 * 1024}
    session_id: str
    app_id: str
    ice_ufrag: str
    ice_pwd: str
    remote_ice_ufrag: str
    remote_fingerprints: tuple[str, ...]
    local_fingerprint: str
    dtls_role: str
    media_description: str
    owner_node: str | None
    created: float
    last_seen: float
    session_kind: str = "sfu"
    remote_description: str = ""
    local_description: str = ""
    local_offered: bool = False
    #: the connected session's SRTP keys and sending state, sealed under the cluster
    #: key (:mod:`realtime.cluster.sealing`); "" until its DTLS handshake completes
    sealed_media: str = ""


@dataclass(frozen=True, slots=True)
class TrackRecord(Record):
    """A track pushed by a session: where it is published and what its RTP looks like."""

    kind: ClassVar[str] = "track"
    long_fields: ClassVar[dict[str, int]] = {"media": 64 * 1024}
    session_id: str
    track_name: str
    mid: str
    media_kind: str
    owner_node: str
    ssrcs: tuple[int, ...]
    rids: tuple[str, ...]
    codecs: tuple[str, ...]
    status: str
    #: what a node mirroring the track needs (payload types, fmtp, rtcp-fb, extension
    #: ids, SSRCs, rids): JSON of :func:`realtime.cluster.track_media.media_to_json`
    media: str = ""


@dataclass(frozen=True, slots=True)
class DataChannelRecord(Record):
    """A DataChannel published by a session (RFC 8832 label + SCTP stream id)."""

    kind: ClassVar[str] = "datachannel"
    session_id: str
    name: str
    stream_id: int
    owner_node: str
    status: str


@dataclass(frozen=True, slots=True)
class NodeRecord(Record):
    """A live node: its id, where peers send it relay traffic, its load, its last heartbeat.

    ``api_address`` (``HOST:PORT``) is where other nodes forward API calls for the
    sessions this node owns (:mod:`realtime.cluster.forward`), over TLS with
    ``api_certificate`` (PEM) pinned; both empty if it takes none.
    ``rtts`` is the smoothed round-trip time, in milliseconds, from this node to
    each member it measured recently (:mod:`realtime.cluster.rtt`), which the
    cascading trees use; a record without it (an older node) decodes with ``{}``.
    """

    kind: ClassVar[str] = "node"
    long_fields: ClassVar[dict[str, int]] = {"api_certificate": 4096}
    node_id: str
    relay_address: str
    media_address: str
    load: float
    heartbeat: float
    api_address: str = ""
    api_certificate: str = ""
    #: peer node id -> smoothed RTT (ms), the live members measured (at most MAX_ITEMS)
    rtts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TurnUsage:
    """TURN bytes counted per key (egress = server to client, what is metered)."""

    key_id: str
    ingress_bytes: int
    egress_bytes: int


#: Control message kinds (node -> node over pub/sub): what each asks the receiver.
CONTROL_KINDS = frozenset({
    "pull",                    # relay track (session_id, track_name) to from_node
    "unpull",                  # stop relaying it there
    "reparent",                # your parent in that track's cascading tree changed: re-read it
    "keyframe_request",        # ask the publisher of the track for a key frame (PLI/FIR)
    "close",                   # close session_id (its owner tears down the PeerConnection)
    "datachannel_subscribe",   # relay DataChannel (session_id, name) to from_node
    "datachannel_unsubscribe",  # stop relaying it there (its last subscriber there left)
    "datachannel_closed",      # that publication closed: close its subscriptions here
    "datachannel_reply",       # a subscription on from_node now holds canReply
    "datachannel_unreply",     # it no longer does (either way: subscriber's or owner's word)
    "datachannel_reparent",    # your parent in that publication's tree changed: re-read it
    "turn_revoke",             # TURN credential ``name`` was revoked: refuse it, end its allocations
})


@dataclass(frozen=True, slots=True)
class ControlMessage(Record):
    """One request from ``from_node`` to the node owning a session or track."""

    kind: ClassVar[str] = "control"
    action: str
    from_node: str
    session_id: str
    name: str
    sent: float

    @classmethod
    def decode(cls, data: bytes) -> ControlMessage:
        """Parse a control message; an unknown ``action`` is a decode error."""
        message = super(ControlMessage, cls).decode(data)
        if message.action not in CONTROL_KINDS:
            raise RecordDecodeError(f"control action {message.action[:40]!r} is unknown")
        return message
