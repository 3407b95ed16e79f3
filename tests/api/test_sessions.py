"""
The SFU routes through ``treq.testing.StubTreq``: no sockets, a ``task.Clock``.

The real :class:`~realtime.net.peers.PeerHost` runs on the clock without a
port; clients are scripted with realtime/sdp (tests/sfu/client.py) and
media is injected straight into the publisher session.  One test per route
and per error of docs/cloudflare-api.md §1-§3.
"""

from __future__ import annotations

import json
import re

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock

from realtime.demux import PacketKind
from realtime.sdp import SessionDescription
from realtime.storage import App, ServerConfig, StateStore
from tests.api.compose import collector, compose, finish
from tests.sfu.client import (
    VP8_KEY, answer_sfu_offer, audio, certificate, push_offer, rtp, video,
)

APP = App("cli-app", "cli-secret")
OTHER = App("other-app", "other-secret")
MIC, CAM = 1111, 2222
BOTH = push_offer(audio("0", MIC), video("1", CAM))


class Api:
    """One RealtimeAPI on a Clock with a StubTreq, and JSON helpers."""

    def __init__(self, store, **config) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        # tests create sessions far faster than --session-rate on a clock that barely moves
        config = {"session_burst": 100_000, **config}
        self.api = compose(store, ServerConfig(apps=(APP, OTHER), **config), self.clock)
        self.collector = collector(self.api, self.clock)
        self.treq = StubTreq(self.api.app.resource())

    def call(self, method, path, body=None, *, app=APP, raw=None, wait=0.0, prefix="/v1/apps"):
        """Return (status, JSON) of one request, advancing the clock ``wait`` seconds."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        deferred = self.treq.request(
            method, f"https://127.0.0.1{prefix}/{app.app_id}{path}", data=data,
            headers={"Authorization": f"Bearer {app.secret}"})
        response, content = finish(self.treq, self.clock, deferred, wait)
        return response.code, json.loads(content)

    @property
    def board(self):
        return self.api.switchboard

    def session(self) -> str:
        status, body = self.call("POST", "/sessions/new")
        assert status == 201
        return body["sessionId"]

    def publish(self, media=(audio("0", MIC), video("1", CAM)), names=("mic", "cam"),
                send=True) -> str:
        """Push tracks on a new session; inject one packet per track; return its id."""
        session_id = self.session()
        status, body = self.call("POST", f"/sessions/{session_id}/tracks/new", {
            "sessionDescription": {"type": "offer", "sdp": push_offer(*media)},
            "tracks": [{"location": "local", "mid": m.mid, "trackName": n}
                       for m, n in zip(media, names)]})
        assert status == 200, body
        session = self.board.get(session_id)
        session.connection.state = "connected"
        if send:
            session.receive_media(PacketKind.RTP, rtp(MIC, 1), self.clock.seconds())
            session.receive_media(PacketKind.RTP, rtp(CAM, 1, 96, VP8_KEY), self.clock.seconds())
        return session_id

    def pull(self, publisher: str, names=("mic", "cam"), session_id=None, **extra):
        session_id = session_id or self.session()
        status, body = self.call("POST", f"/sessions/{session_id}/tracks/new", {
            "tracks": [{"location": "remote", "sessionId": publisher, "trackName": n, **extra}
                       for n in names]}, wait=extra.pop("wait", 0.0))
        return session_id, status, body


@pytest.fixture
def api(tmp_path):
    store = StateStore(tmp_path / "state.sqlite3")
    yield Api(store)
    store.close()


# -- sessions/new ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/v1/apps", "/apps"])
def test_new_session_without_body(api, prefix) -> None:
    status, body = api.call("POST", "/sessions/new?correlationId=x&thirdparty=true",
                            prefix=prefix)
    assert status == 201 and set(body) == {"sessionId"}
    assert re.fullmatch("[0-9a-f]{32}", body["sessionId"])


def test_session_creation_is_rate_limited_per_app(tmp_path) -> None:
    """Issue 10 item 4: sessions/new had no limit (~1,400/s, ~56 KB each held for 60 s)."""
    store = StateStore(tmp_path / "limited.sqlite3")
    api = Api(store, session_rate=2.0, session_burst=5.0)
    statuses = [api.call("POST", "/sessions/new")[0] for _ in range(7)]
    assert statuses == [201] * 5 + [429] * 2
    status, body = api.call("POST", "/sessions/new", app=OTHER)    # per app
    assert status == 201
    api.clock.advance(0.5)                                           # 2/s refills one token
    assert api.call("POST", "/sessions/new")[0] == 201
    status, body = api.call("POST", "/sessions/new")
    assert (status, body["errorCode"]) == (429, "retryable_transient_error")
    assert len(api.board.sessions) == 7
    store.close()


def test_auto_discover_counts_against_the_per_call_track_limit(api) -> None:
    """Issue 10 item 4: autoDiscover published 1,000 tracks in one call, past the 64 limit."""
    session_id = api.session()
    offer = push_offer(*(audio(str(i), 100 + i) for i in range(65)))
    status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {
        "autoDiscover": True, "sessionDescription": {"type": "offer", "sdp": offer}})
    assert (status, body["errorCode"]) == (400, "invalid_params")
    assert api.board.get(session_id).transceivers == []
    offer = push_offer(*(audio(str(i), 100 + i) for i in range(64)))
    status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {
        "autoDiscover": True, "sessionDescription": {"type": "offer", "sdp": offer}})
    assert status == 200 and len(body["tracks"]) == 64


def test_media_sections_per_offer_are_bounded(api) -> None:
    offer = push_offer(*(audio(str(i), 100 + i) for i in range(257)))
    for path in ("/sessions/new", f"/sessions/{api.session()}/tracks/new"):
        status, body = api.call("POST", path, {
            "autoDiscover": True, "sessionDescription": {"type": "offer", "sdp": offer}})
        assert (status, body["errorCode"]) == (400, "invalid_session_description"), path
        assert "256 m= sections" in body["errorDescription"]


def test_new_session_with_offer_answers_it(api) -> None:
    status, body = api.call("POST", "/sessions/new", raw=json.dumps({"sessionDescription": {
        "type": "offer", "sdp": push_offer(audio("0", 5))}}).encode())
    assert status == 201
    answer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    assert body["sessionDescription"]["type"] == "answer" and answer.media[0].port != 0
    assert api.api.peers.sessions[body["sessionId"]].app_id == "cli-app"


@pytest.mark.parametrize(("body", "description"), [
    ({"sessionDescription": {"type": "offer", "sdp": "v=0\r\n"}}, "SDP"),
    ({"sessionDescription": {"type": "answer", "sdp": "v=0\r\n"}}, "must be 'offer'"),
    ({"sessionDescription": "v=0"}, "sdp string"),
])
def test_new_session_with_bad_offer(api, body, description) -> None:
    status, reply = api.call("POST", "/sessions/new", body)
    assert status == 400 and reply["errorCode"] == "invalid_session_description"
    assert description in reply["errorDescription"]


# -- push --------------------------------------------------------------------------


def test_push_with_offer_returns_an_answer_and_the_tracks(api) -> None:
    session_id = api.session()
    status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {
        "sessionDescription": {"type": "offer", "sdp": push_offer(audio("0", 1), video("1", 2))},
        "tracks": [{"location": "local", "mid": "0", "trackName": "a"},
                   {"location": "local", "mid": "7", "trackName": "b"}]})
    assert status == 200
    assert body["requiresImmediateRenegotiation"] is False
    assert body["sessionDescription"]["type"] == "answer"
    assert body["tracks"][0] == {"location": "local", "mid": "0", "trackName": "a"}
    assert body["tracks"][1]["errorCode"] == "invalid_params"     # no such m= section
    assert session_id in api.api.peers.sessions


def test_auto_discover_names_every_new_sending_section(api) -> None:
    session_id = api.session()
    status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {
        "autoDiscover": True,
        "sessionDescription": {"type": "offer", "sdp": push_offer(audio("0", 1), video("1", 2))}})
    assert status == 200 and [t["mid"] for t in body["tracks"]] == ["0", "1"]
    names = [t["trackName"] for t in body["tracks"]]
    assert all(re.fullmatch("[0-9a-f]{32}", n) for n in names)
    assert api.board.find("cli-app", session_id, names[1]).kind == "video"


def test_push_without_offer_and_bidirectional_then_pull_into_it(api) -> None:
    publisher = api.publish()
    session_id = api.session()
    status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {"tracks": [
        {"location": "local", "trackName": "mic-1", "kind": "audio"},
        {"location": "local", "trackName": "voice", "kind": "audio",
         "bidirectionalMediaStream": True},
        {"location": "local", "trackName": "nokind"}]})
    assert status == 200 and body["requiresImmediateRenegotiation"] is True
    offer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    assert [m.direction for m in offer.media] == ["recvonly", "sendrecv"]
    assert [t.get("mid") for t in body["tracks"]] == ["0", "1", None]
    assert body["tracks"][2]["errorCode"] == "invalid_params"
    answer = answer_sfu_offer(offer).replace("a=inactive", "a=sendonly")
    assert api.call("PUT", f"/sessions/{session_id}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": answer}}) == (200, {})
    api.board.get(session_id).connection.state = "connected"
    # mid "#voice": the bidirectional section carries the pull, no SDP
    _, status, body = api.pull(publisher, ["mic"], session_id=session_id, mid="#voice")
    assert status == 200 and body == {"requiresImmediateRenegotiation": False, "tracks": [
        {"location": "remote", "sessionId": publisher, "trackName": "mic", "mid": "1"}]}
    _, status, body = api.pull(publisher, ["mic"], session_id=session_id, mid="#mic-1")
    assert body["tracks"][0]["errorCode"] == "invalid_params"     # not bidirectional


# -- pull ----------------------------------------------------------------------------


def test_pull_produces_an_sfu_offer_and_renegotiate_applies_the_answer(api) -> None:
    publisher = api.publish()
    session_id, status, body = api.pull(publisher)
    assert status == 200 and body["requiresImmediateRenegotiation"] is True
    assert body["tracks"] == [
        {"location": "remote", "sessionId": publisher, "trackName": "mic", "mid": "0"},
        {"location": "remote", "sessionId": publisher, "trackName": "cam", "mid": "1"}]
    assert body["sessionDescription"]["type"] == "offer"
    # a second mutation while the offer is out: 406
    _, status, reply = api.pull(publisher, session_id=session_id)
    assert (status, reply["errorCode"]) == (406, "session_error")
    offer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    status, reply = api.call("PUT", f"/sessions/{session_id}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": answer_sfu_offer(offer)}})
    assert (status, reply) == (200, {})
    status, state = api.call("GET", f"/sessions/{session_id}")
    assert state == {"dataChannels": [], "tracks": [
        {"location": "remote", "mid": "0", "sessionId": publisher, "trackName": "mic",
         "status": "active"},
        {"location": "remote", "mid": "1", "sessionId": publisher, "trackName": "cam",
         "status": "active"}]}
    _, publisher_state = api.call("GET", f"/sessions/{publisher}")
    assert [t["location"] for t in publisher_state["tracks"]] == ["local", "local"]


def test_per_item_pull_errors_keep_the_rest(api) -> None:
    publisher = api.publish()
    silent = api.publish((audio("0", 9),), ("quiet",), send=False)
    session_id = api.session()
    status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {"tracks": [
        {"location": "remote", "sessionId": publisher, "trackName": "nope"},
        {"location": "remote", "sessionId": silent, "trackName": "quiet"},
        {"location": "remote", "sessionId": "f" * 32, "trackName": "mic"},
        {"location": "remote", "sessionId": publisher, "trackName": "mic"}]}, wait=3.2)
    assert status == 200
    codes = [t.get("errorCode") for t in body["tracks"]]
    assert codes == ["not_found_track_error", "empty_track_error", "not_found_track_error", None]
    assert ["mid" in t for t in body["tracks"]] == [False, False, False, True]
    assert body["tracks"][3]["mid"] == "0" and body["requiresImmediateRenegotiation"] is True


def test_silent_pulls_share_one_deadline(api) -> None:
    """Issue 10 item 2: five pulls of a silent track wait 3 s in all, not 3 s each (15 s),
    and a track that starts sending meanwhile is pulled."""
    silent = api.publish((audio("0", 9),), ("quiet",), send=False)
    late = api.publish((audio("0", 8),), ("late",), send=False)
    api.clock.callLater(1.0, api.board.get(late).receive_media, PacketKind.RTP, rtp(8, 1),
                        api.clock.seconds() + 1.0)
    session_id = api.session()
    started = api.clock.seconds()
    status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {"tracks": [
        *({"location": "remote", "sessionId": silent, "trackName": "quiet"} for _ in range(5)),
        {"location": "remote", "sessionId": late, "trackName": "late"}]}, wait=3.5)
    assert status == 200 and api.clock.seconds() - started <= 3.2
    codes = [t.get("errorCode") for t in body["tracks"]]
    assert codes == ["empty_track_error"] * 5 + [None]


def test_pull_waits_for_the_first_packet(api) -> None:
    publisher = api.publish(send=False)
    session_id = api.session()
    url = f"https://x/v1/apps/cli-app/sessions/{session_id}/tracks/new"
    deferred = api.treq.request("POST", url,
                                data=json.dumps({"tracks": [{"location": "remote",
                                                             "sessionId": publisher,
                                                             "trackName": "mic"}]}).encode(),
                                headers={"Authorization": "Bearer cli-secret"})
    done: list = []
    deferred.addBoth(done.append)
    api.clock.advance(1.0)
    api.treq.flush()
    assert done == []                                              # still waiting
    api.board.get(publisher).receive_media(PacketKind.RTP, rtp(MIC, 1), api.clock.seconds())
    api.clock.advance(0.05)
    api.treq.flush()
    assert done and done[0].code == 200


def _start_pull(api, publisher, names=("mic",)):
    """Start pulling ``names`` of ``publisher`` on a new session; return (done list, session)."""
    session_id = api.session()
    url = f"https://x/v1/apps/cli-app/sessions/{session_id}/tracks/new"
    deferred = api.treq.request("POST", url, data=json.dumps({"tracks": [
        {"location": "remote", "sessionId": publisher, "trackName": name} for name in names]
    }).encode(), headers={"Authorization": "Bearer cli-secret"})
    done: list = []
    deferred.addBoth(done.append)
    api.treq.flush()
    return done, session_id


def test_a_pull_resumes_at_the_first_packet_not_at_a_poll(api) -> None:
    """Issue 11: the track calls the waiting pull back; it used to poll every 50 ms."""
    publisher = api.publish(send=False)
    done, _ = _start_pull(api, publisher, ("mic", "cam"))
    api.clock.advance(1.0)
    now = api.clock.seconds()
    assert [c for c in api.clock.getDelayedCalls() if abs(c.getTime() - (now + 2)) < 1e-6]
    assert done == [] and not [c for c in api.clock.getDelayedCalls() if c.getTime() < now + 1]
    session = api.board.get(publisher)
    session.receive_media(PacketKind.RTP, rtp(MIC, 1), api.clock.seconds())
    api.clock.advance(0)
    assert done == []                             # cam has not sent yet
    session.receive_media(PacketKind.RTP, rtp(CAM, 1, 96, VP8_KEY), api.clock.seconds())
    assert done == []                             # never inside the publisher's packet path
    api.clock.advance(0)                          # the reactor's next turn, no time passing
    api.treq.flush()
    assert done and done[0].code == 200
    mic = api.board.find("cli-app", publisher, "mic")
    assert mic.first_packet_callbacks == []
    deadline = now - 1.0 + 3.0                    # the request's 3 s deadline is cancelled
    assert not [c for c in api.clock.getDelayedCalls() if abs(c.getTime() - deadline) < 1e-6]


def test_a_timed_out_pull_leaves_nothing_on_the_silent_track(api) -> None:
    silent = api.publish((audio("0", 9),), ("quiet",), send=False)
    done, _ = _start_pull(api, silent, ("quiet",))
    track = api.board.find("cli-app", silent, "quiet")
    assert len(track.first_packet_callbacks) == 1
    api.clock.advance(2.99)
    api.treq.flush()
    assert done == []
    api.clock.advance(0.01)                       # the 3 s deadline, to the millisecond
    api.treq.flush()
    assert done and done[0].code == 200 and track.first_packet_callbacks == []


def test_a_pull_of_a_track_that_ends_while_waiting_answers_at_once(api) -> None:
    silent = api.publish((audio("0", 9),), ("quiet",), send=False)
    done, _ = _start_pull(api, silent, ("quiet",))
    api.clock.advance(0.5)
    api.board.unpublish(api.board.find("cli-app", silent, "quiet"))
    api.clock.advance(0)
    api.treq.flush()
    assert done and done[0].code == 200
    body: list = []
    done[0].json().addCallback(body.append)
    api.treq.flush()
    assert body[0]["tracks"][0]["errorCode"] == "empty_track_error"


def test_pull_with_a_client_offer_is_answered(api) -> None:
    publisher = api.publish()
    session_id = api.session()
    offer = push_offer(audio("0", 0, "recvonly"), video("1", 0, direction="recvonly"))
    status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {
        "sessionDescription": {"type": "offer", "sdp": offer},
        "tracks": [{"location": "remote", "sessionId": publisher, "trackName": "cam"},
                   {"location": "remote", "sessionId": publisher, "trackName": "mic"}]})
    assert status == 200 and body["requiresImmediateRenegotiation"] is False
    assert [t["mid"] for t in body["tracks"]] == ["1", "0"]       # placed by kind
    answer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    assert [m.direction for m in answer.media] == ["sendonly", "sendonly"]


# -- close / update ---------------------------------------------------------------------


def test_close_forced_and_negotiated(api) -> None:
    publisher = api.publish()
    status, body = api.call("PUT", f"/sessions/{publisher}/tracks/close",
                            {"tracks": [{"mid": "0"}, {"mid": "9"}], "force": True})
    assert status == 200 and "sessionDescription" not in body
    assert body["requiresImmediateRenegotiation"] is False
    assert body["tracks"][0] == {"mid": "0"}
    assert body["tracks"][1]["errorCode"] == "close_track_error"
    status, body = api.call("PUT", f"/sessions/{publisher}/tracks/close",
                            {"tracks": [{"mid": "0"}], "force": True})
    assert body["tracks"][0]["errorDescription"] == "Track doesn't exist or was already closed"
    status, body = api.call("PUT", f"/sessions/{publisher}/tracks/close", {
        "tracks": [{"mid": "1"}], "force": False,
        "sessionDescription": {"type": "offer", "sdp": BOTH}})
    assert status == 200 and body["sessionDescription"]["type"] == "answer"
    answer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    assert [m.port for m in answer.media] == [0, 0]
    _, state = api.call("GET", f"/sessions/{publisher}")
    assert [t["status"] for t in state["tracks"]] == ["inactive", "inactive"]


def test_update_switches_tracks_and_simulcast_errors(api) -> None:
    publisher = api.publish()
    other = api.publish((video("0", 4444),), ("screen",), send=False)
    api.board.get(other).receive_media(PacketKind.RTP, rtp(4444, 1, 96, VP8_KEY), 1000.0)
    session_id, _, body = api.pull(publisher)
    offer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    api.call("PUT", f"/sessions/{session_id}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": answer_sfu_offer(offer)}})
    status, body = api.call("PUT", f"/sessions/{session_id}/tracks/update", {"tracks": [
        {"location": "remote", "mid": "1", "sessionId": other, "trackName": "screen"},
        {"location": "remote", "mid": "0", "simulcast": {"preferredRid": "h"}},
        {"location": "remote", "mid": "5", "simulcast": {"preferredRid": ""}},
        {"location": "remote", "mid": "1", "sessionId": other, "trackName": "gone"}]})
    assert status == 200 and body["requiresImmediateRenegotiation"] is False
    codes = [t.get("errorCode") for t in body["tracks"]]
    assert codes == [None, "update_track_error", "update_track_error", "not_found_track_error"]
    _, state = api.call("GET", f"/sessions/{session_id}")
    assert state["tracks"][1]["trackName"] == "screen"


# -- request-level errors -------------------------------------------------------------------


def test_unknown_gone_and_foreign_sessions(api) -> None:
    status, body = api.call("GET", f"/sessions/{'0' * 32}")
    assert (status, body["errorCode"]) == (404, "not_found")
    session_id = api.session()
    assert api.call("GET", f"/sessions/{session_id}", app=OTHER)[0] == 404
    api.clock.advance(61)                                          # never negotiated: expires
    status, body = api.call("GET", f"/sessions/{session_id}")
    assert (status, body["errorCode"]) == (410, "session_error")


def test_closed_peer_connection_is_410(api) -> None:
    publisher = api.publish()
    api.api.peers.remove(api.board.get(publisher))
    status, body = api.call("POST", f"/sessions/{publisher}/tracks/new", {"tracks": []})
    assert (status, body["errorCode"]) == (410, "session_error")


def test_unconnected_transport_is_425_after_5_s(api) -> None:
    publisher = api.publish()
    api.board.get(publisher).connection.state = "connecting"
    status, body = api.call("POST", f"/sessions/{publisher}/tracks/new", {
        "sessionDescription": {"type": "offer", "sdp": BOTH},
        "tracks": []}, wait=5.2)
    assert (status, body["errorCode"]) == (425, "session_error")


def test_rate_limit_is_429_with_an_error_code(api) -> None:
    session_id = api.session()
    statuses = [api.call("GET", f"/sessions/{session_id}")[0] for _ in range(51)]
    assert statuses[:50] == [200] * 50
    status, body = api.call("GET", f"/sessions/{session_id}")
    assert (status, body["errorCode"]) == (429, "retryable_transient_error")


@pytest.mark.parametrize(("path", "body", "status", "code"), [
    ("/tracks/new", {"tracks": [{}] * 65}, 400, "invalid_params"),
    ("/tracks/new", {"tracks": "x"}, 400, "decoding_error"),
    ("/tracks/close", {}, 400, "decoding_error"),
    ("/tracks/update", {"tracks": [1]}, 400, "decoding_error"),
    ("/renegotiate", {}, 400, "invalid_session_description"),
    ("/renegotiate", {"sessionDescription": {"type": "answer", "sdp": "v=0\r\n"}}, 400,
     "invalid_session_description"),
])
def test_request_errors(api, path, body, status, code) -> None:
    session_id = api.session()
    method = "POST" if path == "/tracks/new" else "PUT"
    got, reply = api.call(method, f"/sessions/{session_id}{path}", body)
    assert (got, reply["errorCode"]) == (status, code), reply
    assert reply["errorDescription"]


def test_garbage_collection_runs_on_the_clock(api) -> None:
    publisher = api.publish()
    session_id, _, body = api.pull(publisher)
    api.clock.advance(31)                                          # tracks silent for 31 s
    assert api.board.find("cli-app", publisher, "mic") is None
