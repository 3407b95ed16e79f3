"""
An SFU session replayed on another switchboard (a cluster node taking it over).

Switchboard "A" negotiates a publisher and a subscriber; switchboard "B"
rebuilds both from what A's records hold (the last exchange raw + the plan,
realtime/sfu/restore.py), as a node does at the first STUN check.  B must
hold the same ids, ICE credentials, DTLS role, pushed tracks under the same
names, and a subscriber receiving B's copy of the track under the SSRCs A
announced in its offer.
"""

from __future__ import annotations

import json

import pytest

from realtime.demux import PacketKind
from realtime.errors import DecodeError
from realtime.sfu.restore import plan_of
from realtime.sfu.session import unpack_sdp
from realtime.sfu.switchboard import Switchboard
from tests.sfu.client import Wire, certificate, rtp
from tests.sfu.test_session import MIC, counting_random, header, publisher, subscriber


def stored(session):
    """What the making node writes into the session's record (through JSON, as Redis holds it)."""
    local, remote, offered = session.exchange
    return dict(credentials=(session.ice.local_ufrag, session.ice.local_pwd),
                exchange=(unpack_sdp(local), unpack_sdp(remote), offered),
                plan=json.loads(json.dumps(plan_of(session))), created=session.created)


def restore(board, session, find_remote_track=None):
    return board.restore("app", session.session_id, **stored(session), now=5.0,
                         find_remote_track=find_remote_track, certificate=certificate(),
                         address="127.0.0.1", port=40001)


def test_a_publisher_and_its_subscriber_are_rebuilt_on_another_switchboard() -> None:
    a_board = Switchboard(random=counting_random())
    a_pub = publisher(a_board)
    a_sub = subscriber(a_board, a_pub)
    b_board = Switchboard()

    b_pub = restore(b_board, a_pub)
    assert b_pub.session_id == a_pub.session_id
    assert (b_pub.ice.local_ufrag, b_pub.ice.local_pwd) == (a_pub.ice.local_ufrag,
                                                             a_pub.ice.local_pwd)
    assert b_pub.connection.dtls_role == a_pub.connection.dtls_role
    assert b_pub.connection.remote_fingerprints == [("sha-256", ":".join(["AB"] * 32))]
    assert {n: b_board.find("app", a_pub.session_id, n).kind for n in ("mic", "cam")} == \
        {"mic": "audio", "cam": "video"}                 # published at B under the same names

    b_sub = restore(b_board, a_sub)
    assert [t.role for t in b_sub.transceivers] == ["subscribe", "subscribe"]
    for mid in ("0", "1"):
        theirs, ours = a_sub.transceiver(mid), b_sub.transceiver(mid)
        assert ours.send == theirs.send                  # the SSRCs the client was told
        assert ours.subscription.track is b_board.find("app", a_pub.session_id,
                                                       theirs.subscription.track.name)
        assert ours.subscription.offered_payload_types == \
            theirs.subscription.offered_payload_types
    b_pub.connection, b_sub.connection = Wire(), Wire()
    b_pub.receive_media(PacketKind.RTP, rtp(MIC, 5, payload=b"opus" * 5), 6.0)
    (packet,) = b_sub.connection.rtp
    assert header(packet)[4] == a_sub.transceiver("0").send.ssrc
    assert header(packet)[1] & 0x7F == 111 and packet.endswith(b"opus" * 5)
    # the next offer B makes goes on from A's o= line (RFC 3264 §8)
    assert (b_sub.local.session_id, b_sub.local.session_version) == \
        (a_sub.local.session_id, a_sub.local.session_version)


def test_a_pull_of_a_track_held_elsewhere_asks_the_remote_hook() -> None:
    a_board = Switchboard(random=counting_random())
    a_pub = publisher(a_board)
    a_sub = subscriber(a_board, a_pub)
    asked = []
    b_sub = restore(Switchboard(), a_sub,
                    find_remote_track=lambda *key: asked.append(key))
    assert sorted(asked) == [("app", a_pub.session_id, "cam"), ("app", a_pub.session_id, "mic")]
    assert all(t.subscription is None for t in b_sub.transceivers)   # silent, not broken
    assert b_sub.connection is not None


def test_a_bad_plan_or_description_keeps_nothing() -> None:
    a_pub = publisher(Switchboard(random=counting_random()))
    board = Switchboard()
    record = stored(a_pub)
    with pytest.raises(ValueError):
        board.restore("app", a_pub.session_id, **{**record, "plan": [{"mid": 3}]}, now=1.0,
                      certificate=certificate(), address="127.0.0.1", port=1)
    with pytest.raises(DecodeError):
        board.restore("app", a_pub.session_id,
                      **{**record, "exchange": ("v=0\r\n", "x", False)}, now=1.0,
                      certificate=certificate(), address="127.0.0.1", port=1)
    assert board.sessions == {} and board.tracks == {} and not board.is_gone(a_pub.session_id)


def test_a_pulls_simulcast_preferences_are_replayed(shared) -> None:
    """Nothing the user set is lost on a take-over: the preferences of a simulcast pull
    (tracks/new or tracks/update) come back exactly, leastBandwidth included."""
    from realtime.media.simulcast import SimulcastPreferences
    from realtime.sdp.session import SessionDescription
    from realtime.sfu.session import MediaRequest
    from tests.sfu.test_session import answer_sfu_offer, new

    sdp = (shared / "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.offer.sdp").read_text()
    video_mid = next(m.mid for m in SessionDescription.parse(sdp).media if m.kind == "video")
    a_board = Switchboard(random=counting_random())
    a_pub = new(a_board)
    a_pub.answer_offer(sdp, 0.0, publish={video_mid: "cam"})
    wishes = SimulcastPreferences("h", "asciibetical", "leastBandwidth")
    a_sub = new(a_board)
    a_sub.offer_media([MediaRequest("video", "subscribe", a_board.find(
        "app", a_pub.session_id, "cam"), preferences=wishes)], 1.0)
    a_sub.apply_answer(answer_sfu_offer(a_sub.pending_offer), 1.0)
    b_board = Switchboard()
    restore(b_board, a_pub)
    b_sub = restore(b_board, a_sub)
    assert b_sub.transceiver("0").subscription.preferences == wishes
    assert stored(a_sub)["plan"][0]["simulcast"] == {
        "preferredRid": "h", "priorityOrdering": "asciibetical", "ridNotAvailable": "leastBandwidth"}
