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

Authentication (:meth:`TurnRoutes.authenticate`): ``Authorization: Bearer <token>``
compared in constant time with the key's token; a missing token is 401
before the key id is even looked up; an unknown key and a wrong token are
the same 401 (one body, one comparison), so key ids cannot be enumerated.
Credentials are :class:`~realtime.turn.credentials.TurnKeyCredentials`
(TTL 1 s .. 48 h); they are recorded in the state store so revocations and
customIdentifiers survive a restart, and a revocation also stops the
running allocations of that username (:meth:`TurnServer.revoke`).

With ``--cluster`` (:class:`TurnCluster`, ``realtime.cluster.accounts``) a
revocation also reaches every other node before the 204, and usage is the
sum over every node's flushed counters (docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from realtime.api.auth import INVALID_CREDENTIALS, bearer_token, check_secret
from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import query_time, read_json
from realtime.storage import StateStore, TurnKey
from realtime.turn.accounting import UsageLedger, summarize
from realtime.turn.credentials import MAX_TTL, TurnKeyCredentials

#: the path prefix of every TURN key route
PREFIX = "/v1/turn/keys/<key_id>"


class TurnCluster(Protocol):
    """What the TURN routes ask of the cluster directory (``realtime.cluster.accounts``).

    Each awaitable raises :class:`ApiError` 503 ``directory_unavailable`` when Redis is away.
    """

    def record_usage(self, rows: Iterable[tuple]) -> None:
        """Add usage rows (as written to the store) to the cluster's counters."""
        ...

    def usage(self, key_id: str, since: int, until: int, username: str | None = None,
              custom_identifier: str | None = None) -> Awaitable[list[tuple[int, int, int]]]:
        """Return ``(minute, ingress, egress)`` rows summed over every node."""
        ...

    def revoked(self, username: str, expires: float) -> Awaitable[None]:
        """Record a revocation made here and tell every other node."""
        ...

    def issued(self, username: str, custom_identifier: str, expires: float) -> None:
        """Share the ``customIdentifier`` of a credential issued here (not awaited)."""
        ...

    def key_missed(self) -> None:
        """A TURN request named a key not known here: read the directory's keys soon."""
        ...


class TurnKeys:
    """What the TURN routes act on: keys, credentials, URLs, the running server, usage.

    :param store: the state store (credentials and usage are persisted there).
    :param keys: every usable key (command line and stored).
    :param credentials: issues and verifies the credentials of those keys.
    :param ledger: usage not yet written to the store.
    :param drain: returns the running TURN machine's usage (``TurnServer.drain_usage``).
    :param revoke: stops a username's allocations (``TurnServer.revoke``).
    :param cluster: with ``--cluster``: usage and revocations shared with the other nodes.
    """

    def __init__(self, store: StateStore, keys: list[TurnKey], credentials: TurnKeyCredentials,
                 ledger: UsageLedger | None = None,
                 drain: Callable[[], list[Any]] | None = None,
                 revoke: Callable[[str, float], Any] | None = None,
                 cluster: TurnCluster | None = None) -> None:
        self.store = store
        self.keys = {key.key_id: key for key in keys}
        self.credentials = credentials
        self.ledger = ledger or UsageLedger()
        self.drain = drain
        self.revoke = revoke
        self.cluster = cluster
        self.stun_urls: list[str] = []
        self.turn_urls: list[str] = []

    def set_urls(self, host: str, turn_port: int, turns_port: int,
                 alternates: Iterable[tuple[str, int]] = ()) -> None:
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

    def learn_key(self, key: TurnKey) -> None:
        """Accept ``key`` (another node's, read from the cluster directory) from now on."""
        self.keys[key.key_id] = key
        self.credentials.add_key(key.key_id, key.token)

    def flush(self, now: float) -> None:
        """Move the machine's usage through the ledger into the store (and the cluster's)."""
        if self.drain is not None:
            self.ledger.record(self.drain(), now)
        rows = self.ledger.rows()
        if rows:
            self.store.add_turn_usage(rows)
            if self.cluster is not None:
                self.cluster.record_usage(rows)


