"""
``GET /v1/apps/{appId}/usage`` through StubTreq on a Clock, and the periodic flush.

Sessions and tracks are made through the real routes (tests/api/test_sessions.py's
:class:`Api`); wire counters of a PeerConnection are bumped directly (the hooks
themselves are tested in tests/sfu/test_usage.py).
"""

from __future__ import annotations

import pytest
from twisted.logger import globalLogPublisher

from realtime.api.usage import PRUNE_INTERVAL, SfuUsage
from realtime.demux import PacketKind
from realtime.net.usage_flush import INTERVAL, UsageFlush
from realtime.sdp import SessionDescription
from realtime.srtp.context import InboundSrtpContext, OutboundSrtpContext, SrtpSession
from realtime.storage import App, StateStore
from tests.api.test_sessions import APP, MIC, OTHER, Api
from tests.sfu.client import answer_sfu_offer, rtp

MINUTE = 960  # the clock starts at 1000 s: 1970-01-01T00:16:40Z, in minute 00:16


@pytest.fixture
def api(tmp_path):
    store = StateStore(tmp_path / "state.sqlite3")
    yield Api(store)
    store.close()


def wire(api, session_id, received, sent, packets=(1, 1)):
    """Count ``received``/``sent`` wire bytes on a session's PeerConnection."""
    connection = api.board.get(session_id).connection
    connection.bytes_received += received
    connection.bytes_sent += sent
    connection.packets_received += packets[0]
    connection.packets_sent += packets[1]


def usage(api, query="", app=APP):
    return api.call("GET", "/usage" + query, app=app)


def subscribe(api, publisher, names=("mic",)) -> str:
    """Pull ``names`` of ``publisher`` on a new session and answer the SFU's offer."""
    session_id, status, body = api.pull(publisher, names=names)
    assert status == 200, body
    offer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    status, _ = api.call("PUT", f"/sessions/{session_id}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": answer_sfu_offer(offer)}})
    assert status == 200
    connect(api, session_id)
    return session_id


def connect(api, session_id: str) -> None:
    """Make ``session_id``'s PeerConnection look connected: SRTP keys (zeros) and a path.

    The SFU forwards to, and counts egress for, connected subscribers only.
    """
    connection = api.board.get(session_id).connection
    profile, key, salt = "SRTP_AES128_CM_SHA1_80", bytes(16), bytes(14)
    connection.srtp = SrtpSession(InboundSrtpContext(profile, key, salt),
                                  OutboundSrtpContext(profile, key, salt))
    connection.ice._selected = ("192.0.2.99", 9)  # as if ICE had nominated this pair
    connection.state = "connected"


def test_totals_are_the_sessions_wire_bytes_per_minute(api) -> None:
    publisher = api.publish()                    # sessions made before the first query count too
    subscriber = subscribe(api, publisher)
    wire(api, publisher, 1000, 100)
    wire(api, subscriber, 50, 700, (1, 7))
    status, body = usage(api)
    assert status == 200
    assert body == {
        "appId": APP.app_id, "since": 1060.0 - 86400, "until": 1060.0,
        "ingressBytes": 1050, "egressBytes": 800, "ingressPackets": 2, "egressPackets": 8,
        "series": [{"minute": "1970-01-01T00:16:00Z", "ingressBytes": 1050, "egressBytes": 800,
                    "ingressPackets": 2, "egressPackets": 8}],
    }
    api.clock.advance(120)                       # two minutes later
    wire(api, publisher, 1, 2)
    status, body = usage(api)
    assert [p["minute"] for p in body["series"]] == ["1970-01-01T00:16:00Z",
                                                     "1970-01-01T00:18:00Z"]
    assert (body["ingressBytes"], body["egressBytes"]) == (1051, 802)
    assert usage(api, app=OTHER)[1]["series"] == []          # another app sees none of it


def test_session_filter_adds_the_tracks_it_published(api) -> None:
    publisher = api.publish()                    # one packet of 32 bytes per track
    subscriber = subscribe(api, publisher)
    api.board.get(publisher).receive_media(PacketKind.RTP, rtp(MIC, 2), api.clock.seconds())
    wire(api, publisher, 10, 20)
    status, body = usage(api, f"?sessionId={publisher}")
    assert status == 200 and body["sessionId"] == publisher
    assert (body["ingressBytes"], body["egressBytes"]) == (10, 20)
    assert body["tracks"] == [
        {"trackName": "cam", "ingressBytes": 32, "egressBytes": 0, "ingressPackets": 1,
         "egressPackets": 0},
        # forwarded once to the subscriber, with its MID header extension block
        # (RFC 8285 §4.2: 4-byte 0xBEDE header + id/len byte + "0" + 2 padding = 8 bytes)
        {"trackName": "mic", "ingressBytes": 64, "egressBytes": 32 + 8, "ingressPackets": 2,
         "egressPackets": 1},
    ]
    status, body = usage(api, f"?sessionId={subscriber}")
    assert body["tracks"] == [] and body["ingressBytes"] == 0
    status, body = usage(api, "?trackName=mic")             # any session's "mic"
    assert (body["trackName"], body["ingressBytes"], body["egressBytes"]) == ("mic", 64, 40)
    assert "tracks" not in body and "sessionId" not in body
    status, body = usage(api, f"?sessionId={subscriber}&trackName=mic")
    assert body["series"] == []


