"""
The DataChannel routes through ``treq.testing.StubTreq``: no sockets, a ``task.Clock``.

Sessions get a real PeerConnection (never connected here), so channels
stay ``initializing``; what travels on them is tested in
tests/sfu/test_datachannels.py.  One test per route, flow of docs/cloudflare-api.md
§2.3/§2.6 and per-item error.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from realtime.sdp import SessionDescription
from realtime.sdp.offer import MediaOffer
from tests.api.test_sessions import OTHER, Api
from tests.sfu.client import answer_sfu_offer, audio, push_offer

SERVER_EVENTS = {"dataChannel": {"location": "remote", "dataChannelName": "server-events"}}
APPLICATION_OFFER = push_offer(MediaOffer("0", "application"))


@pytest.fixture
def api(tmp_path):
    from realtime.storage import StateStore
    store = StateStore(tmp_path / "state.sqlite3")
    yield Api(store)
    store.close()


def establish(api: Api, session_id: str | None = None) -> str:
    """Run the current echo-datachannels lifecycle: establish, answer, renegotiate."""
    session_id = session_id or api.session()
    status, body = api.call("POST", f"/sessions/{session_id}/datachannels/establish",
                            SERVER_EVENTS)
    assert status == 200, body
    offer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    status, reply = api.call("PUT", f"/sessions/{session_id}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": answer_sfu_offer(offer)}})
    assert (status, reply) == (200, {})
    return session_id


def new(api: Api, session_id: str, *items: dict) -> list[dict]:
    status, body = api.call("POST", f"/sessions/{session_id}/datachannels/new",
                            {"dataChannels": list(items)})
    assert status == 200, body
    return body["dataChannels"]


def state(api: Api, session_id: str) -> list[dict]:
    status, body = api.call("GET", f"/sessions/{session_id}")
    assert status == 200
    return body["dataChannels"]


# -- establish -----------------------------------------------------------------------------


def test_establish_without_offer_returns_an_sfu_offer(api) -> None:
    session_id = api.session()
    status, body = api.call("POST", f"/sessions/{session_id}/datachannels/establish",
                            SERVER_EVENTS)
    assert status == 200
    assert body["requiresImmediateRenegotiation"] is True
    assert body["dataChannel"] == {"location": "remote", "dataChannelName": "server-events",
                                   "id": 1}
    assert body["sessionDescription"]["type"] == "offer"
    offer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    [media] = offer.media
    assert (media.kind, media.mid, media.max_message_size) == ("application", "0", 262144)
    assert (media.protocol, media.formats) == ("UDP/DTLS/SCTP", ("webrtc-datachannel",))
    status, reply = api.call("POST", f"/sessions/{session_id}/datachannels/new", {
        "dataChannels": [{"location": "local", "dataChannelName": "chat"}]})
    assert (status, reply["errorCode"]) == (400, "session_error")
    assert "PUT renegotiate" in reply["errorDescription"]


def test_establish_with_offer_returns_an_answer(api) -> None:
    session_id = api.session()
    status, body = api.call("POST", f"/sessions/{session_id}/datachannels/establish", {
        **SERVER_EVENTS, "sessionDescription": {"type": "offer", "sdp": APPLICATION_OFFER}})
    assert status == 200, body
    assert body["requiresImmediateRenegotiation"] is False
    assert body["dataChannel"]["id"] == 0
    answer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    assert body["sessionDescription"]["type"] == "answer"
    assert answer.media[0].kind == "application" and answer.media[0].port != 0
    assert new(api, session_id, {"location": "local", "dataChannelName": "chat"})[0]["id"] == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"dataChannel": {"location": "remote", "dataChannelName": "chat"}}, 400, "invalid_params"),
    ({"dataChannel": "server-events"}, 400, "invalid_params"),
    ({**SERVER_EVENTS, "sessionDescription": {"type": "offer", "sdp": "v=0\r\n"}}, 400,
     "invalid_session_description"),
    ({**SERVER_EVENTS, "sessionDescription": {"type": "offer",
                                              "sdp": push_offer(audio("0", 5))}}, 400,
     "invalid_session_description"),
])
def test_establish_errors(api, body, status, code) -> None:
    session_id = api.session()
    got, reply = api.call("POST", f"/sessions/{session_id}/datachannels/establish", body)
    assert (got, reply["errorCode"]) == (status, code), reply


def test_establish_twice_or_while_an_offer_is_pending(api) -> None:
    session_id = api.session()
    api.call("POST", f"/sessions/{session_id}/datachannels/establish", SERVER_EVENTS)
    status, reply = api.call("POST", f"/sessions/{session_id}/datachannels/establish",
                             SERVER_EVENTS)
    assert (status, reply["errorCode"]) == (406, "session_error")
    establish(api, api.session())
    done = establish(api)
    status, reply = api.call("POST", f"/sessions/{done}/datachannels/establish", SERVER_EVENTS)
    assert (status, reply["errorCode"]) == (400, "decoding_error")


def test_establish_with_an_empty_body_pulls_server_events(api) -> None:
    session_id = api.session()
    status, body = api.call("POST", f"/sessions/{session_id}/datachannels/establish")
    assert status == 200 and body["dataChannel"]["dataChannelName"] == "server-events"


# -- new -------------------------------------------------------------------------------------


def test_publish_then_subscribe_allocates_per_session_ids(api) -> None:
    publisher, subscriber = establish(api), establish(api)
    local = new(api, publisher, {"location": "local", "dataChannelName": "chat"},
                {"location": "local", "dataChannelName": "state", "ordered": False,
                 "maxRetransmits": 0})
    assert local == [
        {"location": "local", "dataChannelName": "chat", "id": 3},  # 1 is server-events
        {"location": "local", "dataChannelName": "state", "ordered": False,
         "maxRetransmits": 0, "id": 5}]
    remote = new(api, subscriber, {"location": "remote", "sessionId": publisher,
                                   "dataChannelName": "state", "ordered": False,
                                   "maxRetransmits": 0})
    assert remote == [{"location": "remote", "sessionId": publisher, "dataChannelName": "state",
                       "ordered": False, "maxRetransmits": 0, "id": 3}]
    session = api.board.get(subscriber)
    channel = session.connection.sctp.channels.get(3).channel
    assert (channel.negotiated, channel.ordered, channel.max_retransmits) == (True, False, 0)
    assert state(api, publisher) == [
        {"location": "local", "dataChannelName": "chat", "id": 3, "status": "initializing"},
        {"location": "local", "dataChannelName": "state", "id": 5, "status": "initializing"}]
    assert state(api, subscriber) == [
        {"location": "remote", "sessionId": publisher, "dataChannelName": "state", "id": 3,
         "status": "initializing"}]


def test_older_lifecycle_offer_in_sessions_new(api) -> None:
    status, body = api.call("POST", "/sessions/new", {
        "sessionDescription": {"type": "offer", "sdp": APPLICATION_OFFER}})
    assert status == 201
    publisher = body["sessionId"]
    [item] = new(api, publisher, {"location": "local", "dataChannelName": "chat"})
    assert item["id"] == 1 and isinstance(item["id"], int) and 0 <= item["id"] < 65536


@pytest.mark.parametrize(("item", "code", "description"), [
    ({"location": "local"}, "invalid_params",
     "dataChannelName must be a string of 1 to 1024 characters"),
    ({"location": "local", "dataChannelName": ""}, "invalid_params",
     "dataChannelName must be a string of 1 to 1024 characters"),
    ({"location": "local", "dataChannelName": "x" * 1025}, "invalid_params",
     "dataChannelName must be a string of 1 to 1024 characters"),
    ({"location": "local", "dataChannelName": "c", "ordered": "no"}, "invalid_params",
     "ordered must be a boolean"),
    ({"location": "local", "dataChannelName": "c", "maxRetransmits": -1}, "invalid_params",
     "maxRetransmits must be an integer from 0 to 65535"),
    ({"location": "local", "dataChannelName": "c", "maxPacketLifeTime": True}, "invalid_params",
     "maxPacketLifeTime must be an integer from 0 to 65535"),
    ({"location": "local", "dataChannelName": "c", "maxRetransmits": 1,
      "maxPacketLifeTime": 1}, "invalid_params",
     "maxRetransmits and maxPacketLifeTime are mutually exclusive"),
    ({"location": "elsewhere", "dataChannelName": "c"}, "invalid_params",
     'location must be "local" or "remote"'),
    ({"location": "remote", "dataChannelName": "c", "sessionId": "0" * 32},
     "not_found_track_error",
     "DataChannel not found: check the publisher's sessionId and dataChannelName"),
    ({"location": "remote", "dataChannelName": "c", "sessionId": 7},
     "not_found_track_error",
     "DataChannel not found: check the publisher's sessionId and dataChannelName"),
    ({"location": "remote", "dataChannelName": "c", "sessionId": "PUB", "canReply": 1},
     "invalid_params", "canReply must be a boolean"),
    ({"location": "remote", "dataChannelName": "c", "sessionId": "PUB", "waitForAck": "y"},
     "invalid_params", "waitForAck must be a boolean"),
    ({"location": "remote", "dataChannelName": "nope", "sessionId": "PUB"},
     "not_found_track_error",
     "DataChannel not found: check the publisher's sessionId and dataChannelName"),
    ({"location": "remote", "dataChannelName": "c", "sessionId": "PUB"},
     "repeated_local_track_error", "This DataChannel allocation already exists"),
    ({"location": "local", "dataChannelName": "mine"},
     "repeated_local_track_error", "This DataChannel allocation already exists"),
])
def test_per_item_errors_keep_the_rest(api, item, code, description) -> None:
    publisher, subscriber = establish(api), establish(api)
    new(api, publisher, {"location": "local", "dataChannelName": "c"})
    new(api, subscriber, {"location": "local", "dataChannelName": "mine"},
        {"location": "remote", "dataChannelName": "c", "sessionId": publisher})
    if item.get("sessionId") == "PUB":
        item = {**item, "sessionId": publisher}
    failed, good = new(api, subscriber, item,
                       {"location": "local", "dataChannelName": "fine"})
    assert (failed["errorCode"], failed["errorDescription"]) == (code, description)
    assert "id" not in failed and good["id"] == 7


def test_channels_of_another_app_are_not_found(api) -> None:
    publisher = establish(api)
    new(api, publisher, {"location": "local", "dataChannelName": "chat"})
    status, body = api.call("POST", "/sessions/new", app=OTHER)
    other = body["sessionId"]
    status, body = api.call("POST", f"/sessions/{other}/datachannels/establish", SERVER_EVENTS,
                            app=OTHER)
    api.call("PUT", f"/sessions/{other}/renegotiate", {"sessionDescription": {
        "type": "answer", "sdp": answer_sfu_offer(
            SessionDescription.parse(body["sessionDescription"]["sdp"]))}}, app=OTHER)
    status, body = api.call("POST", f"/sessions/{other}/datachannels/new", {"dataChannels": [
        {"location": "remote", "sessionId": publisher, "dataChannelName": "chat"}]}, app=OTHER)
    assert body["dataChannels"][0]["errorCode"] == "not_found_track_error"


@pytest.mark.parametrize(("path", "method", "body", "code"), [
    ("/datachannels/new", "POST", {"dataChannels": [{}] * 65}, "invalid_params"),
    ("/datachannels/new", "POST", {"dataChannels": "x"}, "decoding_error"),
    ("/datachannels/new", "POST", {}, "decoding_error"),
    ("/datachannels/update", "PUT", {"dataChannels": [1]}, "decoding_error"),
    ("/datachannels/close", "PUT", {}, "decoding_error"),
    ("/datachannels/new", "POST", {"dataChannels": []}, "session_error"),
])
def test_request_errors(api, path, method, body, code) -> None:
    session_id = api.session()
    status, reply = api.call(method, f"/sessions/{session_id}{path}", body)
    assert (status, reply["errorCode"]) == (400, code), reply
    assert reply["errorDescription"]


def test_a_session_without_application_section_has_no_transport(api) -> None:
    publisher = api.publish()
    status, reply = api.call("POST", f"/sessions/{publisher}/datachannels/new", {
        "dataChannels": [{"location": "local", "dataChannelName": "chat"}]})
    assert (status, reply["errorCode"]) == (400, "session_error")
    assert "datachannels/establish" in reply["errorDescription"]


# -- update and close ------------------------------------------------------------------------


def test_update_grants_can_reply_to_one_subscriber(api) -> None:
    publisher, first, second = establish(api), establish(api), establish(api)
    new(api, publisher, {"location": "local", "dataChannelName": "chat"})
    for subscriber in (first, second):
        new(api, subscriber, {"location": "remote", "sessionId": publisher,
                              "dataChannelName": "chat"})
    item = {"location": "remote", "sessionId": publisher, "dataChannelName": "chat",
            "canReply": True}
    for subscriber in (first, second):
        status, body = api.call("PUT", f"/sessions/{subscriber}/datachannels/update",
                                {"dataChannels": [item]})
        assert status == 200 and body["dataChannels"] == [{**item, "id": 3}]
    chat = api.board.get(publisher).datachannels.published("chat")
    assert chat.replier.session is api.board.get(second)
    status, body = api.call("PUT", f"/sessions/{first}/datachannels/update", {"dataChannels": [
        {**item, "dataChannelName": "other"}, {"location": "local", "dataChannelName": "x"}]})
    assert [i["errorCode"] for i in body["dataChannels"]] == ["not_found_track_error"] * 2


def test_close_by_id_cascades_and_lists_inactive(api) -> None:
    publisher, subscriber = establish(api), establish(api)
    new(api, publisher, {"location": "local", "dataChannelName": "chat"})
    new(api, subscriber, {"location": "remote", "sessionId": publisher,
                          "dataChannelName": "chat"})
    status, body = api.call("PUT", f"/sessions/{publisher}/datachannels/close",
                            {"dataChannels": [{"id": 3}, {"id": 3}, {"id": "3"}]})
    assert status == 200
    assert body["dataChannels"] == [
        {"location": "local", "dataChannelName": "chat", "id": 3},
        {"id": 3, "errorCode": "close_track_error",
         "errorDescription": "DataChannel doesn't exist or was already closed"},
        {"errorCode": "close_track_error",  # "3" is not a number: not echoed
         "errorDescription": "DataChannel doesn't exist or was already closed"}]
    assert state(api, publisher)[0]["status"] == "inactive"
    assert state(api, subscriber) == [
        {"location": "remote", "sessionId": publisher, "dataChannelName": "chat", "id": 3,
         "status": "inactive"}]
    status, body = api.call("POST", f"/sessions/{subscriber}/datachannels/new", {
        "dataChannels": [{"location": "remote", "sessionId": publisher,
                          "dataChannelName": "chat"}]})
    assert body["dataChannels"][0]["errorCode"] == "not_found_track_error"


def test_closing_a_subscription_leaves_the_publication(api) -> None:
    publisher, subscriber = establish(api), establish(api)
    new(api, publisher, {"location": "local", "dataChannelName": "chat"})
    [item] = new(api, subscriber, {"location": "remote", "sessionId": publisher,
                                   "dataChannelName": "chat"})
    status, body = api.call("PUT", f"/sessions/{subscriber}/datachannels/close",
                            {"dataChannels": [{"id": item["id"]}]})
    assert body["dataChannels"] == [{"location": "remote", "sessionId": publisher,
                                     "dataChannelName": "chat", "id": item["id"]}]
    assert state(api, publisher)[0]["status"] == "initializing"
    assert api.board.get(publisher).datachannels.published("chat").subscribers == []


# -- hostile items ---------------------------------------------------------------------------

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.text(max_size=8),
                    st.lists(st.integers(), max_size=2))
_ITEMS = st.dictionaries(st.sampled_from(
    ["location", "sessionId", "dataChannelName", "ordered", "maxRetransmits",
     "maxPacketLifeTime", "canReply", "waitForAck", "id"]), _VALUES, max_size=6)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(_ITEMS, max_size=4), route=st.sampled_from(
    [("POST", "new"), ("PUT", "update"), ("PUT", "close")]))
def test_hostile_items_get_an_id_or_an_error_never_a_5xx(api, items, route) -> None:
    if not hasattr(api, "established"):
        api.established = establish(api)
    method, path = route
    api.api.sessions.rate_limiter.forget(api.established)  # stay under 50 calls per second
    status, body = api.call(method, f"/sessions/{api.established}/datachannels/{path}",
                            {"dataChannels": items})
    assert status == 200, body
    assert len(body["dataChannels"]) == len(items)
    for item in body["dataChannels"]:
        succeeded = "errorCode" not in item
        assert succeeded == (type(item.get("id")) is int and "dataChannelName" in item), item
        assert succeeded or item["errorDescription"]
