"""
WHIP (RFC 9725) and WHEP resource rules through ``treq.testing.StubTreq`` on a Clock.

Scripted clients (tests/sfu/client.py); the real publishers and players are in
tests/interop/test_whip.py.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.task import Clock

from realtime.api.turn import TurnKeys
from realtime.demux import PacketKind
from realtime.sdp import SessionDescription
from realtime.storage import App, ServerConfig, StateStore, TurnKey
from realtime.turn.credentials import TurnKeyCredentials
from tests.api.compose import collector, compose, finish
from tests.sfu.client import CLIENT, VP8_KEY, answer_sfu_offer, audio, push_offer, rtp, video

APP = App("cli-app", "cli-secret")
OTHER = App("other-app", "other-secret")
MIC, CAM = 1111, 2222
OFFER = push_offer(audio("0", MIC), video("1", CAM))
PLAYER = push_offer(audio("0", 0, "recvonly"), video("1", 0, direction="recvonly"))
SDP = "application/sdp"
FRAG = "application/trickle-ice-sdpfrag"
KEY = TurnKey("key-1", "token-1-secret")


class Whip:
    """A RealtimeAPI on a Clock; requests with raw bodies and headers."""

    def __init__(self, store, turn=None) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        config = ServerConfig(apps=(APP, OTHER), session_burst=100_000)
        self.api = compose(store, config, self.clock, **({"turn": turn} if turn else {}))
        self.collector = collector(self.api, self.clock)
        self.treq = StubTreq(self.api.app.resource())

    def call(self, method, path, body=b"", content_type=SDP, app=APP, wait=0.0, **headers):
        """Return (status, headers, body bytes); ``path`` is absolute or under the app."""
        url = path if path.startswith("/v1") else f"/v1/apps/{app.app_id}{path}"
        if headers.pop("unprefixed", False):
            url = url[len("/v1"):]
        sent = {"Authorization": f"Bearer {app.secret}",
                **{k.replace("_", "-"): v for k, v in headers.items()}}
        if content_type:
            sent["Content-Type"] = content_type
        response, content = finish(self.treq, self.clock, self.treq.request(
            method, f"https://127.0.0.1{url}", data=body or None, headers=sent), wait)
        return response.code, response.headers, content

    def publish(self, name="cam", send=True):
        """WHIP-publish audio+video as ``name``; mark it connected; return (location, etag)."""
        status, headers, body = self.call("POST", f"/ingest/{name}", OFFER.encode())
        assert status == 201, body
        location = headers.getRawHeaders("location")[0]
        session = self.board.get(location.rsplit("/", 1)[1])
        session.connection.state = "connected"
        if send:
            session.receive_media(PacketKind.RTP, rtp(MIC, 1), self.clock.seconds())
            session.receive_media(PacketKind.RTP, rtp(CAM, 1, 96, VP8_KEY), self.clock.seconds())
        return location, headers.getRawHeaders("etag")[0]

    @property
    def board(self):
        return self.api.switchboard


@pytest.fixture
def whip(tmp_path):
    store = StateStore(tmp_path / "state.sqlite3")
    yield Whip(store)
    store.close()


def test_ingest_answers_201_with_location_etag_and_sdp(whip) -> None:
    status, headers, body = whip.call("POST", "/ingest/cam", OFFER.encode())
    assert status == 201
    location = headers.getRawHeaders("location")[0]
    assert location.startswith("/v1/apps/cli-app/ingest/cam/")
    assert headers.getRawHeaders("content-type") == [SDP]
    etag = headers.getRawHeaders("etag")[0]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    assert "location" in headers.getRawHeaders("access-control-expose-headers")[0]
    answer = SessionDescription.parse(body.decode())
    assert [m.direction for m in answer.media] == ["recvonly", "recvonly"]
    session_id = location.rsplit("/", 1)[1]
    # ordinary pushed tracks, named by kind
    assert whip.board.find(APP.app_id, session_id, "audio") is not None
    assert whip.board.find(APP.app_id, session_id, "video") is not None
    assert headers.getRawHeaders("link") is None  # no TURN service configured


def test_the_unprefixed_path_serves_too_and_locations_follow_it(whip) -> None:
    status, headers, _ = whip.call("POST", "/v1/apps/cli-app/ingest/x", OFFER.encode(),
                                   unprefixed=True)
    assert status == 201
    assert headers.getRawHeaders("location")[0].startswith("/apps/cli-app/ingest/x/")


def test_wrong_content_type_is_415_and_bad_sdp_400(whip) -> None:
    status, _, body = whip.call("POST", "/ingest/cam", OFFER.encode(), "application/json")
    assert status == 415 and b"unsupported_media_type" in body
    status, _, body = whip.call("POST", "/ingest/cam", b"v=0\r\nnonsense", SDP)
    assert status == 400 and b"invalid_session_description" in body
    status, _, _ = whip.call("POST", "/ingest/cam", b"\xff\xfe", SDP)
    assert status == 400
    status, _, _ = whip.call("POST", "/ingest/cam", PLAYER.encode(), SDP)  # sends nothing
    assert status == 400


def test_bearer_token_is_required(whip) -> None:
    status, _, _ = whip.call("POST", "/ingest/cam", OFFER.encode(),
                             app=App(APP.app_id, "wrong"))
    assert status == 401


def test_one_live_publisher_per_stream(whip) -> None:
    location, _ = whip.publish("cam")
    status, _, body = whip.call("POST", "/ingest/cam", OFFER.encode())
    assert status == 409, body
    assert whip.call("POST", "/ingest/other", OFFER.encode())[0] == 201
    assert whip.call("DELETE", location, content_type=None)[0] == 200
    assert whip.call("POST", "/ingest/cam", OFFER.encode())[0] == 201


def test_delete_ends_the_session_and_twice_is_404(whip) -> None:
    location, _ = whip.publish()
    session_id = location.rsplit("/", 1)[1]
    status, _, _ = whip.call("DELETE", location, content_type=None)
    assert status == 200
    assert whip.board.get(session_id) is None
    assert whip.board.find(APP.app_id, session_id, "video") is None
    status, _, body = whip.call("DELETE", location, content_type=None)
    assert status == 404 and b"not_found" in body


def test_another_apps_or_streams_resource_is_404(whip) -> None:
    location, _ = whip.publish()
    session_id = location.rsplit("/", 1)[1]
    assert whip.call("DELETE", f"/ingest/other/{session_id}", content_type=None)[0] == 404
    assert whip.call("DELETE", f"/play/cam/{session_id}", content_type=None)[0] == 404
    assert whip.call("DELETE", f"/ingest/cam/{session_id}", content_type=None,
                     app=OTHER)[0] == 404
    assert whip.call("DELETE", "/ingest/cam/nope", content_type=None)[0] == 404


def test_methods_the_urls_do_not_take_are_405(whip) -> None:
    location, _ = whip.publish()
    assert whip.call("GET", "/ingest/cam", content_type=None)[0] == 405
    assert whip.call("PUT", location, OFFER.encode())[0] == 405
    assert whip.call("POST", location, OFFER.encode())[0] == 405


def test_options_is_a_cors_preflight_allowing_patch_and_delete(whip) -> None:
    location, _ = whip.publish()
    for path in ("/ingest/cam", location):
        status, headers, _ = whip.call("OPTIONS", path, content_type=None,
                                       Origin="https://player.example")
        assert status == 204
        methods = headers.getRawHeaders("access-control-allow-methods")[0]
        assert "PATCH" in methods and "DELETE" in methods
        assert "if-match" in headers.getRawHeaders("access-control-allow-headers")[0]


def test_trickle_is_204_and_a_stale_if_match_412(whip) -> None:
    location, etag = whip.publish()
    fragment = (b"a=ice-ufrag:clientufrag\r\na=ice-pwd:clientpassword0123456789\r\n"
                b"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
                b"a=candidate:1 1 udp 2130706431 127.0.0.1 50001 typ host\r\n")
    status, _, body = whip.call("PATCH", location, fragment, FRAG, If_Match=etag)
    assert status == 204 and body == b""
    status, _, body = whip.call("PATCH", location, fragment, FRAG, If_Match='"stale"')
    assert status == 412
    status, _, _ = whip.call("PATCH", location, fragment, SDP, If_Match=etag)
    assert status == 415   # a WHIP resource takes no SDP


def test_ice_restart_answers_our_new_credentials_and_a_new_etag(whip) -> None:
    location, etag = whip.publish()
    session = whip.board.get(location.rsplit("/", 1)[1])
    old_ufrag = session.ice.local_ufrag
    fragment = (b"a=ice-ufrag:newufrag\r\na=ice-pwd:newpassword012345678901\r\n"
                b"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n")
    status, headers, body = whip.call("PATCH", location, fragment, FRAG, If_Match="*")
    assert status == 200
    assert headers.getRawHeaders("content-type") == [FRAG]
    new_etag = headers.getRawHeaders("etag")[0]
    assert new_etag != etag
    text = body.decode()
    assert session.ice.local_ufrag != old_ufrag
    assert f"a=ice-ufrag:{session.ice.local_ufrag}" in text
    assert f"a=ice-pwd:{session.ice.local_pwd}" in text and "a=candidate:" in text
    assert session.ice.remote_ufrag == "newufrag"
    assert whip.api.peers.demux.session_for_ufrag(session.ice.local_ufrag) is session
    assert whip.call("PATCH", location, fragment, FRAG, If_Match=etag)[0] == 412
    for bad in (b"a=ice-ufrag:\xc3\xbc \xc3\xbc\r\na=ice-pwd:x\r\n",
                b"a=ice-ufrag:abcd\r\na=ice-pwd:short\r\n", b"a=ice-ufrag:abcd\r\n"):
        assert whip.call("PATCH", location, bad, FRAG)[0] == 400, bad
    assert session.ice.remote_ufrag == "newufrag"


def test_whep_answers_a_players_offer_with_the_streams_tracks(whip) -> None:
    whip.publish("cam")
    status, headers, body = whip.call("POST", "/play/cam", PLAYER.encode(), wait=1)
    assert status == 201, body
    assert headers.getRawHeaders("location")[0].startswith("/v1/apps/cli-app/play/cam/")
    answer = SessionDescription.parse(body.decode())
    assert [m.direction for m in answer.media] == ["sendonly", "sendonly"]


def test_whep_server_offer_is_answered_by_patch(whip) -> None:
    whip.publish("cam")
    status, headers, body = whip.call("POST", "/play/cam", b"", content_type=None, wait=1)
    assert status == 201, body
    assert headers.getRawHeaders("content-type") == [SDP]
    offer = SessionDescription.parse(body.decode())
    assert sorted(m.kind for m in offer.media) == ["audio", "video"]
    assert all(m.direction == "sendonly" for m in offer.media)
    location = headers.getRawHeaders("location")[0]
    etag = headers.getRawHeaders("etag")[0]
    answer = answer_sfu_offer(offer).encode()
    status, _, _ = whip.call("PATCH", location, answer, SDP, If_Match=etag)
    assert status == 204
    session = whip.board.get(location.rsplit("/", 1)[1])
    assert session.pending_offer is None and session.connection is not None
    assert whip.call("PATCH", location, answer, SDP)[0] == 400   # no offer pending now


def test_whep_plays_a_session_pushed_through_the_sessions_api(whip) -> None:
    publisher = whip.api.sessions
    status, _, body = whip.call("POST", "/sessions/new", b"", content_type=None)
    session_id = json.loads(body)["sessionId"]
    status, _, body = whip.call("POST", f"/sessions/{session_id}/tracks/new", json.dumps({
        "sessionDescription": {"type": "offer", "sdp": OFFER},
        "tracks": [{"location": "local", "mid": "0", "trackName": "mic"},
                   {"location": "local", "mid": "1", "trackName": "cam"}]}).encode(),
        "application/json")
    assert status == 200, body
    session = publisher.switchboard.get(session_id)
    session.connection.state = "connected"
    session.receive_media(PacketKind.RTP, rtp(MIC, 1), whip.clock.seconds())
    session.receive_media(PacketKind.RTP, rtp(CAM, 1, 96, VP8_KEY), whip.clock.seconds())
    status, _, body = whip.call("POST", f"/play/{session_id}", PLAYER.encode(), wait=1)
    assert status == 201, body
    assert whip.call("POST", f"/play/{session_id}", PLAYER.encode(), app=OTHER)[0] == 404


def test_whip_tracks_can_be_pulled_through_the_sessions_api(whip) -> None:
    location, _ = whip.publish("cam")
    publisher = location.rsplit("/", 1)[1]
    _, _, body = whip.call("POST", "/sessions/new", b"", content_type=None)
    session_id = json.loads(body)["sessionId"]
    status, _, body = whip.call("POST", f"/sessions/{session_id}/tracks/new", json.dumps({
        "tracks": [{"location": "remote", "sessionId": publisher, "trackName": name}
                   for name in ("audio", "video")]}).encode(), "application/json", wait=1)
    assert status == 200, body
    assert all("errorCode" not in t for t in json.loads(body)["tracks"])


def test_whep_of_an_unknown_or_silent_stream_is_404(whip) -> None:
    assert whip.call("POST", "/play/nobody", PLAYER.encode())[0] == 404
    whip.publish("quiet", send=False)
    assert whip.call("POST", "/play/quiet", PLAYER.encode(), wait=4)[0] == 404


def test_ice_server_links_carry_a_fresh_turn_credential(tmp_path) -> None:
    store = StateStore(tmp_path / "s.sqlite3")
    turn = TurnKeys(store, [KEY], TurnKeyCredentials({KEY.key_id: KEY.token}))
    whip = Whip(store, turn)
    turn.set_urls("203.0.113.9", 3478, 5349)
    status, headers, _ = whip.call("POST", "/ingest/cam", OFFER.encode())
    assert status == 201
    links = headers.getRawHeaders("link")
    assert links[0] == '<stun:203.0.113.9:3478>; rel="ice-server"'
    relay = [link for link in links if link.startswith("<turn:203.0.113.9:3478?transport=udp>")]
    assert len(relay) == 1 and 'username="' in relay[0] and 'credential="' in relay[0]
    username = relay[0].split('username="')[1].split('"')[0]

    found = turn.credentials.credential(username, "realm", whip.clock.seconds() + 3600)
    assert found is not None
    store.close()


def test_restart_credentials_routing_keeps_old_client_working(whip) -> None:
    """The client's old ufrag in the fragment is no restart: 204, nothing changes."""
    location, etag = whip.publish()
    session = whip.board.get(location.rsplit("/", 1)[1])
    before = session.ice.local_ufrag
    fragment = f"a=ice-ufrag:{CLIENT.ice_ufrag}\r\na=ice-pwd:{CLIENT.ice_pwd}\r\n".encode()
    assert whip.call("PATCH", location, fragment, FRAG, If_Match=etag)[0] == 204
    assert session.ice.local_ufrag == before


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
       content_type=st.sampled_from([SDP, FRAG, "text/plain", ""]),
       target=st.sampled_from(["POST ingest", "POST play", "PATCH ingest", "PATCH play"]))
def test_hostile_bodies_never_cause_a_server_error(whip, body, content_type, target) -> None:
    """Any bytes, any type, on every WHIP/WHEP body: 2xx/4xx, never 500."""
    if not hasattr(whip, "resources"):
        ingest, _ = whip.publish("hostile")
        _, headers, _ = whip.call("POST", "/play/hostile", b"", content_type=None, wait=1)
        whip.resources = {"play": headers.getRawHeaders("location")[0], "ingest": ingest}
    method, kind = target.split()
    path = f"/{kind}/fuzzed" if method == "POST" else whip.resources[kind]
    status, _, _ = whip.call(method, path, body, content_type or None)
    assert status < 500, (status, body)
