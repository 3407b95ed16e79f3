"""
Apps, TURN keys, TURN revocations and TURN usage shared through the cluster directory.

Without ``--cluster`` each node knows the apps and TURN keys of its own state
store (``--app``, ``--turn-key``, generated ones).  In a cluster a client may
call any node's API with any of them, and a TURN credential minted through one
node may allocate at another, so what every node must agree on lives in Redis
too (docs/cluster.md, "Apps, TURN keys, revocations and usage")::

    start, every SYNC_INTERVAL s, and (at most once a second) when the TURN server
    meets a credential of a key it does not know (AccountSync)
        SET rt:app:{id} / rt:turn-key:{id} for this node's own apps and keys (+ SADD)
        SMEMBERS rt:turn-keys + MGET: every key -> TurnKeys.learn_key (API and TURN server)
        ZRANGEBYSCORE rt:turn-revocations now +inf: every revocation applied here

    API request for /v1/apps/{id}/... or /v1/turn/keys/{id}/... (AccountGate)
        own (command line, SQLite) or cached < CACHE_TTL s ──> served at once
        else GET rt:app:{id} / rt:turn-key:{id} (one round trip), cached, then served
        (Redis away: a stale entry keeps working, an unknown id answers 503)

    POST .../credentials/{username}/revoke at any node
        revoked here at once (TurnKeyCredentials + TurnServer.revoke)
        ZADD rt:turn-revocations {expiry} {username}; SET rt:turn-revoked:{username} PX left
        PUBLISH "turn_revoke" to every live node's control channel ──> each revokes it

    TURN usage flush (--turn-usage-flush s) and before every usage query
        HINCRBY rt:turn-usage:{key}:{minute} i/e, u:{username}:i/e, c:{customIdentifier}:i/e
        ZADD rt:turn-usage-minutes:{key} {minute}      (both expire after USAGE_RETENTION)
    GET /v1/turn/keys/{key}/usage: the minutes in range, HMGET each (one round trip)

Secrets are written as the state store keeps them (plain): whoever can read
the directory can act as any app or TURN key of the cluster, so Redis belongs
on the private network with a password (``--cluster redis://:secret@host``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Callable, Iterable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from realtime.api.errors import ApiError
from realtime.api.turn import TurnKeys
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.directory import Directory
from realtime.cluster.forward import answer_error, render_local
from realtime.cluster.publish import api_error
from realtime.cluster.records import AppRecord, ControlMessage, TurnKeyRecord
from realtime.storage import App, TurnKey

log = Logger()

#: Seconds an app or TURN key read from the directory (or found absent) is trusted.
CACHE_TTL = 5.0
#: Seconds between two syncs of this node's apps, keys and revocations with the directory.
SYNC_INTERVAL = 5.0
#: Seconds at least between two syncs a TURN request for an unknown key asks for.
MISS_SYNC_SPACING = 1.0
#: Cached ids at most (an attacker trying random ids cannot grow the cache past it).
MAX_CACHED = 10_000
#: Seconds the cluster keeps TURN usage per minute (31 days).
USAGE_RETENTION = 31 * 86400
#: Usage rows kept while Redis is away, at most (older ones are dropped and counted).
MAX_PENDING = 100_000

#: ``/v1/apps/{appId}/...`` or ``/apps/{appId}/...``; ``/v1/turn/keys/{keyId}/...``
APP_PATH = re.compile(rb"^/(?:v1/)?apps/([^/]{1,256})(?:/|$)")
KEY_PATH = re.compile(rb"^/v1/turn/keys/([^/]{1,256})(?:/|$)")

UsageRow = tuple[str, str, str, int, int, int]


class _Cache:
    """Ids -> (value or None, time read), oldest dropped past :data:`MAX_CACHED`."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.entries: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def put(self, key: str, value: Any, now: float) -> None:
        self.entries[key] = (value, now)
        self.entries.move_to_end(key)
        while len(self.entries) > MAX_CACHED:
            self.entries.popitem(last=False)

    def value(self, key: str) -> Any:
        entry = self.entries.get(key)
        return None if entry is None else entry[0]

    def fresh(self, key: str, now: float) -> bool:
        entry = self.entries.get(key)
        return entry is not None and now - entry[1] < self.ttl


