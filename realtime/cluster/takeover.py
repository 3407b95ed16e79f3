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

``find_remote_track`` is the cross-node pull (a track another node holds,
fed over the relay link); None until that is wired.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from realtime.cluster.publish import SFU
from realtime.cluster.records import SessionRecord, TrackRecord
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
    """

    def __init__(self, switchboard: Callable[[], Any],
                 track_records: Callable[[Any], list[TrackRecord]],
                 transport: Transport, clock: Any,
                 find_remote_track: FindTrack | None = None) -> None:
        self.switchboard = switchboard
        self.track_records = track_records
        self.transport = transport
        self.clock = clock
        self.find_remote_track = find_remote_track

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
        return session, self.track_records(session)
