"""
The HTTPS API shell: a Klein app compatible with Cloudflare Realtime.

Paths, auth and error shape follow docs/cloudflare-api.md (§1.1, §3.1,
§3.6).  This module holds the plumbing every route shares; the SFU routes
(``sessions/new``, ``tracks/new`` ...) are added with :func:`app_route`::

    request ──> CORS headers (reflect Origin, Vary: Origin)
        │
        ├─ OPTIONS (any path) ─────────────> 204 preflight
        ├─ no route ───────────────────────> 404 {"errorCode": "not_found", ...}
        ├─ route, wrong method ────────────> 405 {"errorCode": "method_not_allowed", ...}
        └─ /v1/apps/{appId}/<path>  or  /apps/{appId}/<path>
               │ authenticate (auth.py) ───> 401 / 404 JSON
               v
           route(self, request, app, **path_args) -> (status, body) or body
               │ ApiError ─────────────────> its status + JSON
               │ any other exception ──────> 500 internal_error (logged)
               v
           JSON body, Content-Type: application/json

Adding a route (the next engineer's recipe)::

    class RealtimeAPI:
        ...
        @app_route(app, "/sessions/<session_id>", "GET")
        def session_state(self, request, app, session_id):
            body = read_json(request)      # lenient JSON, {} when empty
            return 200, {"tracks": [], "dataChannels": []}

``app`` is the authenticated :class:`realtime.storage.App`.  A route may be a
coroutine or return a Deferred.  Both path prefixes are registered at once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from inspect import isawaitable
from typing import Any

from klein import Klein
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from realtime.api.auth import authenticate
from realtime.api.cluster_hooks import ClusterHooks
from realtime.api.errors import ApiError, ErrorCode
from realtime.storage import ServerConfig, StateStore

#: Path prefixes under which every app route is served (docs/cloudflare-api.md §1.1).
APP_PREFIXES = ("/v1/apps/<app_id>", "/apps/<app_id>")

#: Largest request body accepted, in bytes (SDP offers are a few KiB).
MAX_BODY = 1 << 20

#: Deepest nesting of arrays and objects accepted in a body (ours needs 4).
MAX_DEPTH = 32

ALLOW_HEADERS = b"authorization, content-type"
ALLOW_METHODS = b"GET, POST, PUT, OPTIONS"

log = Logger()


def apply_cors(request: IRequest) -> None:
    """Set the CORS response headers: reflect ``Origin`` and add ``Vary: Origin``."""
    request.setHeader(b"vary", b"Origin")
    origin = request.getHeader(b"origin")
    if origin:
        request.setHeader(b"access-control-allow-origin", origin)


def json_response(request: IRequest, status: int, body: Any) -> bytes:
    """Set ``status`` and a JSON content type on ``request``; return the encoded body."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body, separators=(",", ":")).encode()


def error_response(request: IRequest, error: ApiError) -> bytes:
    """Answer ``request`` with ``error`` as a JSON error body."""
    apply_cors(request)
    return json_response(request, error.status, error.body())


def preflight(request: IRequest) -> bytes:
    """Answer a CORS preflight ``OPTIONS`` request with 204 and the allowed headers/methods."""
    apply_cors(request)
    request.setResponseCode(204)
    request.setHeader(b"access-control-allow-headers", ALLOW_HEADERS)
    request.setHeader(b"access-control-allow-methods", ALLOW_METHODS)
    request.setHeader(b"access-control-max-age", b"86400")
    return b""