class ClusterAccounts:
    """Read and write apps, TURN keys, revocations and TURN usage in the directory.

    Also the ``cluster`` collaborator of :class:`~realtime.api.turn.TurnKeys`
    (``record_usage``, ``usage``, ``revoked``).

    :param directory: the cluster directory.
    :param node_id: this node (revocations are broadcast to the others).
    :param clock: the reactor's clock.
    :param on_key_miss: called when the TURN server met a credential of a key it does
        not know (``AccountSync.sync_soon``).
    """

    def __init__(self, directory: Directory, node_id: str, clock: Any,
                 ttl: float = CACHE_TTL,
                 on_key_miss: Callable[[], object] = lambda: None) -> None:
        self.on_key_miss = on_key_miss
        self.key_misses = 0
        self.directory = directory
        self.node_id = node_id
        self.clock = clock
        self.apps = _Cache(ttl)
        self.keys = _Cache(ttl)
        self._pending: list[UsageRow] = []
        self._writing: Deferred | None = None
        #: directory reads made for an id this node did not know, and usage rows dropped
        self.lookups = 0
        self.dropped_usage = 0

    @property
    def _redis(self) -> Any:
        return self.directory.redis

    def _now(self) -> float:
        return float(self.clock.seconds())

    # -- apps and TURN keys --------------------------------------------------

    def shared_app(self, app_id: str) -> App | None:
        """Return an app of another node read from the directory (possibly stale), or None."""
        value: App | None = self.apps.value(app_id)
        return value

    async def fetch_app(self, app_id: str) -> App | None:
        """Read app ``app_id`` from the directory and cache what was found (even nothing)."""
        self.lookups += 1
        record = await self.directory.get_app(app_id)
        app = None if record is None else App(record.app_id, record.secret, record.created)
        self.apps.put(app_id, app, self._now())
        return app

    async def fetch_turn_key(self, key_id: str) -> TurnKey | None:
        """Read TURN key ``key_id`` from the directory and cache what was found."""
        self.lookups += 1
        record = await self.directory.get_turn_key(key_id)
        key = None if record is None else TurnKey(record.key_id, record.token, record.created)
        self.keys.put(key_id, key, self._now())
        return key

    async def turn_keys(self) -> list[TurnKey]:
        """Return every TURN key the directory holds (each cached)."""
        ids = sorted(m.decode(errors="replace")
                     for m in await self._redis.execute("SMEMBERS", self.directory.keys.turn_keys))
        if not ids:
            return []
        values = await self._redis.execute(
            "MGET", *[self.directory.keys.turn_key(i) for i in ids])
        now, keys = self._now(), []
        for key_id, value in zip(ids, values):
            record = self.directory._decode(TurnKeyRecord, value)
            if record is not None and record.key_id == key_id:
                key = TurnKey(record.key_id, record.token, record.created)
                self.keys.put(key_id, key, now)
                keys.append(key)
        return keys

    async def publish(self, apps: Iterable[App], keys: Iterable[TurnKey]) -> None:
        """Write this node's own apps and TURN keys (one round trip)."""
        names = self.directory.keys
        commands: list[tuple] = []
        for app in apps:
            commands.append(("SET", names.app(app.app_id),
                             AppRecord(app.app_id, app.secret, app.created).encode()))
            commands.append(("SADD", names.apps, app.app_id))
        for key in keys:
            commands.append(("SET", names.turn_key(key.key_id),
                             TurnKeyRecord(key.key_id, key.token, key.created).encode()))
            commands.append(("SADD", names.turn_keys, key.key_id))
        if commands:
            await self.directory._pipeline(*commands)

    # -- credentials ---------------------------------------------------------------

    def key_missed(self) -> None:
        """The TURN server met a username of an unknown key: have the keys read soon."""
        self.key_misses += 1
        self.on_key_miss()

    def issued(self, username: str, custom_identifier: str, expires: float) -> None:
        """Remember which ``customIdentifier`` ``username`` was issued with, until it expires.

        Not awaited by the API (the credential is valid anyway); another node's usage of
        the username is attributed to it when written (:meth:`_write_usage`).
        """
        left = max(1, int((expires - self._now()) * 1000))
        d = self._redis.execute("SET", self.directory.keys.turn_custom(username),
                                custom_identifier, "PX", left)
        d.addErrback(lambda f: f.trap(DirectoryUnavailable))

    # -- revocations -----------------------------------------------------------

    async def revoked(self, username: str, expires: float) -> None:
        """Record the revocation of ``username`` (until ``expires``) and tell every other node.

        :raises ApiError: 503 ``directory_unavailable`` (it was revoked here; a retry of
            the call finishes the job).
        """
        now = self._now()
        names = self.directory.keys
        left = max(1, int((expires - now) * 1000))
        try:
            await self.directory._pipeline(
                ("ZADD", names.turn_revocations, int(expires), username),
                ("SET", names.turn_revoked(username), "1", "PX", left),
                ("ZREMRANGEBYSCORE", names.turn_revocations, "-inf", f"({int(now)}"))
            message = ControlMessage("turn_revoke", self.node_id, "", username, now)
            others = [n.node_id for n in await self.directory.live_nodes()
                      if n.node_id != self.node_id]
            await gatherResults([Deferred.fromCoroutine(self.directory.send_control(n, message))
                                 for n in others], consumeErrors=True)
        except DirectoryUnavailable as error:
            raise api_error(error) from None

    async def revocations(self) -> list[str]:
        """Return the usernames revoked and not yet expired, cluster-wide."""
        now = int(self._now())
        names = self.directory.keys
        members = await self._redis.execute(
            "ZRANGEBYSCORE", names.turn_revocations, now, "+inf")
        return [m.decode(errors="replace") for m in members]

    # -- usage ------------------------------------------------------------------

    def record_usage(self, rows: Iterable[UsageRow]) -> None:
        """Queue usage rows (``TurnKeys.flush``) for the directory and start writing them."""
        self._pending.extend(rows)
        if len(self._pending) > MAX_PENDING:
            excess = len(self._pending) - MAX_PENDING
            del self._pending[:excess]
            self.dropped_usage += excess
        if self._writing is None and self._pending:
            self._writing = Deferred.fromCoroutine(self._write_usage())
            self._writing.addErrback(lambda f: log.error("cluster: TURN usage write: {e}",
                                                         e=f.getErrorMessage()))

    async def _write_usage(self) -> None:
        try:
            while self._pending:
                rows, self._pending = self._pending, []
                try:
                    rows = await self._attributed(rows)
                    await self.directory._pipeline(*self._usage_commands(rows))
                except DirectoryUnavailable:
                    self._pending[:0] = rows   # kept for the next flush
                    return
        finally:
            self._writing = None

    async def _attributed(self, rows: list[UsageRow]) -> list[UsageRow]:
        """Fill in the ``customIdentifier`` of credentials issued through another node."""
        unknown = sorted({row[1] for row in rows if not row[2] and row[0]})
        if not unknown:
            return rows
        values = await self._redis.execute(
            "MGET", *[self.directory.keys.turn_custom(u) for u in unknown])
        custom = {u: v.decode("utf-8", "replace") for u, v in zip(unknown, values) if v}
        return [(k, u, c or custom.get(u, ""), m, i, e) for k, u, c, m, i, e in rows]

    def _usage_commands(self, rows: list[UsageRow]) -> list[tuple]:
        names = self.directory.keys
        sums: dict[tuple[str, int, str], int] = {}
        for key_id, username, custom, minute, ingress, egress in rows:
            for prefix in ("", f"u:{username}:", f"c:{custom}:" if custom else None):
                if prefix is None:
                    continue
                for field, count in (("i", ingress), ("e", egress)):
                    where = (key_id, int(minute), prefix + field)
                    sums[where] = sums.get(where, 0) + int(count)
        commands: list[tuple] = []
        minutes = set()
        for (key_id, minute, field), count in sums.items():
            commands.append(("HINCRBY", names.turn_usage_minute(key_id, minute), field, count))
            minutes.add((key_id, minute))
        for key_id, minute in minutes:
            commands.append(("EXPIRE", names.turn_usage_minute(key_id, minute), USAGE_RETENTION))
            commands.append(("ZADD", names.turn_usage_minutes(key_id), minute, minute))
        for key_id in {k for k, _ in minutes}:
            commands.append(("EXPIRE", names.turn_usage_minutes(key_id), USAGE_RETENTION))
            commands.append(("ZREMRANGEBYSCORE", names.turn_usage_minutes(key_id), "-inf",
                             f"({int(self._now()) - USAGE_RETENTION}"))
        return commands

    async def usage(self, key_id: str, since: int, until: int, username: str | None = None,
                    custom_identifier: str | None = None) -> list[tuple[int, int, int]]:
        """Return ``(minute, ingress, egress)`` of ``key_id`` in ``[since, until)``, all nodes.

        This node's queued rows are written first.  :raises ApiError: 503 if Redis is away.
        """
        try:
            while self._writing is not None:
                await self._writing
            if self._pending:
                self.record_usage(())
                while self._writing is not None:
                    await self._writing
            names = self.directory.keys
            prefix = (f"u:{username}:" if username is not None
                      else f"c:{custom_identifier}:" if custom_identifier is not None else "")
            minutes = [m for m in map(_count, await self._redis.execute(
                "ZRANGEBYSCORE", names.turn_usage_minutes(key_id), since, f"({until}")) if m]
            if not minutes:
                return []
            replies = await self.directory._pipeline(*[
                ("HMGET", names.turn_usage_minute(key_id, m), prefix + "i", prefix + "e")
                for m in minutes])
        except DirectoryUnavailable as error:
            raise api_error(error) from None
        rows = []
        for minute, (ingress, egress) in zip(minutes, replies):
            if ingress is not None or egress is not None:
                rows.append((minute, _count(ingress), _count(egress)))
        return rows


