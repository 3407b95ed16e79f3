"""
The TURN part of the state store: keys, issued credentials and relayed bytes.

Three tables (schema version 2 of :data:`realtime.storage.store.MIGRATIONS`)::

    turn_keys         key_id | token | created | generated
    turn_credentials  username | key_id | custom_identifier | expires | revoked
    turn_usage        key_id | username | custom_identifier | minute | ingress | egress

A TURN key is the ``keyId`` of Cloudflare's ``/v1/turn/keys/{keyId}/...``
and the secret that both authenticates those API calls and signs the key's
short-lived credentials (docs/cloudflare-api.md §1.5,
:mod:`realtime.turn.credentials`).  Issued credentials are remembered only
for what must survive a restart: their ``customIdentifier`` and whether they
were revoked; they are pruned once expired.  Usage is summed per minute.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TurnKey:
    """A TURN key: the ``keyId`` of ``/v1/turn/keys/{keyId}/...`` and its bearer token.

    The token also signs the key's ephemeral credentials (:mod:`realtime.turn.credentials`).
    """

    key_id: str
    token: str
    created: float = 0.0
    generated: bool = False

    def __repr__(self) -> str:
        return f"TurnKey(key_id={self.key_id!r}, token=<{len(self.token)} chars>)"


def generate_turn_key(now: float,
                      token_hex: Callable[[int], str] = secrets.token_hex) -> TurnKey:
    """Return a fresh TURN key: a 32-hex-digit id and a 64-hex-digit token."""
    return TurnKey(key_id=token_hex(16), token=token_hex(32), created=now, generated=True)


class TurnTables:
    """The TURN tables of the store: keys, issued credentials, usage per minute.

    :param db: the store's open connection (autocommit; schema 2 applied).
    """

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def add_key(self, key: TurnKey) -> TurnKey:
        """Store ``key``; raise :class:`KeyError` if its id is taken."""
        try:
            self._db.execute("INSERT INTO turn_keys VALUES (?, ?, ?, ?)",
                             (key.key_id, key.token, key.created, int(key.generated)))
        except sqlite3.IntegrityError:
            raise KeyError(key.key_id) from None
        return key

    def keys(self) -> list[TurnKey]:
        """Return every stored TURN key, oldest first."""
        rows = self._db.execute("SELECT key_id, token, created, generated FROM turn_keys "
                                "ORDER BY created, key_id").fetchall()
        return [TurnKey(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def record_credential(self, username: str, key_id: str, custom_identifier: str,
                          expires: float) -> None:
        """Remember an issued credential (for its customIdentifier and revocation)."""
        self._db.execute("INSERT OR REPLACE INTO turn_credentials VALUES (?, ?, ?, ?, 0)",
                         (username, key_id, custom_identifier, expires))

    def revoke_credential(self, username: str) -> None:
        """Mark ``username`` revoked (inserted if it was never recorded)."""
        self._db.execute("UPDATE turn_credentials SET revoked = 1 WHERE username = ?", (username,))

    def credentials(self, now: float) -> list[tuple[str, str, str, float, bool]]:
        """Return unexpired ``(username, key_id, custom_identifier, expires, revoked)``; prune the rest."""
        self._db.execute("DELETE FROM turn_credentials WHERE expires < ?", (now,))
        rows = self._db.execute("SELECT username, key_id, custom_identifier, expires, revoked "
                                "FROM turn_credentials").fetchall()
        return [(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def add_usage(self, rows: Iterable[tuple]) -> None:
        """Add ``(key_id, username, custom_identifier, minute, ingress, egress)`` rows."""
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO turn_usage VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
            "(key_id, username, minute) DO UPDATE SET ingress = ingress + excluded.ingress, "
            "egress = egress + excluded.egress", list(rows))
        self._db.execute("COMMIT")

    def usage(self, key_id: str, since: int, until: int, username: str | None = None,
              custom_identifier: str | None = None) -> list[tuple[int, int, int]]:
        """Return ``(minute, ingress, egress)`` per minute of ``key_id`` in ``[since, until)``."""
        sql = ("SELECT minute, SUM(ingress), SUM(egress) FROM turn_usage "
               "WHERE key_id = ? AND minute >= ? AND minute < ?")
        args: list = [key_id, since, until]
        if username is not None:
            sql += " AND username = ?"
            args.append(username)
        if custom_identifier is not None:
            sql += " AND custom_identifier = ?"
            args.append(custom_identifier)
        return self._db.execute(sql + " GROUP BY minute ORDER BY minute", args).fetchall()
