"""
Cloudflare's WebSocket media adapters: ``adapters/websocket/new`` and ``.../close``.

Each adapter connects one SFU track and one WebSocket endpoint, in one
direction (docs/api.md, "WebSocket adapters"; CALLS-API.md §1.3, §3.1)::

    POST /v1/apps/{appId}/adapters/websocket/new     {"tracks": [1-4 AdapterObject]}
      location "remote": sessionId + trackName of a published track, outputCodec
                         pcm (Opus track -> 48 kHz s16 stereo PCM) or jpeg (VP8/H.264)
      location "local":  inputCodec pcm; a new session publishes trackName from it
      -> 200 {"tracks": [{trackName, adapterId, endpoint[, sessionId]} | item error]}
         503 when every item failed; 400 decoding_error (JSON or a field's type),
         406 invalid_params (a required field missing, bad endpoint, 0 or > 4 items)
    POST /v1/apps/{appId}/adapters/websocket/close   {"tracks": [1-4 {adapterId}]}
      -> 200 {"tracks": [{adapterId, bytesProcessed} | {adapterId} (closed already)
                         | item error adapter_not_found]}, 503 when every item failed

The SFU opens every WebSocket (RFC 6455), ``ws://`` or ``wss://``, without
custom headers or redirects.  Item errors: ``websocket_localhost_not_allowed``
(a loopback endpoint, unless ``--allow-loopback-adapters``; a host *name* is
resolved first and refused when any of its addresses is loopback, and the
WebSocket then connects to the address that was checked, so a name cannot
resolve elsewhere a second time), ``adapter_limit_reached`` (the app already
holds ``--adapter-limit`` live adapters: a bound on what one app can hold open),
``websocket_handshake_failed`` (refused, or no 101), ``websocket_connection_timeout``
(no open within :data:`CONNECT_TIMEOUT` s), ``not_found_track_error``, ``invalid_params``
(the track's codec does not fit the outputCodec).

A ``mode`` given is accepted and ignored, as Cloudflare does: ingest is
``buffer``, egress ``stream``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.threads import deferToThread
from twisted.web.iweb import IRequest

from realtime.adapters.egress import EgressTap
from realtime.adapters.ingest import AdapterSession, AdapterTrack, PcmIngest, opus_media
from realtime.api.adapter_links import (
    ConnectionTimedOut, EgressLink, HandshakeFailed, IngestLink, Link, Worker, connect)
from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import read_json
from realtime.api.sessions import SfuSessions, item_error
from realtime.api.tracks import NOT_FOUND, find_track
from realtime.storage import App

#: seconds an endpoint has to complete the WebSocket opening handshake
CONNECT_TIMEOUT = 5.0

#: adapters per request (Cloudflare's limit)
MAX_ITEMS = 4

#: closed adapter ids remembered, so a repeated close succeeds (idempotent)
CLOSED_MEMORY = 10_000

#: units an egress tap queues for its decoder: audio packets (1 s), video frames
AUDIO_BACKLOG = 50
VIDEO_BACKLOG = 8

_ENDPOINT = re.compile(r"^wss?://", re.IGNORECASE)

HANDSHAKE_FAILED = ("websocket_handshake_failed", "The handshake with the provided endpoint failed.")
TIMEOUT = ("websocket_connection_timeout", "The endpoint did not accept the WebSocket in time.")
LOCALHOST = ("websocket_localhost_not_allowed", "Localhost endpoints are not allowed.")
LIMIT = ("adapter_limit_reached", "The app holds as many adapters as --adapter-limit allows.")
UNRESOLVED = ("websocket_handshake_failed", "The endpoint's host name does not resolve.")
ADAPTER_NOT_FOUND = ("adapter_not_found", "No such adapter.")


#: resolves a host name to its addresses (``getaddrinfo``, off the reactor thread)
Resolver = Callable[[str], Awaitable[list[str]]]


async def resolve_in_thread(host: str) -> list[str]:
    """Return ``host``'s addresses from the system resolver, run in a thread."""
    infos = await deferToThread(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class AdapterSettings:
    """The adapters' command-line settings (docs/operations.md).

    :param allow_loopback: accept endpoints on 127.0.0.0/8, ::1 and ``localhost``
        (``--allow-loopback-adapters``; tests).
    :param jpeg_fps: JPEG images per second of a video egress (``--adapter-jpeg-fps``).
    :param threads: worker threads decoding and encoding for every adapter.
    :param per_app: live adapters one app may hold (``--adapter-limit``).
    :param resolve: host name -> addresses (the system resolver, in a thread).
    """

    allow_loopback: bool = False
    jpeg_fps: float = 1.0
    threads: int = 2
    per_app: int = 64
    resolve: Resolver = resolve_in_thread


def invalid(description: str) -> ApiError:
    """Return a 406 ``invalid_params`` error (the adapters' status for it)."""
    return ApiError(406, ErrorCode.INVALID_PARAMS, description)


def undecodable() -> ApiError:
    """Return the adapters' 400 ``decoding_error``."""
    return ApiError.decoding_error("The request could not be decoded.")


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return ``body["tracks"]``: 1-4 objects, else the spec's 400/406."""
    tracks = body.get("tracks")
    if tracks is None:
        raise invalid("tracks is required")
    if not isinstance(tracks, list) or not all(isinstance(t, dict) for t in tracks):
        raise undecodable()
    if not 1 <= len(tracks) <= MAX_ITEMS:
        raise invalid(f"Expecting at least 1 and at most {MAX_ITEMS} track in the request")
    return tracks


def _string(item: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = item.get(key)
    if value is None:
        if required:
            raise invalid(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise undecodable()
    if required and not value:
        raise invalid(f"{key} must not be empty")
    return value


def check_new_item(item: dict[str, Any]) -> dict[str, str]:
    """Return a ``new`` item's fields, checked (400 for a type, 406 for a value)."""
    location = _string(item, "location")
    name = _string(item, "trackName")
    endpoint = _string(item, "endpoint")
    fields = {"location": location, "trackName": name, "endpoint": endpoint}
    for key in ("sessionId", "outputCodec", "inputCodec", "mode"):
        value = _string(item, key, required=False)
        if value is not None:
            fields[key] = value
    assert endpoint is not None
    if not _ENDPOINT.match(endpoint) or not _host_and_port(endpoint):
        raise invalid("endpoint must be a ws:// or wss:// URL")
    if fields.get("mode") not in (None, "stream", "buffer"):
        raise invalid("mode must be stream or buffer")
    if location == "remote":
        if not fields.get("sessionId"):
            raise invalid("sessionId is required for a remote adapter")
        if fields.get("outputCodec") not in ("pcm", "jpeg"):
            raise invalid("outputCodec must be pcm or jpeg")
    elif location == "local":
        if fields.get("inputCodec") != "pcm":
            raise invalid("inputCodec must be pcm")
    else:
        raise invalid("location must be local or remote")
    return fields  # type: ignore[return-value]


def _host_and_port(endpoint: str) -> bool:
    """Return whether ``endpoint`` parses as a URL with a host and a valid port, if any."""
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 (raises ValueError when out of range)
    except ValueError:
        return False
    return bool(parts.hostname) and len(endpoint) <= 2048


def is_loopback(endpoint: str) -> bool:
    """Return whether ``endpoint``'s host is ``localhost`` or a loopback address literal."""
    host = (urlsplit(endpoint).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    return _loopback_address(host)


def _loopback_address(text: str) -> bool:
    """Return whether ``text`` is a loopback or unspecified address (v4-mapped too)."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or address.is_unspecified or bool(mapped and mapped.is_loopback)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class AdapterRoutes:
    """The adapter endpoints and the adapters they made.

    :param sessions: the SFU's sessions (tracks to tap, the switchboard to publish in).
    :param reactor: connects the WebSockets, times their opening, paces ingest.
    :param settings: the command line's adapter settings.
    :param worker: runs codecs off the reactor (default: a pool of ``settings.threads``).
    """

    def __init__(self, sessions: SfuSessions, reactor: Any,
                 settings: AdapterSettings | None = None, worker: Worker | None = None) -> None:
        self.sessions = sessions
        self.reactor = reactor
        self.settings = settings or AdapterSettings()
        self.worker = worker or Worker(reactor, self.settings.threads)
        #: adapter id -> (app id, its link)
        self.adapters: dict[str, tuple[str, Link]] = {}
        #: closed adapter id -> app id
        self.closed: OrderedDict[str, str] = OrderedDict()

    # -- new ----------------------------------------------------------------------------

    async def adapters_new(self, request: IRequest, app: App) -> tuple[int, dict[str, Any]]:
        """Create 1-4 adapters; 200 when any item succeeded, else 503."""
        items = [check_new_item(item) for item in _items(read_json(request))]
        results = []
        for fields in items:
            results.append(await self._new(app, fields))
        status = 200 if any("errorCode" not in r for r in results) else 503
        return status, {"tracks": results}

    async def _new(self, app: App, fields: dict[str, str]) -> dict[str, Any]:
        echo = {"trackName": fields["trackName"], "endpoint": fields["endpoint"]}
        if not self.settings.allow_loopback and is_loopback(fields["endpoint"]):
            return item_error(echo, *LOCALHOST)
        if sum(1 for owner, _ in self.adapters.values()
               if owner == app.app_id) >= self.settings.per_app:
            return item_error(echo, *LIMIT)
        host = urlsplit(fields["endpoint"]).hostname or ""
        address = None
        if not _is_address(host):   # check what the name resolves to, then connect there
            try:
                addresses = await self.settings.resolve(host)
            except (OSError, UnicodeError):
                return item_error(echo, *UNRESOLVED)
            if not addresses:
                return item_error(echo, *UNRESOLVED)
            if not self.settings.allow_loopback and any(map(_loopback_address, addresses)):
                return item_error(echo, *LOCALHOST)
            address = addresses[0]
        track = None
        if fields["location"] == "remote":
            track = await find_track(self.sessions, app, fields["sessionId"], fields["trackName"])
            if track is None:
                return item_error(echo, *NOT_FOUND)
            codec = next((c.name.lower() for c in track.codecs if not c.is_rtx), "")
            wanted = {"pcm": ("opus",), "jpeg": ("vp8", "h264")}[fields["outputCodec"]]
            if codec not in wanted:
                return item_error(echo, "invalid_params",
                                  f"outputCodec {fields['outputCodec']} cannot carry a "
                                  f"{codec or track.kind} track")
        try:
            protocol = await connect(self.reactor, fields["endpoint"], CONNECT_TIMEOUT, address)
        except ConnectionTimedOut:
            return item_error(echo, *TIMEOUT)
        except HandshakeFailed:
            return item_error(echo, *HANDSHAKE_FAILED)
        adapter_id = self._new_id()
        if track is not None:
            if track.ended:
                protocol.sendClose(1000)
                return item_error(echo, *NOT_FOUND)
            link: Link = self._egress(adapter_id, protocol, track, codec, fields["outputCodec"])
            result = {**echo, "adapterId": adapter_id}
        else:
            link, session_id = self._ingest(adapter_id, protocol, app, fields["trackName"])
            result = {**echo, "adapterId": adapter_id, "sessionId": session_id}
        self.adapters[adapter_id] = (app.app_id, link)
        return result

    def _new_id(self) -> str:
        while True:
            adapter_id = self.sessions.switchboard.random(16).hex()
            if adapter_id not in self.adapters and adapter_id not in self.closed:
                return adapter_id

    def _egress(self, adapter_id: str, protocol: Any, track: Any, codec: str,
                output: str) -> EgressLink:
        tap = EgressTap(track, codec, lambda: None,
                        VIDEO_BACKLOG if track.kind == "video" else AUDIO_BACKLOG)
        link = EgressLink(adapter_id, protocol, self.worker, self.reactor, self._closed, tap,
                          1.0 / self.settings.jpeg_fps)
        track.attach(tap, self.reactor.seconds())
        return link

    def _ingest(self, adapter_id: str, protocol: Any, app: App,
                name: str) -> tuple[IngestLink, str]:
        board = self.sessions.switchboard
        while True:
            session_id = board.random(16).hex()
            if board.get(session_id) is None and not board.is_gone(session_id):
                break
        ssrc = int.from_bytes(board.random(4), "big") or 1
        now = self.reactor.seconds()
        track = AdapterTrack(AdapterSession(app.app_id, session_id), "0", name,
                             opus_media(ssrc, f"adapter-{adapter_id[:8]}"), now)
        board.publish(track)
        ingest = PcmIngest(rtp_start=int.from_bytes(board.random(4), "big"))
        link = IngestLink(adapter_id, protocol, self.worker, self.reactor, self._closed, track,
                          ingest, ssrc, int.from_bytes(board.random(2), "big"),
                          board.unpublish, self._flush)
        return link, session_id

    def _flush(self) -> None:
        """Send what a track's fan-out queued on its subscribers' sessions, now."""
        touched = self.sessions.switchboard.touched
        while touched:
            self.sessions.peers.flush(touched.pop())

    def _closed(self, link: Link) -> None:
        """A link ended (closed by us or by its endpoint): remember it as closed."""
        entry = self.adapters.pop(link.adapter_id, None)
        if entry is not None:
            self.closed[link.adapter_id] = entry[0]
            while len(self.closed) > CLOSED_MEMORY:
                self.closed.popitem(last=False)

    # -- close --------------------------------------------------------------------------

    def adapters_close(self, request: IRequest, app: App) -> tuple[int, dict[str, Any]]:
        """Close 1-4 adapters; idempotent; 200 when any item succeeded, else 503."""
        items = _items(read_json(request))
        ids = [_string(item, "adapterId") for item in items]
        results: list[dict[str, Any]] = []
        for adapter_id in ids:
            assert adapter_id is not None
            entry = self.adapters.get(adapter_id)
            if entry is not None and entry[0] == app.app_id:
                link = entry[1]
                link.close()
                results.append({"adapterId": adapter_id, "bytesProcessed": link.bytes_processed})
            elif self.closed.get(adapter_id) == app.app_id:
                results.append({"adapterId": adapter_id})
            else:
                results.append(item_error({"adapterId": adapter_id}, *ADAPTER_NOT_FOUND))
        status = 200 if any("errorCode" not in r for r in results) else 503
        return status, {"tracks": results}

    def stats(self) -> dict[str, Any]:
        """Return every live adapter's counters (diagnostics)."""
        return {adapter_id: link.counters() for adapter_id, (_, link) in self.adapters.items()}

    def stop(self) -> None:
        """Close every adapter (service shutdown)."""
        for _, link in list(self.adapters.values()):
            link.close()
        self.worker.stop()
