"""
What the server remembers and what it announces.

Two things live here:

* :class:`StateStore` -- the persistent part: one SQLite file in the state
  directory (stdlib :mod:`sqlite3`).  It holds the SFU *apps* (the
  ``appId`` / bearer secret pairs of the Cloudflare Realtime API, docs/cloudflare-api.md
  §1.1), TURN keys, issued credentials and TURN usage (schema 2,
  :mod:`realtime.storage.turn`) and SFU usage per app, session and track
  (schema 3, :mod:`realtime.storage.usage`).  Nothing a user created is lost on restart.
* :class:`ServerConfig` -- the non-persistent part: the address and ports the
  server announces in ICE candidates and TURN URLs, and the apps given on the
  command line (``--app ID:SECRET``, never written to disk).

Schema versions
---------------

The file carries a ``schema_version`` table with one row.  Opening a store
applies every entry of :data:`MIGRATIONS` newer than that row, in order, each
in its own transaction::

    open(path) --> read schema_version (0 for a new file)
                      |
                      v
          for (version, sql) in MIGRATIONS if version > current:
              BEGIN; executescript(sql); UPDATE schema_version; COMMIT
                      |
                      v
                    ready

To add a table (TURN keys, usage), append ``(next_version, "CREATE TABLE
...")`` to :data:`MIGRATIONS`; never edit a released entry.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from realtime.storage.turn import TurnKey, TurnTables
from realtime.storage.usage import SfuUsageTables

#: Ordered ``(version, SQL script)`` pairs; append only.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE apps (
            app_id    TEXT PRIMARY KEY,
            secret    TEXT NOT NULL,
            created   REAL NOT NULL,
            generated INTEGER NOT NULL DEFAULT 0
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE turn_keys (
            key_id    TEXT PRIMARY KEY,
            token     TEXT NOT NULL,
            created   REAL NOT NULL,
            generated INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE turn_credentials (
            username          TEXT PRIMARY KEY,
            key_id            TEXT NOT NULL,
            custom_identifier TEXT NOT NULL DEFAULT '',
            expires           REAL NOT NULL,
            revoked           INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE turn_usage (
            key_id            TEXT NOT NULL,
            username          TEXT NOT NULL,
            custom_identifier TEXT NOT NULL DEFAULT '',
            minute            INTEGER NOT NULL,
            ingress           INTEGER NOT NULL DEFAULT 0,
            egress            INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (key_id, username, minute)
        );
        """,
    ),
    (
        3,
        """
        CREATE TABLE sfu_usage (
            app_id          TEXT NOT NULL,
            session_id      TEXT NOT NULL,
            track_name      TEXT NOT NULL DEFAULT '',
            minute          INTEGER NOT NULL,
            ingress         INTEGER NOT NULL DEFAULT 0,
            egress          INTEGER NOT NULL DEFAULT 0,
            ingress_packets INTEGER NOT NULL DEFAULT 0,
            egress_packets  INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (app_id, session_id, track_name, minute)
        );
        CREATE INDEX sfu_usage_by_app_minute ON sfu_usage (app_id, minute);
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class App:
    """An SFU app: the ``appId`` in API paths and the secret of its bearer token.

    :param app_id: the path component of ``/v1/apps/{appId}/...``.
    :param secret: the bearer token clients send (``Authorization: Bearer``).
    :param created: when it was created, in seconds since the epoch.
    :param generated: true for the app the server made up on first start.
    """

    app_id: str
    secret: str
    created: float = 0.0
    generated: bool = False

    def __repr__(self) -> str:
        # Keep secrets out of logs and tracebacks.
        return f"App(app_id={self.app_id!r}, secret=<{len(self.secret)} chars>)"


def generate_app(now: float, token_hex: Callable[[int], str] = secrets.token_hex) -> App:
    """Return a fresh app: a 32-hex-digit id and a 64-hex-digit secret.

    :param now: the creation time to record.
    :param token_hex: the random source (``secrets.token_hex``); injected for tests.
    """
    return App(app_id=token_hex(16), secret=token_hex(32), created=now, generated=True)


class StateStore:
    """Keep apps, TURN keys and credentials, and usage in one SQLite file.

    Opening creates the file with mode 0600 if needed and brings its schema
    up to date (see :data:`MIGRATIONS`).  Every write commits at once.  The
    store owns the connection and the apps table; the other tables are
    components it holds over the same connection: :attr:`turn`
    (:class:`~realtime.storage.turn.TurnTables`) and :attr:`sfu`
    (:class:`~realtime.storage.usage.SfuUsageTables`).

    :param path: the database file, e.g. ``state-dir/realtime.sqlite3``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._migrate()
        #: TURN keys, issued credentials and TURN usage
        self.turn = TurnTables(self._db)
        #: SFU usage per app, session and track
        self.sfu = SfuUsageTables(self._db)

    @property
    def schema_version(self) -> int:
        """Return the schema version the file is at."""
        version: int = self._db.execute("SELECT version FROM schema_version").fetchone()[0]
        return version

    def _migrate(self) -> None:
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        if db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
            db.execute("INSERT INTO schema_version VALUES (0)")
        current = self.schema_version
        for version, script in MIGRATIONS:
            if version <= current:
                continue
            # executescript() commits first, so wrap the script in its own
            # transaction to apply it and the version bump atomically.
            db.executescript(
                f"BEGIN;\n{script}\nUPDATE schema_version SET version = {int(version)};\nCOMMIT;"
            )

    def close(self) -> None:
        """Close the database file."""
        self._db.close()

    # -- apps ---------------------------------------------------------------

    def add_app(self, app: App) -> App:
        """Store ``app``; raise :class:`KeyError` if its id is already taken."""
        try:
            self._db.execute(
                "INSERT INTO apps (app_id, secret, created, generated) VALUES (?, ?, ?, ?)",
                (app.app_id, app.secret, app.created, int(app.generated)),
            )
        except sqlite3.IntegrityError:
            raise KeyError(app.app_id) from None
        return app

    def get_app(self, app_id: str) -> App | None:
        """Return the stored app called ``app_id``, or ``None``."""
        row = self._db.execute(
            "SELECT app_id, secret, created, generated FROM apps WHERE app_id = ?", (app_id,)
        ).fetchone()
        return None if row is None else App(row[0], row[1], row[2], bool(row[3]))

    def apps(self) -> list[App]:
        """Return every stored app, oldest first."""
        rows = self._db.execute(
            "SELECT app_id, secret, created, generated FROM apps ORDER BY created, app_id"
        ).fetchall()
        return [App(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def delete_app(self, app_id: str) -> bool:
        """Forget the app called ``app_id``; return whether it existed."""
        return self._db.execute("DELETE FROM apps WHERE app_id = ?", (app_id,)).rowcount > 0

    # -- the components' methods under their former names ---------------------
    #
    # realtime/api/turn.py and realtime/api/usage.py still call these; they go
    # once the API takes the components directly (issue 11, item 1).

    def add_turn_key(self, key: TurnKey) -> TurnKey:
        """Same as ``turn.add_key``."""
        return self.turn.add_key(key)

    def turn_keys(self) -> list[TurnKey]:
        """Same as ``turn.keys``."""
        return self.turn.keys()

    def record_turn_credential(self, username: str, key_id: str, custom_identifier: str,
                               expires: float) -> None:
        """Same as ``turn.record_credential``."""
        self.turn.record_credential(username, key_id, custom_identifier, expires)

    def revoke_turn_credential(self, username: str) -> None:
        """Same as ``turn.revoke_credential``."""
        self.turn.revoke_credential(username)

    def turn_credentials(self, now: float) -> list[tuple[str, str, str, float, bool]]:
        """Same as ``turn.credentials``."""
        return self.turn.credentials(now)

    def add_turn_usage(self, rows: Iterable[tuple]) -> None:
        """Same as ``turn.add_usage``."""
        self.turn.add_usage(rows)

    def turn_usage(self, key_id: str, since: int, until: int, username: str | None = None,
                   custom_identifier: str | None = None) -> list[tuple[int, int, int]]:
        """Same as ``turn.usage``."""
        return self.turn.usage(key_id, since, until, username, custom_identifier)

    def add_sfu_usage(self, rows: Iterable[tuple]) -> None:
        """Same as ``sfu.add``."""
        self.sfu.add(rows)

    def sfu_usage(self, app_id: str, since: int, until: int, session_id: str | None = None,
                  track_name: str = "") -> list[tuple[int, int, int, int, int]]:
        """Same as ``sfu.by_minute``."""
        return self.sfu.by_minute(app_id, since, until, session_id, track_name)

    def sfu_usage_by_track(self, app_id: str, session_id: str, since: int,
                           until: int) -> list[tuple[str, int, int, int, int]]:
        """Same as ``sfu.by_track``."""
        return self.sfu.by_track(app_id, session_id, since, until)

    def prune_sfu_usage(self, before: int) -> int:
        """Same as ``sfu.prune``."""
        return self.sfu.prune(before)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Announce where the server listens; hold the command-line apps.

    Ports are the actual bound ports once the service has started (a
    requested port 0 is replaced by the one the kernel chose).

    :param public_ip: the address put in ICE candidates and TURN URLs.
    :param media_port: the one UDP port all PeerConnections share.
    :param turn_port: the TURN port (UDP and TCP).
    :param turns_port: the TURN-over-TLS port.
    :param api_url: the base URL of the HTTPS API, e.g. ``https://127.0.0.1:8443``.
    :param apps: apps from ``--app ID:SECRET``; they win over stored apps.
    :param session_rate: ``sessions/new`` calls per second per app (``--session-rate``).
    :param session_burst: the burst of that limit (``--session-burst``).
    """

    public_ip: str = "127.0.0.1"
    media_port: int = 10000
    turn_port: int = 3478
    turns_port: int = 5349
    api_url: str = "https://127.0.0.1:8443"
    apps: tuple[App, ...] = field(default=())
    session_rate: float = 20.0
    session_burst: float = 100.0

    def find_app(self, app_id: str) -> App | None:
        """Return the command-line app called ``app_id``, or ``None``."""
        for app in self.apps:
            if app.app_id == app_id:
                return app
        return None
