"""
Bearer authentication of the Realtime API (RFC 6750 §2.1, docs/cloudflare-api.md §1.1).

Every SFU path names its app, and every request proves it knows the app's
secret::

    POST /v1/apps/{appId}/sessions/new
    Authorization: Bearer <APP_SECRET>

The checks, in order, and what each failure answers (docs/cloudflare-api.md §3.1)::

    no "Authorization: Bearer <token>" header ..... 401 unauthorized
    appId unknown (not --app, stored or shared) ... 401 unauthorized  } the same body:
    token != the app's secret ..................... 401 unauthorized  } INVALID_CREDENTIALS
    otherwise ..................................... the App

An unknown app id and a known one with the wrong token answer alike, status
and body, so no bearer token -- right, wrong or made up -- tells which app
ids exist (Cloudflare answers 404 for an unknown app; we trade that detail
for non-enumerable ids, issue 10 item 6).  The secret comparison is
constant-time (:func:`hmac.compare_digest`), and an unknown id is compared
against a dummy secret so that the time taken does not tell either.  The
scheme name is case-insensitive (RFC 7235 §2.1); the token is taken verbatim.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from realtime.api.errors import ApiError
from realtime.storage import App, ServerConfig, StateStore


#: the one answer for an unknown id and for a wrong token (apps and TURN keys alike)
INVALID_CREDENTIALS = "Unknown id or invalid bearer token"

#: compared with the token when the id is unknown, so both failures take the same work
_DUMMY_SECRET = os.urandom(32).hex()


def check_secret(token: str, secret: str | None) -> bool:
    """Return True if ``token`` equals ``secret``; ``None`` (unknown id) is never equal.

    Constant-time either way: an unknown id costs the same comparison.
    """
    expected = _DUMMY_SECRET if secret is None else secret
    same = hmac.compare_digest(token.encode(), expected.encode())
    return same and secret is not None


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


def find_app(app_id: str, config: ServerConfig, store: StateStore,
             shared: Callable[[str], App | None] | None = None) -> App | None:
    """Return the app called ``app_id``: a command-line app first, then a stored one,
    then (``--cluster``) one another node shares through the directory."""
    found = config.find_app(app_id) or store.get_app(app_id)
    if found is None and shared is not None:
        found = shared(app_id)
    return found


def authenticate(
    app_id: str, authorization: bytes | None, config: ServerConfig, store: StateStore,
    shared: Callable[[str], App | None] | None = None,
) -> App:
    """Return the app a request may act for, or raise :class:`ApiError` (401).

    :param app_id: the ``{appId}`` path component.
    :param authorization: the raw ``Authorization`` header value, if any.
    """
    token = bearer_token(authorization)
    if token is None:
        raise ApiError.unauthorized("Missing bearer token (Authorization: Bearer <APP_SECRET>)")
    app = find_app(app_id, config, store, shared)
    if not check_secret(token, None if app is None else app.secret) or app is None:
        raise ApiError.unauthorized(INVALID_CREDENTIALS)  # check_secret is False for None
    return app
