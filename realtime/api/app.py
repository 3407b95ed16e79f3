"""
The HTTPS API: a Klein app compatible with Cloudflare Realtime, composed in one place.

:class:`RealtimeAPI` is given every collaborator by its constructor
(``realtime.service.makeService`` builds them), makes the route objects
from them, and mounts every route from one table, :meth:`RealtimeAPI.routes`::

    makeService ──> RealtimeAPI(store, config, clock, peers=, switchboard=, rate_limiter=,
                                session_limiter=, usage=, turn=, cluster=)
                      │ SfuSessions(switchboard, peers, ...)          api/sessions.py
                      │ SessionRoutes, TrackRoutes, DataChannelRoutes  api/sessions.py,
                      │   (each over the SfuSessions)                  tracks.py, datachannels.py
                      │ EchoRoutes(peers), DiagnosticsRoutes(peers, cluster)
                      │                                                api/echo.py, diagnostics.py
                      │ UsageRoutes(usage), TurnRoutes(turn), openapi  api/usage.py, turn.py, openapi.py
                      │ WhipRoutes(sessions, turn): WHIP/WHEP          api/whip.py
                      │ AdapterRoutes(sessions, clock, adapters):      api/adapters.py
                      │   WebSocket media adapters
                      v
                    routes(): one row per route: method, path, bound method, Guard
                      │ mounted on this instance's Klein app, each endpoint wrapped by
                      │ http.authenticated (CORS, preflight, auth, JSON)   api/http.py
                      v
                    Site(api.app.resource())

A :class:`Guard` says where a group of routes is mounted and who may call them::

    app       /v1/apps/{appId}/...  and  /apps/{appId}/...   bearer: the app's secret (auth.py)
    key       /v1/turn/keys/{keyId}/...                      bearer: the key's token (turn.py)
    PUBLIC    /openapi.json                                  anyone

Route modules import nothing from here (no route registers itself by being
imported), so ``api/`` has no import circle (tests/test_layering.py).  The
Klein app is per instance, not the class attribute of docs/design.md §3: its
endpoints are the bound methods of this instance's route objects.  A request
that matches no route, or a route with another method, answers JSON 404/405
(a preflight for ``OPTIONS``); an unexpected exception is logged and answers
500 ``internal_error``.

Adding a route (the next engineer's recipe): write a method
``f(self, request, app, **path_args)`` on the route class that owns its state
(return a JSON body, or ``(status, body)``; raise :class:`ApiError`; may be
async), then add its row to :meth:`RealtimeAPI.routes` and to docs/api.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from realtime.api.adapters import AdapterRoutes, AdapterSettings
from realtime.api.auth import authenticate
from realtime.api.cluster_hooks import ClusterHooks
from realtime.api.datachannels import DataChannelRoutes
from realtime.api.diagnostics import DiagnosticsRoutes
from realtime.api.echo import EchoRoutes
from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import Authenticate, authenticated, error_response, preflight
from realtime.api.media import Announced, MediaPeers
from realtime.api.openapi import openapi
from realtime.api.sessions import SessionRoutes, SfuSessions
from realtime.api.tracks import TrackRoutes
from realtime.api.turn import PREFIX as TURN_KEY_PREFIX
from realtime.api.turn import TurnKeys, TurnRoutes
from realtime.api.usage import SfuUsage, UsageRoutes
from realtime.api.whip import WhipRoutes
from realtime.sfu.limits import RateLimiter
from realtime.sfu.switchboard import Switchboard
from realtime.storage import App, ServerConfig, StateStore

#: Path prefixes under which every app route is served (docs/cloudflare-api.md §1.1).
APP_PREFIXES = ("/v1/apps/<app_id>", "/apps/<app_id>")

log = Logger()


@dataclass(frozen=True)
class Guard:
    """Where a group of routes lives and who may call them.

    :param prefixes: the path prefixes the routes are mounted under.
    :param id_name: the path variable naming who calls (``app_id``, ``key_id``).
    :param authenticate: checks that id and the bearer token; ``None``: no authentication.
    """

    prefixes: tuple[str, ...]
    id_name: str = ""
    authenticate: Authenticate | None = None


#: routes that anyone may call, mounted at their own path
PUBLIC = Guard(("",))


@dataclass(frozen=True)
class Route:
    """One row of the API's route table.

    :param method: the HTTP method (``OPTIONS`` is answered for every route).
    :param path: the path after the guard's prefix (``/sessions/new``).
    :param handler: ``handler(request, principal, **path_args)``, or ``handler(request)``
        when public.
    :param guard: where it is mounted and who may call it.
    """

    method: str
    path: str
    handler: Callable[..., Any]
    guard: Guard


class RealtimeAPI:
    """Serve the Realtime HTTPS API over the collaborators it is given.

    :param store: the persistent :class:`~realtime.storage.StateStore` (apps, usage).
    :param config: the announced addresses and command-line apps.
    :param clock: the reactor's clock (``task.Clock`` in tests).
    :param peers: runs PeerConnections on the media port (:class:`~realtime.net.peers.PeerHost`).
    :param switchboard: the SFU's registry of sessions and tracks.
    :param rate_limiter: API calls per session (50/s).
    :param session_limiter: ``sessions/new`` per app (``--session-rate``, ``--session-burst``).
    :param usage: the SFU usage meter and its store.
    :param turn: the TURN keys (``None``: the TURN key routes answer 401).
    :param cluster: the cluster directory's hooks (``--cluster``), or None.
    :param shared_apps: returns an app another node shares through the directory
        (``--cluster``; :class:`realtime.cluster.accounts.ClusterAccounts`), or None.
    :param adapters: the WebSocket adapters' settings (``--allow-loopback-adapters`` ...).
    """

    def __init__(self, store: StateStore, config: ServerConfig, clock: IReactorTime, *,
                 peers: MediaPeers, switchboard: Switchboard, rate_limiter: RateLimiter,
                 session_limiter: RateLimiter, usage: SfuUsage, turn: TurnKeys | None = None,
                 cluster: ClusterHooks | None = None,
                 shared_apps: Callable[[str], App | None] | None = None,
                 adapters: AdapterSettings | None = None) -> None:
        self.store = store
        self.shared_apps = shared_apps
        self.announced = Announced(config)
        self.clock = clock
        self.peers = peers
        self.usage = usage
        self.turn = turn
        self.cluster = cluster
        self.sessions = SfuSessions(switchboard, peers, self.announced, clock, rate_limiter,
                                    session_limiter, cluster)
        self.adapters = AdapterRoutes(self.sessions, clock, adapters)
        self.app = Klein()
        self.app.handle_errors(NotFound)(self.not_found)
        self.app.handle_errors(MethodNotAllowed)(self.method_not_allowed)
        self.app.handle_errors(HTTPException)(self.http_error)
        self.app.handle_errors(Exception)(self.internal_error)
        for route in self.routes():
            self._mount(route)

    @property
    def config(self) -> ServerConfig:
        """Return the announced configuration (the bound ports once the service started)."""
        return self.announced.config

    @config.setter
    def config(self, config: ServerConfig) -> None:
        self.announced.config = config

    @property
    def switchboard(self) -> Switchboard:
        """Return the SFU's registry of sessions and tracks."""
        return self.sessions.switchboard

    def routes(self) -> list[Route]:
        """Return every route of the API: the one table (docs/api.md describes each)."""
        sessions = SessionRoutes(self.sessions)
        tracks = TrackRoutes(self.sessions)
        channels = DataChannelRoutes(self.sessions)
        echo = EchoRoutes(self.peers, self.announced, self.cluster)
        diagnostics = DiagnosticsRoutes(self.peers, self.cluster)
        usage = UsageRoutes(self.usage, self.clock)
        turn = TurnRoutes(self.turn, self.clock)
        whip = WhipRoutes(self.sessions, self.turn)
        app = Guard(APP_PREFIXES, "app_id", self.authenticate_app)
        key = Guard((TURN_KEY_PREFIX,), "key_id", turn.authenticate)
        session = "/sessions/<session_id>"
        return [
            Route("GET", "/", self.app_info, app),
            Route("POST", "/sessions/new", sessions.sessions_new, app),
            Route("PUT", f"{session}/renegotiate", sessions.renegotiate, app),
            Route("GET", session, sessions.session_state, app),
            Route("POST", f"{session}/tracks/new", tracks.tracks_new, app),
            Route("PUT", f"{session}/tracks/close", tracks.tracks_close, app),
            Route("PUT", f"{session}/tracks/update", tracks.tracks_update, app),
            Route("POST", f"{session}/datachannels/establish", channels.establish, app),
            Route("POST", f"{session}/datachannels/new", channels.datachannels_new, app),
            Route("PUT", f"{session}/datachannels/update", channels.datachannels_update, app),
            Route("PUT", f"{session}/datachannels/close", channels.datachannels_close, app),
            Route("POST", "/echo/new", echo.echo_new, app),                       # ours
            Route("GET", "/diagnostics", diagnostics.diagnostics, app),           # ours
            Route("GET", "/usage", usage.usage_report, app),
            Route("POST", "/ingest/<name>", whip.ingest, app),                    # WHIP
            Route("PATCH", "/ingest/<name>/<resource_id>", whip.ingest_patch, app),
            Route("DELETE", "/ingest/<name>/<resource_id>", whip.ingest_delete, app),
            Route("POST", "/play/<name>", whip.play, app),                        # WHEP
            Route("PATCH", "/play/<name>/<resource_id>", whip.play_patch, app),
            Route("DELETE", "/play/<name>/<resource_id>", whip.play_delete, app),
            Route("POST", "/adapters/websocket/new", self.adapters.adapters_new, app),
            Route("POST", "/adapters/websocket/close", self.adapters.adapters_close, app),
            Route("POST", "/credentials/generate-ice-servers", turn.generate_ice_servers, key),
            Route("POST", "/credentials/generate", turn.generate_legacy, key),
            Route("POST", "/credentials/<username>/revoke", turn.revoke, key),
            Route("GET", "/usage", turn.usage, key),
            Route("GET", "/openapi.json", openapi, PUBLIC),
        ]

    def _mount(self, route: Route) -> None:
        """Add ``route`` to this instance's Klein app, under each prefix of its guard."""
        guard = route.guard
        if guard.authenticate is None:
            self.app.route(route.path, methods=[route.method, "OPTIONS"],
                           endpoint=f"{route.method} {route.path}")(route.handler)
            return
        endpoint = authenticated(route.handler, guard.authenticate, guard.id_name)
        for prefix in guard.prefixes:
            self.app.route(prefix + route.path, methods=[route.method], strict_slashes=False,
                           endpoint=f"{route.method} {prefix}{route.path}")(endpoint)

    def authenticate_app(self, app_id: str, authorization: bytes | None) -> App:
        """Return the app a request may act for (:func:`realtime.api.auth.authenticate`)."""
        return authenticate(app_id, authorization, self.config, self.store, self.shared_apps)

    def app_info(self, request: IRequest, app: App) -> dict[str, Any]:
        """Return the app id and where media and TURN listen (a liveness probe for clients)."""
        config = self.config
        return {
            "appId": app.app_id,
            "media": {"ip": config.public_ip, "port": config.media_port},
            "turn": {"port": config.turn_port, "tlsPort": config.turns_port},
        }

    # -- errors of routing and of routes ---------------------------------------------

    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        """Answer an unknown path with a JSON 404 (or a preflight for OPTIONS)."""
        if request.method == b"OPTIONS":
            return preflight(request)
        path = (request.path or b"").decode("ascii", "replace")
        return error_response(request, ApiError.not_found(f"No route for {path}"))

    def method_not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        """Answer a known path with the wrong method with a JSON 405 (OPTIONS: preflight)."""
        if request.method == b"OPTIONS":
            return preflight(request)
        method = request.method.decode("ascii", "replace")
        error = ApiError(405, ErrorCode.METHOD_NOT_ALLOWED, f"{method} is not allowed here")
        return error_response(request, error)

    def http_error(self, request: IRequest, failure: Failure) -> bytes:
        """Answer any other routing exception (e.g. a redirect) as JSON with its status."""
        value = failure.value
        assert isinstance(value, HTTPException)
        code = value.code or 400
        error = ApiError(code, ErrorCode.NOT_FOUND if code == 404 else "http_error", value.name)
        return error_response(request, error)

    def internal_error(self, request: IRequest, failure: Failure) -> bytes:
        """Log an unexpected failure and answer 500 ``internal_error``."""
        log.failure("API request {method} {path} failed", failure,
                    method=request.method, path=request.path)
        error = ApiError(500, ErrorCode.INTERNAL_ERROR, "Internal server error")
        return error_response(request, error)

