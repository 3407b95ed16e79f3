"""
Bearer authentication of the Realtime API (RFC 6750 §2.1, docs/cloudflare-api.md §1.1).

Every SFU path names its app, and every request proves it knows the app's
secret::

    POST /v1/apps/{appId}/sessions/new
    Authorization: Bearer <APP_SECRET>

The checks, in order, and what each failure answers (docs/cloudflare-api.md §3.1)::

    no "Authorization: Bearer <token>" header ..... 401 unauthorized
    appId unknown (neither --app nor stored) ...... 404 not_found
    token != the app's secret ..................... 401 unauthorized
    otherwise ..................................... the App

The missing-token check comes first so that an anonymous client learns
nothing about which app ids exist.  The secret comparison is constant-time
(:func:`hmac.compare_digest`).  The scheme name is case-insensitive (RFC 7235
§2.1); the token is taken verbatim.
"""

from __future__ import annotations

import hmac

from realtime.api.errors import ApiError
from realtime.storage import App, ServerConfig, StateStore


def bearer_token(authorization: bytes | None) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header, or ``None``.

    ``None`` for a missing header, another scheme, an empty token or bytes
    that are not ASCII.
    """
    if not authorization:
        return None
    try:
        text = authorization.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    scheme, _, token = text.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def find_app(app_id: str, config: ServerConfig, store: StateStore) -> App | None:
    """Return the app called ``app_id``: a command-line app first, then a stored one."""
    return config.find_app(app_id) or store.get_app(app_id)


def authenticate(
    app_id: str, authorization: bytes | None, config: ServerConfig, store: StateStore
) -> App:
    """Return the app a request may act for, or raise :class:`ApiError` (401/404).

    :param app_id: the ``{appId}`` path component.
    :param authorization: the raw ``Authorization`` header value, if any.
    """
    token = bearer_token(authorization)
    if token is None:
        raise ApiError.unauthorized("Missing bearer token (Authorization: Bearer <APP_SECRET>)")
    app = find_app(app_id, config, store)
    if app is None:
        raise ApiError.not_found(f"App {app_id} was not found")
    if not hmac.compare_digest(token.encode(), app.secret.encode()):
        raise ApiError.unauthorized("Invalid bearer token for this app")
    return app
