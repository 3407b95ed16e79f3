"""
The TURN key API (Cloudflare Realtime's ``/v1/turn/keys/...``, docs/cloudflare-api.md §1.5).

A *TURN key* is an id and a bearer token.  With it an application mints
short-lived TURN credentials for its users, revokes them, and reads usage::

    POST /v1/turn/keys/{keyId}/credentials/generate-ice-servers   {"ttl": 86400, "customIdentifier"?: "..."}
      -> 201 {"iceServers": [{"urls": ["stun:host:3478", ...]},
                             {"urls": ["turn:host:3478?transport=udp", "turn:host:3478?transport=tcp",
                                       "turns:host:5349?transport=tcp", alternates...],
                              "username": "<96 hex>", "credential": "<96 hex>"}]}
    POST /v1/turn/keys/{keyId}/credentials/generate                (legacy: "iceServers" is one object)
    POST /v1/turn/keys/{keyId}/credentials/{username}/revoke      -> 204
    GET  /v1/turn/keys/{keyId}/usage?since=&until=&username=&customIdentifier=
      -> 200 {"ingressBytes", "egressBytes", "series": [{"minute", "ingressBytes", "egressBytes"}]}

Authentication (:func:`turn_key_route`): ``Authorization: Bearer <token>``
compared in constant time with the key's token; a missing token is 401
before the key id is even looked up; an unknown key and a wrong token are
the same 401 (one body, one comparison), so key ids cannot be enumerated.
Credentials are :class:`~realtime.turn.credentials.TurnKeyCredentials`
(TTL 1 s .. 48 h); they are recorded in the state store so revocations and
customIdentifiers survive a restart, and a revocation also stops the
running allocations of that username (:meth:`TurnServer.revoke`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from twisted.web.iweb import IRequest

from realtime.api.app import (
    RealtimeAPI, apply_cors, error_response, json_response, preflight, query_time, read_json,
)
from realtime.api.auth import INVALID_CREDENTIALS, bearer_token, check_secret
from realtime.api.errors import ApiError, ErrorCode
from realtime.storage import StateStore, TurnKey
from realtime.turn.accounting import UsageLedger, summarize
from realtime.turn.credentials import MAX_TTL, TurnKeyCredentials

PREFIX = "/v1/turn/keys/<key_id>"


class TurnKeys:
    """What the TURN routes act on: keys, credentials, URLs, the running server, usage.

    :param store: the state store (credentials and usage are persisted there).
    :param keys: every usable key (command line and stored).
    :param credentials: issues and verifies the credentials of those keys.
    :param ledger: usage not yet written to the store.
    :param drain: returns the running TURN machine's usage (``TurnServer.drain_usage``).
    :param revoke: stops a username's allocations (``TurnServer.revoke``).
    """

    def __init__(self, store: StateStore, keys: list[TurnKey], credentials: TurnKeyCredentials,
                 ledger: UsageLedger | None = None, drain: Callable[[], list] | None = None,
                 revoke: Callable[[str, float], Any] | None = None) -> None:
        self.store = store
        self.keys = {key.key_id: key for key in keys}
        self.credentials = credentials
        self.ledger = ledger or UsageLedger()
        self.drain = drain
        self.revoke = revoke
        self.stun_urls: list[str] = []
        self.turn_urls: list[str] = []

    def set_urls(self, host: str, turn_port: int, turns_port: int,
                 alternates: list[tuple[str, int]] = ()) -> None:
        """Compute the ICE server URLs from the announced host and the bound ports."""
        if ":" in host:
            host = f"[{host}]"
        self.stun_urls = [f"stun:{host}:{turn_port}"]
        self.turn_urls = [f"turn:{host}:{turn_port}?transport=udp",
                          f"turn:{host}:{turn_port}?transport=tcp",
                          f"turns:{host}:{turns_port}?transport=tcp"]
        for kind, port in alternates:
            if kind == "udp":
                self.stun_urls.append(f"stun:{host}:{port}")
                self.turn_urls.append(f"turn:{host}:{port}?transport=udp")
            elif kind == "tcp":
                self.turn_urls.append(f"turn:{host}:{port}?transport=tcp")
            else:
                self.turn_urls.append(f"turns:{host}:{port}?transport=tcp")

    def flush(self, now: float) -> None:
        """Move the machine's usage through the ledger into the store."""
        if self.drain is not None:
            self.ledger.record(self.drain(), now)
        rows = self.ledger.rows()
        if rows:
            self.store.add_turn_usage(rows)


def authenticate_key(key_id: str, authorization: bytes | None, turn: TurnKeys | None) -> TurnKey:
    """Return the TURN key a request may act for, or raise :class:`ApiError` (401)."""
    token = bearer_token(authorization)
    if token is None:
        raise ApiError.unauthorized(
            "Missing bearer token (Authorization: Bearer <TURN_KEY_API_TOKEN>)")
    key = None if turn is None else turn.keys.get(key_id)
    if not check_secret(token, None if key is None else key.token):
        raise ApiError.unauthorized(INVALID_CREDENTIALS)
    return key


