"""
What every route of the HTTPS API shares: CORS, JSON bodies, JSON errors, authentication.

Paths, auth and error shape follow docs/cloudflare-api.md (§1.1, §3.1,
§3.6).  A route is a plain method of a route class (``SessionRoutes.renegotiate``
...); :func:`authenticated` turns it into the Klein endpoint that
:class:`realtime.api.app.RealtimeAPI` mounts, one table for the whole API::

    request ──> OPTIONS ─────────────> 204 preflight (allowed headers/methods)
        │
        └─> CORS headers (reflect Origin, Vary: Origin)
              │ authenticate(id from the path, Authorization) ──> 401 / 404 JSON
              v
            handler(request, principal, **path_args)
              │ returns body | (status, body) | (204, None) | (status, bytes), maybe async
              │ ApiError ──────────────────────────> its status + JSON
              │ any other exception (Klein's handler) 500 internal_error
              v
            JSON body, Content-Type: application/json

``principal`` is what ``authenticate`` returned: the :class:`~realtime.storage.App`
of ``/apps/{appId}`` routes, the :class:`~realtime.storage.TurnKey` of
``/v1/turn/keys/{keyId}`` routes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import wraps
from inspect import isawaitable
from typing import Any, Union

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.web.iweb import IRequest

from realtime.api.errors import ApiError, ErrorCode

#: Largest request body accepted, in bytes (SDP offers are a few KiB).
MAX_BODY = 1 << 20

#: Deepest nesting of arrays and objects accepted in a body (ours needs 4).
MAX_DEPTH = 32

ALLOW_HEADERS = b"authorization, content-type, if-match"
ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"

#: What a route returns: a JSON body (status 200), ``(status, body)``, ``(204, None)``
#: for no body, or an :class:`ApiError` (what an awaited route raised).
Result = Union[Any, tuple[int, Any], ApiError]

#: ``authenticate(id from the path, Authorization header) -> principal``; raises ApiError.
Authenticate = Callable[[str, Union[bytes, None]], Any]


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
    args = request.args or {}
    raw = args.get(name.encode(), [b""])[0].decode("utf-8", "replace")
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


def render(result: Result, request: IRequest) -> bytes:
    """Write a route's result: JSON with its status, or an empty body for ``(status, None)``."""
    if isinstance(result, ApiError):
        return error_response(request, result)
    status, body = result if isinstance(result, tuple) else (200, result)
    if body is None or isinstance(body, bytes):  # bytes: the route set its Content-Type (SDP)
        request.setResponseCode(status)
        return body or b""
    return json_response(request, status, body)


def authenticated(handler: Callable[..., Any], authenticate: Authenticate,
                  id_name: str) -> Callable[..., bytes | Deferred[bytes]]:
    """Return the Klein endpoint of ``handler``: preflight, CORS, authentication, JSON.

    :param handler: called as ``handler(request, principal, **path_args)``; may be async.
    :param authenticate: checks the path's ``id_name`` and the bearer token.
    :param id_name: the path variable naming the principal (``"app_id"``, ``"key_id"``).
    """

    @wraps(handler)
    def endpoint(request: IRequest, **path_args: Any) -> bytes | Deferred[bytes]:
        if request.method == b"OPTIONS":
            return preflight(request)
        apply_cors(request)
        try:
            principal = authenticate(path_args.pop(id_name), request.getHeader(b"authorization"))
            result = handler(request, principal, **path_args)
        except ApiError as error:
            return error_response(request, error)
        if isawaitable(result):
            return ensureDeferred(_awaited(result)).addCallback(render, request)
        return render(result, request)

    return endpoint


async def _awaited(result: Awaitable[Result]) -> Result:
    try:
        return await result
    except ApiError as error:
        return error
