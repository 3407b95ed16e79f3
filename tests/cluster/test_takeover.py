"""
SfuTakeOver reads what another node wrote: a record whose plan or SDP is hostile is
refused with DecodeError/ValueError (JustInTime counts it), never a crash, and leaves
nothing behind in the switchboard.
"""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.cluster.publish import ClusterSessions
from realtime.cluster.records import SessionRecord
from realtime.cluster.takeover import NotNegotiated, SfuTakeOver
from realtime.errors import DecodeError, LocalProtocolError
from realtime.sfu.switchboard import Switchboard
from tests.sfu.client import audio, certificate, push_offer, video
from tests.sfu.test_session import CAM, CAM_RTX, MIC, counting_random, new


def publisher(board: Switchboard):
    """A session pushing "mic" and "cam", negotiated (its real PeerConnection, unconnected)."""
    session = new(board)
    session.answer_offer(push_offer(audio("0", MIC), video("1", CAM, CAM_RTX)), 0.0,
                         publish={"0": "mic", "1": "cam"})
    return session


class Clock:
    def seconds(self) -> float:
        return 10.0


def record_of(session) -> SessionRecord:
    """The record the making node writes (ClusterSessions.sfu_record), through its codec."""
    sessions = ClusterSessions(None, "node-a", Clock())   # no directory: only the record
    return SessionRecord.decode(sessions.sfu_record(session).encode())


def takeover(board: Switchboard) -> SfuTakeOver:
    return SfuTakeOver(lambda: board, lambda session: [], lambda: {
        "certificate": certificate(), "address": "127.0.0.1", "port": 40001}, Clock())


def test_a_record_rebuilds_its_session_and_an_unnegotiated_one_is_refused() -> None:
    made = publisher(Switchboard(random=counting_random()))
    board = Switchboard()
    session, tracks = takeover(board)(record_of(made))
    assert board.get(made.session_id) is session and tracks == []
    assert sorted(name for (_, _, name) in board.tracks) == ["cam", "mic"]
    fresh = Switchboard(random=counting_random()).create_session(
        "app", 0.0, certificate=certificate(), address="127.0.0.1", port=1)
    try:
        takeover(Switchboard())(record_of(fresh))
    except NotNegotiated:
        pass
    else:
        raise AssertionError("a session with no exchange was rebuilt")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["mid", "kind", "role", "trackName", "pull", "offeredPayloadTypes",
                         "x"]), children, max_size=6),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(plan=json_values, garbage=st.one_of(st.none(), st.text(max_size=64)),
       cut=st.integers(0, 4000))
def test_hostile_plans_and_descriptions_are_refused_cleanly(plan, garbage, cut) -> None:
    made = publisher(Switchboard(random=counting_random()))
    record = record_of(made)
    fields = {"media_description": json.dumps(plan) if garbage is None else garbage,
              "local_description": record.local_description[:cut] if cut % 3 == 0
              else record.local_description,
              "remote_description": record.remote_description[:cut] if cut % 3 == 1
              else record.remote_description}
    board = Switchboard()
    try:
        takeover(board)(replace(record, **fields))
    except (DecodeError, ValueError, TypeError, LocalProtocolError):
        assert board.sessions == {} and board.tracks == {}
