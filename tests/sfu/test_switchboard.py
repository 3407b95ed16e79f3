"""
The switchboard registry: ids, publish/find across sessions of an app, expiry.
"""

from __future__ import annotations

import re

import pytest

from realtime.demux import PacketKind
from realtime.rtcp.bye import Goodbye
from realtime.rtcp.packet import decode_compound
from realtime.rtcp.reports import ReceiverReport
from realtime.rtcp.sdes import SourceDescription
from realtime.sfu.limits import RateLimiter
from realtime.sfu.switchboard import GONE_MEMORY, Switchboard
from tests.sfu.client import audio, push_offer, rtp
from tests.sfu.test_session import MIC, counting_random, new, publisher, subscriber


@pytest.fixture
def board():
    return Switchboard(random=counting_random())


def test_session_ids_are_32_lowercase_hex_and_unique() -> None:
    board = Switchboard()
    ids = {new(board).session_id for _ in range(20)}
    assert len(ids) == 20 and all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    session = board.get(next(iter(ids)))
    assert session.app_id == "app" and session.local.ice_ufrag == session.ice.local_ufrag


def test_tracks_are_named_per_app_and_session(board) -> None:
    a = publisher(board)
    assert board.find("app", a.session_id, "mic").name == "mic"
    assert board.find("other-app", a.session_id, "mic") is None
    assert board.find("app", "0" * 32, "mic") is None
    # any session of the app may pull it, any number of times
    b, c = subscriber(board, a), subscriber(board, a)
    assert len(board.find("app", a.session_id, "mic").subscriptions) == 2
    assert board.stats() == {"sessions": 3, "tracks": 2, "subscriptions": 4}
    assert b.session_id != c.session_id


def test_republishing_a_name_ends_the_old_track(board) -> None:
    a = publisher(board)
    old = board.find("app", a.session_id, "mic")
    a.answer_offer(push_offer(audio("0", MIC), audio("2", 77)), 1.0, publish={"2": "mic"})
    assert old.ended and board.find("app", a.session_id, "mic").mid == "2"
    board.unpublish(board.find("app", a.session_id, "mic"))
    assert board.find("app", a.session_id, "mic") is None


def test_silent_tracks_end_after_30_s_and_their_subscribers_see_it(board) -> None:
    a = publisher(board)
    b = subscriber(board, a)
    a.receive_media(PacketKind.RTP, rtp(MIC, 1), 10.0)
    board.collect_garbage(39.9)
    assert board.find("app", a.session_id, "mic") is not None     # 29.9 s of silence
    assert board.find("app", a.session_id, "cam") is None         # never sent: 39.9 s
    assert b.transceiver("1").status() == "inactive"
    assert b.transceiver("0").status() == "active"
    board.collect_garbage(40.0)
    assert board.find("app", a.session_id, "mic") is None
    assert b.transceiver("0").status() == "inactive"


def test_a_subscriber_gets_rtcp_bye_for_the_ssrcs_of_an_ended_track(board) -> None:
    a = publisher(board)
    b = subscriber(board, a)
    ours = {s.track.name: s.ssrc for s in b.subscriptions.values()}
    a.receive_media(PacketKind.RTP, rtp(MIC, 1), 10.0)
    board.collect_garbage(39.9)                                    # "cam" never sent: ended
    b.rtcp.handle_timer(39.9)
    packets = [p for data in b.connection.rtcp for p in decode_compound(data)]
    byes = [p for p in packets if isinstance(p, Goodbye)]
    assert [bye.sources[0] for bye in byes] == [ours["cam"]]
    assert byes[0].reason == b"track ended"
    compound = next(decode_compound(d) for d in b.connection.rtcp
                    if any(isinstance(p, Goodbye) for p in decode_compound(d)))
    assert [type(p) for p in compound] == [ReceiverReport, SourceDescription, Goodbye]
    assert b.rtcp.subscriber.goodbyes == 1


def test_sessions_expire_unnegotiated_or_closed(board) -> None:
    idle = new(board)
    a = publisher(board)
    assert board.collect_garbage(59.0) == []
    assert board.collect_garbage(60.0) == [idle]
    assert board.is_gone(idle.session_id) and board.get(idle.session_id) is None
    a.connection.state = "closed"                                  # PeerHost removed it
    assert board.collect_garbage(61.0) == [a]
    assert board.tracks == {}


def test_gone_memory_is_bounded(board) -> None:
    for _ in range(3):
        board.close_session(new(board))
    board.gone.update((f"{i:032x}", "x") for i in range(GONE_MEMORY))
    board.close_session(new(board))
    assert len(board.gone) == GONE_MEMORY


def test_rate_limiter_admits_50_per_second_per_key() -> None:
    limiter = RateLimiter(50.0)
    assert sum(limiter.allow("s", 0.0) for _ in range(60)) == 50
    assert limiter.allow("other", 0.0)
    assert not limiter.allow("s", 0.01)
    assert limiter.allow("s", 0.03)                                # refilled 1.5 tokens
    limiter.forget("s")
    assert sum(limiter.allow("s", 0.03) for _ in range(60)) == 50
    small = RateLimiter(1.0, max_keys=2)
    for key in "abc":
        small.allow(key, 0.0)
    assert len(small._buckets) == 2