def _count(value: Any) -> int:
    """Return a counter Redis sent (bytes of digits), or 0 for anything else (counted nowhere:
    only a corrupted directory holds such values, and a usage figure is not worth a 500)."""
    try:
        return int(value) if isinstance(value, (bytes, int)) and len(str(value)) < 40 else 0
    except ValueError:
        return 0


class AccountGate(Resource):
    """Learn an app or TURN key of another node from the directory before the API sees it.

    :param inner: the API resource (it authenticates as usual, now knowing the id).
    :param accounts: the directory's apps and keys.
    :param own_app: returns whether an app id is this node's (command line or SQLite).
    :param turn: this node's TURN keys (learned keys are added there), or None.
    """

    isLeaf = True

    def __init__(self, inner: Any, accounts: ClusterAccounts, own_app: Callable[[str], bool],
                 turn: TurnKeys | None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.inner = inner
        self.accounts = accounts
        self.own_app = own_app
        self.turn = turn

    def _unknown(self, path: bytes) -> tuple[str, str] | None:
        now = self.accounts._now()
        if (match := APP_PATH.match(path)) is not None:
            app_id = match.group(1).decode("utf-8", "replace")
            if self.own_app(app_id) or self.accounts.apps.fresh(app_id, now):
                return None
            return "app", app_id
        if (match := KEY_PATH.match(path)) is not None and self.turn is not None:
            key_id = match.group(1).decode("utf-8", "replace")
            learned = key_id in self.accounts.keys.entries
            if (key_id in self.turn.keys and not learned) or self.accounts.keys.fresh(key_id, now):
                return None
            return "key", key_id
        return None

    def render(self, request: Any) -> bytes | int:
        """Render at once, or read the unknown id from the directory first."""
        unknown = self._unknown(request.path or b"")
        if unknown is None:
            return self.inner.render(request)
        Deferred.fromCoroutine(self._learn(request, *unknown)).addErrback(self._crashed, request)
        return NOT_DONE_YET

    def _crashed(self, failure: Any, request: Any) -> None:
        log.failure("cluster: account lookup failed", failure)
        answer_error(request, ApiError(500, "internal_error", "Internal server error"))

    async def _learn(self, request: Any, kind: str, ident: str) -> None:
        try:
            if kind == "app":
                await self.accounts.fetch_app(ident)
            else:
                key = await self.accounts.fetch_turn_key(ident)
                if key is not None and self.turn is not None:
                    self.turn.learn_key(key)
        except DirectoryUnavailable as error:
            cached = (self.accounts.apps if kind == "app" else self.accounts.keys).value(ident)
            if cached is None:   # a stale entry keeps working while Redis is away
                answer_error(request, api_error(error))
                return
        render_local(self.inner, request)


class AccountSync(Service):
    """Keep this node's apps and keys in the directory, and learn the others' and revocations.

    :param accounts: the directory's apps, keys and revocations.
    :param own_apps: returns this node's own apps (command line and SQLite).
    :param turn: this node's TURN keys (its own ones at construction), or None.
    """

    name = "cluster-accounts"

    def __init__(self, accounts: ClusterAccounts, own_apps: Callable[[], list[App]],
                 turn: TurnKeys | None, interval: float = SYNC_INTERVAL) -> None:
        self.accounts = accounts
        self.own_apps = own_apps
        self.turn = turn
        self.own_keys = [] if turn is None else list(turn.keys.values())
        self.interval = interval
        self.loop = LoopingCall(self.sync)
        self.loop.clock = accounts.clock
        self._retry: Any = None
        self._soon: Any = None
        self._last = float("-inf")
        #: syncs done in full, and revocations applied from the directory or a message
        self.synced = 0
        self.applied = 0

    def startService(self) -> None:  # noqa: N802 (Twisted name)
        """Sync now (as soon as the directory is connected) and every ``interval`` s."""
        super().startService()  # type: ignore[no-untyped-call]
        self.loop.start(self.interval, now=True)

    def stopService(self) -> None:  # noqa: N802 (Twisted name)
        """Stop syncing."""
        super().stopService()  # type: ignore[no-untyped-call]
        if self.loop.running:
            self.loop.stop()
        for call in (self._retry, self._soon):
            if call is not None and call.active():
                call.cancel()

    def sync(self) -> Deferred:
        """Publish, learn, apply (a Deferred that never fails)."""
        d = Deferred.fromCoroutine(self._sync())
        return d.addErrback(lambda f: log.error("cluster: account sync: {e}",
                                                e=f.getErrorMessage()))

    def sync_soon(self) -> None:
        """Sync now, or one second after the last sync began (at most one sync a second,
        however many TURN requests name unknown keys)."""
        if not self.running or (self._soon is not None and self._soon.active()):
            return
        clock = self.accounts.clock
        delay = max(0.0, self._last + MISS_SYNC_SPACING - clock.seconds())
        self._soon = clock.callLater(delay, self.sync)

    async def _sync(self) -> None:
        self._last = self.accounts.clock.seconds()
        if not self.accounts.directory.available:
            if self.running and (self._retry is None or not self._retry.active()):
                self._retry = self.accounts.clock.callLater(0.1, self.sync)
            return
        try:
            await self.accounts.publish(self.own_apps(), self.own_keys)
            if self.turn is not None:
                for key in await self.accounts.turn_keys():
                    if key.key_id not in self.turn.keys:
                        self.turn.learn_key(key)
                for username in await self.accounts.revocations():
                    self.apply(username)
        except DirectoryUnavailable:
            return
        self.synced += 1

    def apply(self, username: str) -> None:
        """Refuse ``username`` here and end its allocations (if not done already)."""
        turn = self.turn
        if turn is None or turn.credentials.is_revoked(username):
            return
        now = self.accounts._now()
        if turn.credentials.revoke(username, now):
            self.applied += 1
            if turn.revoke is not None:
                turn.revoke(username, now)

    def control(self, message: ControlMessage) -> bool:
        """Handle a ``turn_revoke`` control message; return False for any other."""
        if message.action != "turn_revoke":
            return False
        self.apply(message.name)
        return True