def read_json(request: IRequest, limit: int = MAX_BODY) -> dict[str, Any]:
    """Return the request body parsed as a JSON object, whatever the Content-Type.

    An empty body is ``{}`` (``sessions/new`` is often a bare POST).  Raises
    :class:`ApiError`: 413 ``payload_too_large`` past ``limit`` bytes, 400
    ``decoding_error`` for bad UTF-8/JSON, a top level that is not an object,
    or arrays/objects nested deeper than :data:`MAX_DEPTH` (the decoder
    recurses per level: a body of 100,000 ``[`` raised ``RecursionError``).
    """
    content = request.content
    content.seek(0)
    raw = content.read(limit + 1)
    if len(raw) > limit:
        raise ApiError.payload_too_large(limit)
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ApiError.decoding_error("The request body is not valid JSON") from None
    except RecursionError:
        value = _TOO_DEEP  # nested past the interpreter's stack: certainly past MAX_DEPTH
    if value is _TOO_DEEP or _too_deep(value, MAX_DEPTH):
        raise ApiError.decoding_error(f"The request body nests deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict):
        raise ApiError.decoding_error("The request body must be a JSON object")
    return value


_TOO_DEEP = object()


def _too_deep(value: Any, limit: int) -> bool:
    """Return True if ``value`` nests lists/dicts more than ``limit`` deep (no recursion)."""
    level = [value]
    for _ in range(limit):
        level = [child for node in level if isinstance(node, (list, dict))
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not level:
            return False
    return any(isinstance(node, (list, dict)) for node in level)


def query_time(request: IRequest, name: str, default: float) -> float:
    """Return query parameter ``name`` as unix seconds (number or ISO 8601), or ``default``.

    :raises ApiError: 400 ``invalid_params`` when it is neither, or not finite.
    """
    raw = request.args.get(name.encode(), [b""])[0].decode("utf-8", "replace")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            value = math.nan
    if not math.isfinite(value) or abs(value) > 1e12:
        raise ApiError(400, ErrorCode.INVALID_PARAMS,
                       f"{name} must be unix seconds or an ISO 8601 time")
    return value


def app_route(klein: Klein, path: str, *methods: str) -> Callable:
    """Register an authenticated app route under ``/v1/apps/<app_id>`` and ``/apps/<app_id>``.

    The decorated method is called as ``f(self, request, app, **path_args)``
    after :func:`realtime.api.auth.authenticate` and returns either a JSON
    value (status 200) or ``(status, value)``; it may be async.

    :param klein: the class's ``Klein()`` instance.
    :param path: the part after the prefix, e.g. ``"/sessions/new"``.
    :param methods: HTTP methods, e.g. ``"POST"``.
    """

    def decorate(f: Callable) -> Callable:
        @wraps(f)
        def route(self: RealtimeAPI, request: IRequest, app_id: str, **kwargs: Any):
            if request.method == b"OPTIONS":
                return preflight(request)
            apply_cors(request)
            try:
                app = authenticate(
                    app_id, request.getHeader(b"authorization"), self.config, self.store
                )
                result = f(self, request, app, **kwargs)
            except ApiError as error:
                return error_response(request, error)
            if isawaitable(result):
                return ensureDeferred(_awaited(result)).addCallback(self._render, request)
            return self._render(result, request)

        for prefix in APP_PREFIXES:
            endpoint = f"{prefix.split('/')[1]}:{f.__name__}"
            klein.route(
                prefix + path, methods=list(methods), endpoint=endpoint, strict_slashes=False
            )(route)
        return f

    return decorate


async def _awaited(result: Any) -> Any:
    try:
        return await result
    except ApiError as error:
        return error


class RealtimeAPI:
    """Serve the Realtime HTTPS API over injected state.

    :param store: the persistent :class:`~realtime.storage.StateStore`.
    :param config: the announced addresses and command-line apps.
    :param clock: the reactor's clock (``task.Clock`` in tests).
    :param cluster: the cluster directory's hooks (``--cluster``), or None.
    """

    app = Klein()

    def __init__(self, store: StateStore, config: ServerConfig, clock: IReactorTime,
                 cluster: ClusterHooks | None = None) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        #: writes sessions into the cluster directory (``--cluster``), or None
        self.cluster = cluster
        #: the media port's :class:`~realtime.net.peers.PeerHost` (set by the service)
        self.peers = None

    def _render(self, result: Any, request: IRequest) -> bytes:
        if isinstance(result, ApiError):
            return error_response(request, result)
        status, body = result if isinstance(result, tuple) else (200, result)
        return json_response(request, status, body)

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure) -> bytes:
        """Answer an unknown path with a JSON 404 (or a preflight for OPTIONS)."""
        if request.method == b"OPTIONS":
            return preflight(request)
        path = request.path.decode("ascii", "replace")
        return error_response(request, ApiError.not_found(f"No route for {path}"))

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self, request: IRequest, failure) -> bytes:
        """Answer a known path with the wrong method with a JSON 405 (OPTIONS: preflight)."""
        if request.method == b"OPTIONS":
            return preflight(request)
        method = request.method.decode("ascii", "replace")
        error = ApiError(405, ErrorCode.METHOD_NOT_ALLOWED, f"{method} is not allowed here")
        return error_response(request, error)

    @app.handle_errors(HTTPException)
    def http_error(self, request: IRequest, failure) -> bytes:
        """Answer any other routing exception (e.g. a redirect) as JSON with its status."""
        code = failure.value.code or 400
        error = ApiError(code, ErrorCode.NOT_FOUND if code == 404 else "http_error",
                         failure.value.name)
        return error_response(request, error)

    @app.handle_errors(Exception)
    def internal_error(self, request: IRequest, failure) -> bytes:
        """Log an unexpected failure and answer 500 ``internal_error``."""
        log.failure("API request {method} {path} failed", failure,
                    method=request.method, path=request.path)
        error = ApiError(500, ErrorCode.INTERNAL_ERROR, "Internal server error")
        return error_response(request, error)

    @app_route(app, "/", "GET")
    def app_info(self, request: IRequest, app) -> dict[str, Any]:
        """Return the app id and where media and TURN listen (a liveness probe for clients)."""
        config = self.config
        return {
            "appId": app.app_id,
            "media": {"ip": config.public_ip, "port": config.media_port},
            "turn": {"port": config.turn_port, "tlsPort": config.turns_port},
        }


# Route modules register themselves on RealtimeAPI.app when imported.
from realtime.api import echo  # noqa: E402,F401
from realtime.api import diagnostics  # noqa: E402,F401
from realtime.api import turn  # noqa: E402,F401
from realtime.api import sessions  # noqa: E402,F401
from realtime.api import usage  # noqa: E402,F401