class TurnRoutes:
    """The TURN key routes: credentials, revocation, usage.

    :param turn: the keys and what they act on; ``None`` (no TURN): every key is unknown.
    :param clock: the reactor's clock.
    """

    def __init__(self, turn: TurnKeys | None, clock: IReactorTime) -> None:
        self.turn = turn
        self.clock = clock

    def authenticate(self, key_id: str, authorization: bytes | None) -> TurnKey:
        """Return the TURN key a request may act for, or raise :class:`ApiError` (401)."""
        token = bearer_token(authorization)
        if token is None:
            raise ApiError.unauthorized(
                "Missing bearer token (Authorization: Bearer <TURN_KEY_API_TOKEN>)")
        key = None if self.turn is None else self.turn.keys.get(key_id)
        # one constant-time comparison either way (an unknown key is compared with a dummy)
        if not check_secret(token, None if key is None else key.token) or key is None:
            raise ApiError.unauthorized(INVALID_CREDENTIALS)
        return key

    def _keys(self) -> TurnKeys:
        assert self.turn is not None  # authenticate() found a key, so there are keys
        return self.turn

    def _issue(self, request: IRequest, key: TurnKey) -> tuple[list[dict[str, Any]],
                                                               dict[str, Any]]:
        turn = self._keys()
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
        if custom and turn.cluster is not None:
            turn.cluster.issued(issued.username, custom, issued.expires)
        relay = {"urls": list(turn.turn_urls), "username": issued.username,
                 "credential": issued.credential}
        return [{"urls": list(turn.stun_urls)}], relay

    def generate_ice_servers(self, request: IRequest, key: TurnKey) -> tuple[int, Any]:
        """Mint a credential; answer 201 with ``iceServers`` as an array (STUN, then TURN)."""
        stun, relay = self._issue(request, key)
        return 201, {"iceServers": [*stun, relay]}

    def generate_legacy(self, request: IRequest, key: TurnKey) -> tuple[int, Any]:
        """Mint a credential; answer 201 with the legacy ``iceServers`` object (STUN URLs in)."""
        stun, relay = self._issue(request, key)
        relay["urls"] = stun[0]["urls"] + relay["urls"]
        return 201, {"iceServers": relay}

    def revoke(self, request: IRequest, key: TurnKey, username: str) -> Any:
        """Revoke ``username`` (a credential of this key): 204; relaying stops at once.

        In a cluster the revocation is also written to the directory and sent to
        every node, which refuses the username and ends its allocations too.
        """
        turn = self._keys()
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
        expires = turn.credentials.expiry(username)
        if turn.cluster is not None and expires is not None:
            return self._revoked_everywhere(turn.cluster, username, expires)
        return 204, None

    async def _revoked_everywhere(self, cluster: TurnCluster, username: str,
                                  expires: float) -> tuple[int, None]:
        await cluster.revoked(username, expires)
        return 204, None

    def usage(self, request: IRequest, key: TurnKey) -> Any:
        """Return ingress/egress bytes of this key in [since, until), totals and per minute.

        In a cluster: the sums over every node, read from the directory (awaitable).
        """
        turn = self._keys()
        now = self.clock.seconds()
        turn.flush(now)
        until = query_time(request, "until", now + 60)
        since = query_time(request, "since", until - 86400)
        filters = {}
        args = request.args or {}
        for arg, name in ((b"username", "username"), (b"customIdentifier", "custom_identifier")):
            if arg in args:
                filters[name] = args[arg][0].decode("utf-8", "replace")
        start = int(since // 60) * 60
        if turn.cluster is not None:   # every node's usage, from the directory
            return self._cluster_usage(turn.cluster, key.key_id, start, since, until, filters)
        rows = turn.store.turn_usage(key.key_id, start, int(until), **filters)
        return 200, {"keyId": key.key_id, "since": since, "until": until, **summarize(rows)}

    async def _cluster_usage(self, cluster: TurnCluster, key_id: str, start: int, since: float,
                             until: float, filters: dict[str, str]) -> tuple[int, Any]:
        rows = await cluster.usage(key_id, start, int(until), **filters)
        return 200, {"keyId": key_id, "since": since, "until": until, **summarize(rows)}
