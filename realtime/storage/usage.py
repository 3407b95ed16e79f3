"""
The SFU part of the state store: usage per app, session and track, per minute.

One table (schema version 3 of :data:`realtime.storage.store.MIGRATIONS`)::

    sfu_usage  app_id | session_id | track_name | minute | ingress | egress
               | ingress_packets | egress_packets           key: first four

Rows are added as sums (an insert for an existing key adds to it), so the
periodic flush of :mod:`realtime.sfu.usage` counters can run any number of
times per minute.  Readers ask per minute or per track.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


class SfuUsageTables:
    """The SFU usage table of the store: bytes and packets per app, session and track, per minute.

    A row whose ``track_name`` is ``''`` is the session's own (its
    PeerConnection's wire bytes); other rows are tracks the session
    published (see :mod:`realtime.sfu.usage`).

    :param db: the store's open connection (autocommit; schema 3 applied).
    """

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def add(self, rows: Iterable[tuple]) -> None:
        """Sum ``(app_id, session_id, track_name, minute, ingress, egress, ingress_packets,
        egress_packets)`` rows into the table, all or none."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO sfu_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(app_id, session_id, track_name, minute) DO UPDATE SET "
                "ingress = ingress + excluded.ingress, egress = egress + excluded.egress, "
                "ingress_packets = ingress_packets + excluded.ingress_packets, "
                "egress_packets = egress_packets + excluded.egress_packets", list(rows))
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def by_minute(self, app_id: str, since: int, until: int, session_id: str | None = None,
                  track_name: str = "") -> list[tuple[int, int, int, int, int]]:
        """Return ``(minute, ingress, egress, ingress_packets, egress_packets)`` per minute.

        Sums the rows of ``app_id`` in ``[since, until)`` named ``track_name``
        (``''``: the sessions' own rows), of one session when ``session_id`` is given.
        """
        sql = ("SELECT minute, SUM(ingress), SUM(egress), SUM(ingress_packets), "
               "SUM(egress_packets) FROM sfu_usage "
               "WHERE app_id = ? AND minute >= ? AND minute < ? AND track_name = ?")
        args: list = [app_id, since, until, track_name]
        if session_id is not None:
            sql += " AND session_id = ?"
            args.append(session_id)
        return self._db.execute(sql + " GROUP BY minute ORDER BY minute", args).fetchall()

    def by_track(self, app_id: str, session_id: str, since: int,
                 until: int) -> list[tuple[str, int, int, int, int]]:
        """Return ``(track_name, ingress, egress, ingress_packets, egress_packets)`` per
        track of one session in ``[since, until)``, by name."""
        return self._db.execute(
            "SELECT track_name, SUM(ingress), SUM(egress), SUM(ingress_packets), "
            "SUM(egress_packets) FROM sfu_usage WHERE app_id = ? AND session_id = ? "
            "AND minute >= ? AND minute < ? AND track_name != '' "
            "GROUP BY track_name ORDER BY track_name",
            (app_id, session_id, since, until)).fetchall()

    def prune(self, before: int) -> int:
        """Delete the SFU usage of minutes before ``before``; return how many rows went."""
        return self._db.execute("DELETE FROM sfu_usage WHERE minute < ?", (before,)).rowcount