def turn_key_route(path: str, *methods: str) -> Callable:
    """Register ``f(self, request, key, turn, **path_args)`` under ``/v1/turn/keys/<key_id>``.

    Like :func:`realtime.api.app.app_route` but authenticated by a TURN key's
    token; ``f`` returns ``(status, JSON body)``, or ``(204, None)`` for no body.
    """

    def decorate(f: Callable) -> Callable:
        @wraps(f)
        def route(self: RealtimeAPI, request: IRequest, key_id: str, **kwargs: Any):
            if request.method == b"OPTIONS":
                return preflight(request)
            apply_cors(request)
            turn = getattr(self, "turn", None)
            try:
                key = authenticate_key(key_id, request.getHeader(b"authorization"), turn)
                status, body = f(self, request, key, turn, **kwargs)
            except ApiError as error:
                return error_response(request, error)
            if body is None:
                request.setResponseCode(status)
                return b""
            return json_response(request, status, body)

        RealtimeAPI.app.route(PREFIX + path, methods=list(methods), endpoint=f"turn:{f.__name__}",
                              strict_slashes=False)(route)
        return f

    return decorate


def _issue(self: RealtimeAPI, request: IRequest, key: TurnKey, turn: TurnKeys) -> tuple[list, dict]:
    body = read_json(request)
    ttl = body.get("ttl")
    if type(ttl) is not int or not 0 < ttl <= MAX_TTL:
        raise ApiError(400, ErrorCode.INVALID_PARAMS,
                       f"ttl must be an integer number of seconds between 1 and {MAX_TTL}")
    custom = body.get("customIdentifier", "")
    if not isinstance(custom, str) or len(custom) > 1024:
        raise ApiError(400, ErrorCode.INVALID_PARAMS,
                       "customIdentifier must be a string of at most 1024 characters")
    now = self.clock.seconds()
    issued = turn.credentials.issue(key.key_id, ttl, now, custom)
    turn.store.record_turn_credential(issued.username, key.key_id, custom, issued.expires)
    relay = {"urls": list(turn.turn_urls), "username": issued.username,
             "credential": issued.credential}
    return [{"urls": list(turn.stun_urls)}], relay


@turn_key_route("/credentials/generate-ice-servers", "POST")
def generate_ice_servers(self: RealtimeAPI, request: IRequest, key: TurnKey, turn: TurnKeys):
    """Mint a credential; answer 201 with ``iceServers`` as an array (STUN entry, TURN entry)."""
    stun, relay = _issue(self, request, key, turn)
    return 201, {"iceServers": [*stun, relay]}


@turn_key_route("/credentials/generate", "POST")
def generate_legacy(self: RealtimeAPI, request: IRequest, key: TurnKey, turn: TurnKeys):
    """Mint a credential; answer 201 with the legacy ``iceServers`` object (STUN URLs folded in)."""
    stun, relay = _issue(self, request, key, turn)
    relay["urls"] = stun[0]["urls"] + relay["urls"]
    return 201, {"iceServers": relay}


@turn_key_route("/credentials/<username>/revoke", "POST")
def revoke(self: RealtimeAPI, request: IRequest, key: TurnKey, turn: TurnKeys, username: str):
    """Revoke ``username`` (a credential of this key): 204; relaying stops at once."""
    now = self.clock.seconds()
    parsed = turn.credentials.credential(username, "realm", now)
    if parsed is None and not turn.credentials.is_revoked(username):
        raise ApiError.not_found("No such unexpired credential of this key")
    if parsed is not None and parsed.key_id != key.key_id:
        raise ApiError.not_found("No such unexpired credential of this key")
    turn.credentials.revoke(username, now)
    turn.store.revoke_turn_credential(username)
    if turn.revoke is not None:
        turn.revoke(username, now)
    return 204, None


@turn_key_route("/usage", "GET")
def usage(self: RealtimeAPI, request: IRequest, key: TurnKey, turn: TurnKeys):
    """Return ingress/egress bytes of this key in [since, until), totals and per minute."""
    now = self.clock.seconds()
    turn.flush(now)
    until = query_time(request, "until", now + 60)
    since = query_time(request, "since", until - 86400)
    filters = {}
    for arg, name in ((b"username", "username"), (b"customIdentifier", "custom_identifier")):
        if arg in request.args:
            filters[name] = request.args[arg][0].decode("utf-8", "replace")
    rows = turn.store.turn_usage(key.key_id, int(since // 60) * 60, int(until), **filters)
    return 200, {"keyId": key.key_id, "since": since, "until": until, **summarize(rows)}
