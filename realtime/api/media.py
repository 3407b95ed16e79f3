"""
What the API knows of the media plane: the peers it hands sessions to, the address it announces.

``api/`` sits below ``net/`` (tests/test_layering.py), so it names what it
needs of :class:`realtime.net.peers.PeerHost` as a protocol, :class:`MediaPeers`;
``realtime.service.makeService`` passes the real one in.  Every SDP answer the
API writes carries the media port's address, which is known for sure only
once the service has bound its ports (``--media-port 0`` means "any"):
:class:`Announced` is the one object every route reads it from, updated by
:meth:`realtime.service.RealtimeService.startService`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from realtime.dtls.certificate import Certificate
from realtime.storage import ServerConfig


class Counted(Protocol):
    """A port that counts what it drops (:class:`realtime.net.media_port.MediaPort`)."""

    @property
    def drops(self) -> Mapping[str, int]:
        """Dropped datagrams by reason."""
        ...


class MediaPeers(Protocol):
    """Run PeerConnections on the media port (:class:`realtime.net.peers.PeerHost`).

    Sessions are typed ``Any`` here: an :class:`~realtime.sfu.session.SfuSession`
    or an :class:`~realtime.peer.echo.EchoSession`, whatever the host runs.
    """

    @property
    def certificate(self) -> Certificate:
        """Our DTLS certificate (its fingerprint goes in every answer)."""
        ...

    @property
    def keylog(self) -> Callable[[bytes], None] | None:
        """Receives NSS key-log lines of every DTLS handshake (``--dtls-keylog``)."""
        ...

    @property
    def sessions(self) -> Mapping[str, Any]:
        """The running sessions by id."""
        ...

    @property
    def port(self) -> Counted | None:
        """The media port, once attached."""
        ...

    def add(self, session: Any) -> None:
        """Start running ``session``'s PeerConnection."""

    def remove(self, session: Any, reason: str = "closed") -> None:
        """Stop running ``session`` (a no-op for one it does not run)."""

    def expect(self, session: Any) -> None:
        """Let ``session``'s ICE agent answer checks before its connection exists."""

    def flush(self, session: Any) -> None:
        """Send what ``session`` queued."""

    def rekey(self, session: Any) -> None:
        """Route checks by ``session``'s new ICE ufrag (after an ICE restart, WHIP PATCH)."""

    def wait_connected(self, session: Any, timeout: float) -> Deferred[bool]:
        """Fire True once ``session`` is connected, False after ``timeout`` seconds."""
        ...

    def release(self, session_id: str) -> bool:
        """Drop session ``session_id`` unless it is connected here (another node took it)."""
        ...


class Announced:
    """Where this server says it listens: the command line's ports, then the bound ones.

    :param config: the configuration from the command line (ports may be 0).
    """

    def __init__(self, config: ServerConfig) -> None:
        #: replaced by the service once its ports are bound
        self.config = config
