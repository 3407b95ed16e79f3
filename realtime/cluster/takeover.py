"""
Take an SFU session over from its record: :class:`JustInTime`'s ``restore_sfu``.

An SFU session's record (:class:`~realtime.cluster.records.SessionRecord`,
written by :class:`~realtime.cluster.publish.ClusterSessions` after every
completed negotiation) holds its last exchange raw and the plan of its mids.
:class:`SfuTakeOver` hands both to this node's switchboard
(:meth:`realtime.sfu.switchboard.Switchboard.restore`), which makes the
session with the same id and ICE credentials the client holds, publishes
its pushed tracks here under the same (session, name) and attaches its pulls::

    record ──> Switchboard.restore(id, (ufrag, pwd), exchange, plan)
                 ├─ pushed "cam"        -> published here (TrackRecord: owner = this node)
                 ├─ pulled (S, "mic"), S's track here   -> attached
                 ├─ pulled (S, "mic"), S's track elsewhere -> find_remote_track(app, S, "mic")
                 └─ neither                                -> the section stays silent

A pulled track another node holds is mirrored here first: :meth:`SfuTakeOver.prepare`
(awaited by :class:`~realtime.cluster.jit.JustInTime` before the rebuild) asks
``pull`` -- :meth:`realtime.cluster.remote_tracks.RemoteTracks.find_or_pull`, the
cross-node pull over the relay link -- for each of them, so the rebuild finds the
mirror on this node's switchboard.  ``find_remote_track`` stays a synchronous
fallback for callers that prepare nothing.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from realtime.cluster.publish import SFU
from realtime.cluster.records import SessionRecord, TrackRecord
from realtime.cluster.resume import resume
from realtime.cluster.sealing import SealError, Sealer
from realtime.sfu.restore import FindTrack

class NotNegotiated(ValueError):
    """The record is of an SFU session with no completed exchange yet (nothing to replay).

    A pull's client may check before its ``PUT renegotiate`` reaches the making
    node; the check goes unanswered here and the client's next one looks again.
    """


#: the transport a rebuilt session gets here: certificate, address, port, keylog ...
Transport = Callable[[], dict[str, Any]]


class SfuTakeOver:
    """Rebuild SFU sessions made on other nodes, on this node.

    :param switchboard: returns this node's switchboard (the API's).
    :param track_records: returns the records of a session's pushed tracks, owned here
        (:meth:`ClusterSessions.track_records`).
    :param transport: returns the keyword arguments of a session's transport here.
    :param clock: the reactor (``seconds()``).
    :param find_remote_track: ``(app_id, session_id, track_name)`` -> a track another
        node holds, pulled over the relay link; None: such pulls stay silent.
    :param pull: ``(switchboard, app_id, session_id, track_name)`` -> awaitable of a
        mirror of a track another node holds (published on the switchboard), or None;
        what :meth:`prepare` asks for every pull the rebuild will need.
    :param sealer: opens a record's ``sealed_media``; the session then resumes
        already connected (:func:`realtime.cluster.resume.resume`), else it waits
        for a DTLS handshake as a session new here does.
    """

    def __init__(self, switchboard: Callable[[], Any],
                 track_records: Callable[[Any], list[TrackRecord]],
                 transport: Transport, clock: Any,
                 find_remote_track: FindTrack | None = None,
                 pull: Callable[[Any, str, str, str], Awaitable[Any]] | None = None,
                 sealer: Sealer | None = None) -> None:
        self.switchboard = switchboard
        self.track_records = track_records
        self.transport = transport
        self.clock = clock
        self.find_remote_track = find_remote_track
        self.pull = pull
        self.sealer = sealer
        #: sessions resumed connected from sealed keys; sealed keys that did not open
        self.resumed = 0
        self.unsealable = 0

    async def prepare(self, record: SessionRecord) -> None:
        """Mirror here the tracks ``record``'s pulls name that another node holds.

        Best effort: a plan that is not JSON or a track not found is left to
        the rebuild (which refuses the first and leaves the second silent).

        :raises DirectoryUnavailable: Redis is away.
        """
        if self.pull is None or record.session_kind != SFU or not record.local_description:
            return
        try:
            plan = json.loads(record.media_description)
        except (ValueError, RecursionError):
            return
        board = self.switchboard()
        for entry in plan if isinstance(plan, list) else ():
            pulled = entry.get("pull") if isinstance(entry, dict) else None
            if not (isinstance(pulled, list) and len(pulled) == 2
                    and all(isinstance(part, str) for part in pulled)):
                continue
            if board.find(record.app_id, pulled[0], pulled[1]) is None:
                await self.pull(board, record.app_id, pulled[0], pulled[1])

    def __call__(self, record: SessionRecord) -> tuple[Any, list[TrackRecord]]:
        """Rebuild ``record``'s session here; return it and its pushed tracks' records.

        :raises NotNegotiated: no exchange completed yet.
        :raises ValueError: not an SFU record, or its plan is not JSON (``DecodeError`` if its SDP does not replay).
        """
        if record.session_kind != SFU:
            raise ValueError("not an SFU session")
        if not record.local_description:
            raise NotNegotiated(record.session_id)
        try:
            plan = json.loads(record.media_description)
        except (ValueError, RecursionError):
            raise ValueError("the session's plan is not JSON") from None
        session = self.switchboard().restore(
            record.app_id, record.session_id, (record.ice_ufrag, record.ice_pwd),
            (record.local_description, record.remote_description, record.local_offered),
            plan, record.created, self.clock.seconds(), self.find_remote_track,
            **self.transport())
        if record.sealed_media and self.sealer is not None:
            try:
                keys = self.sealer.open(record.session_id, record.sealed_media)
            except SealError:
                self.unsealable += 1    # another cluster key, or tampered with: handshake anew
            else:
                resume(session, keys, self.clock.seconds())
                self.resumed += 1
        return session, self.track_records(session)