def test_window_since_until_in_unix_seconds_or_iso(api) -> None:
    publisher = api.publish(send=False)
    wire(api, publisher, 1, 1)                   # minute 00:16
    usage(api)                                   # a query flushes: counted in minute 00:16
    api.clock.advance(180)
    wire(api, publisher, 2, 2)                   # minute 00:19
    total = lambda q: usage(api, q)[1]["ingressBytes"]   # noqa: E731
    assert total("") == 3
    assert total("?since=1000") == 3             # the minute containing since counts
    assert total("?since=1019") == 3
    assert total("?since=1020") == 2             # minute 00:17 on
    assert total("?since=1080") == 2
    assert total("?until=1140") == 1             # until is exclusive: minute 00:19 starts at 1140
    assert total("?until=1141") == 3
    assert total("?since=1970-01-01T00:19:00Z") == 2
    assert total("?since=1970-01-01T00:00:00%2B00:00&until=1970-01-01T00:17:00Z") == 1
    assert total("?since=0&until=0") == 0


@pytest.mark.parametrize(("query", "message"), [
    ("?since=yesterday", "since must be unix seconds or an ISO 8601 time"),
    ("?until=nan", "until must be unix seconds or an ISO 8601 time"),
    ("?since=inf", "since must be unix seconds or an ISO 8601 time"),
    ("?until=1e300", "until must be unix seconds or an ISO 8601 time"),
    ("?since=1e13", "since must be unix seconds or an ISO 8601 time"),
    ("?since=2024-13-01", "since must be unix seconds or an ISO 8601 time"),
    ("?since=2000&until=1000", "since must not be after until"),
    ("?sessionId=" + "a" * 1025, "sessionId must be at most 1024 characters"),
    ("?trackName=" + "b" * 1025, "trackName must be at most 1024 characters"),
])
def test_bad_parameters_are_400_invalid_params(api, query, message) -> None:
    status, body = usage(api, query)
    assert (status, body) == (400, {"errorCode": "invalid_params", "errorDescription": message})


def test_authentication(api) -> None:
    assert usage(api, app=App(APP.app_id, "wrong-secret"))[0] == 401
    assert usage(api, app=App("no-such-app", "any-secret"))[0] == 401  # ids not enumerable
    assert api.call("GET", "/usage", prefix="/apps")[0] == 200


# -- flushing and persistence --------------------------------------------------------------


def test_flush_every_interval_and_on_stop_survives_restart(tmp_path) -> None:
    path = tmp_path / "state.sqlite3"
    store = StateStore(path)
    first = Api(store)
    flush = UsageFlush(first.api.usage.flush, first.clock)
    flush.startService()
    publisher = first.publish(send=False)
    wire(first, publisher, 100, 200)
    first.clock.advance(INTERVAL - 0.001)
    assert store.sfu_usage(APP.app_id, 0, 10_000) == []
    first.clock.advance(0.001)
    assert store.sfu_usage(APP.app_id, 0, 10_000) == [(MINUTE, 100, 200, 1, 1)]
    wire(first, publisher, 5, 6)                 # counted after the last periodic flush
    flush.stopService()
    assert not first.clock.getDelayedCalls() or all(
        c.func is not flush.run for c in first.clock.getDelayedCalls())
    store.close()

    store = StateStore(path)                     # a restart: a new process, the same file
    second = Api(store)
    second.clock.advance(5)
    status, body = usage(second, f"?sessionId={publisher}")
    assert (body["ingressBytes"], body["egressBytes"]) == (105, 206)
    store.close()


class FailingOnce:
    """A store whose first add_sfu_usage fails (a locked or full database)."""

    def __init__(self, store) -> None:
        self.store, self.failed = store, False

    def __getattr__(self, name):
        return getattr(self.store, name)

    def add_sfu_usage(self, rows) -> None:
        if not self.failed:
            self.failed = True
            raise OSError("disk full")
        self.store.add_sfu_usage(rows)


def test_a_failed_flush_is_logged_and_its_counts_retried(api) -> None:
    events: list = []
    globalLogPublisher.addObserver(events.append)
    try:
        publisher = api.publish(send=False)
        usage_ = api.api.usage
        usage_.store = FailingOnce(usage_.store)
        wire(api, publisher, 7, 8)
        flush = UsageFlush(usage_.flush, api.clock)
        flush.run()                              # fails: logged, not raised
        assert any("usage flush failed" in str(e.get("log_format")) for e in events)
        flush.run()
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert api.api.store.sfu_usage(APP.app_id, 0, 10_000) == [(MINUTE, 7, 8, 1, 1)]


def test_old_usage_is_pruned_hourly(tmp_path) -> None:
    store = StateStore(tmp_path / "db")
    store.add_sfu_usage([("app", "s", "", 0, 1, 1, 1, 1), ("app", "s", "", 7200, 2, 2, 2, 2)])
    usage_ = SfuUsage(store, retention=3600)
    usage_.flush(7200)                           # keeps minutes from 3600 on
    assert store.sfu_usage("app", 0, 10_000) == [(7200, 2, 2, 2, 2)]
    store.add_sfu_usage([("app", "s", "", 3700, 3, 3, 3, 3)])
    usage_.flush(7200 + PRUNE_INTERVAL - 1)      # not yet an hour since the last prune
    assert len(store.sfu_usage("app", 0, 100_000)) == 2
    usage_.flush(7200 + PRUNE_INTERVAL)
    assert store.sfu_usage("app", 0, 100_000) == [(7200, 2, 2, 2, 2)]
