"""
The adapter routes end to end in one process: the real reactor, a real HTTP
listener, autobahn WebSocket endpoints of the test's own, PyAV's codecs.

A ``local`` adapter takes a 440 Hz tone from one endpoint and publishes it;
a ``remote`` adapter on that very track sends it, decoded, to another
endpoint: the spectrum of what arrives peaks at 440 Hz.  The browsers'
versions of both directions are in tests/interop/test_adapters_chromium.py.
"""

from __future__ import annotations

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.protocol import Factory, Protocol
from twisted.web.server import Site

from realtime.adapters.packet import Packet
from realtime.api.adapters import AdapterSettings
from realtime.storage import App, ServerConfig, StateStore
from tests.adapters.wsserver import Endpoint, peak_frequency
from tests.api.compose import compose

APP = App("adapter-app", "adapter-secret")
AUTH = {"Authorization": f"Bearer {APP.secret}"}


def sleep(seconds: float) -> Deferred:
    d: Deferred = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


class Service:
    """A RealtimeAPI on the real reactor behind a real HTTP listener."""

    def __init__(self, tmp_path, allow_loopback: bool = True,
                 settings: AdapterSettings | None = None) -> None:
        self.store = StateStore(tmp_path / "state.sqlite3")
        self.api = compose(self.store, ServerConfig(apps=(APP,)), reactor,
                           adapters=settings or AdapterSettings(allow_loopback=allow_loopback))
        self.listener = reactor.listenTCP(0, Site(self.api.app.resource()),
                                          interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.listener.getHost().port}/v1/apps/{APP.app_id}"

    async def post(self, path: str, body) -> tuple[int, dict]:
        response = await treq.post(self.base + path, json=body, headers=AUTH)
        return response.code, await response.json()

    async def stop(self) -> None:
        self.api.adapters.stop()
        await self.listener.stopListening()
        self.store.close()


@pytest.fixture
def service(tmp_path):
    made = Service(tmp_path)
    yield made
    pytest_twisted.blockon(ensureDeferred(made.stop()))


@pytest_twisted.ensureDeferred
async def test_a_tone_goes_in_through_a_local_adapter_and_out_through_a_remote_one(service):
    source = Endpoint(reactor, send_tone=(440.0, 3.0))
    sink = Endpoint(reactor)
    try:
        status, body = await service.post("/adapters/websocket/new", {"tracks": [
            {"location": "local", "trackName": "tts", "endpoint": source.url,
             "inputCodec": "pcm", "mode": "buffer"}]})
        assert status == 200, body
        local = body["tracks"][0]
        assert set(local) == {"trackName", "endpoint", "adapterId", "sessionId"}, local
        assert len(local["adapterId"]) == len(local["sessionId"]) == 32
        status, body = await service.post("/adapters/websocket/new", {"tracks": [
            {"location": "remote", "sessionId": local["sessionId"], "trackName": "tts",
             "endpoint": sink.url, "outputCodec": "pcm"}]})
        assert status == 200, body
        remote = body["tracks"][0]
        assert "sessionId" not in remote and "errorCode" not in remote, remote
        await sleep(2.0)
        stats = service.api.adapters.stats()
        status, body = await service.post("/adapters/websocket/close", {"tracks": [
            {"adapterId": remote["adapterId"]}, {"adapterId": local["adapterId"]}]})
        assert status == 200, body
        assert all(item["bytesProcessed"] > 0 for item in body["tracks"]), body
        # closing again succeeds, without a byte count (Cloudflare's already_closed)
        status, again = await service.post("/adapters/websocket/close", {"tracks": [
            {"adapterId": remote["adapterId"]}]})
        assert (status, again) == (200, {"tracks": [{"adapterId": remote["adapterId"]}]})
    finally:
        await source.stop()
        await sink.stop()
    messages = sink.messages
    print("egress:", len(messages), "messages;", stats)
    # 20 ms of 48 kHz stereo s16 per message: 960 x 2 x 2 octets, numbered from 1
    assert len(messages) >= 50, stats
    assert {len(m.payload) for m in messages} == {3840}
    assert [m.sequence_number for m in messages[:3]] == [1, 2, 3]
    assert [m.timestamp for m in messages[:3]] == [0, 960, 1920]
    frequency = peak_frequency(sink.pcm())
    assert 430 <= frequency <= 450, frequency


REMOTE = {"location": "remote", "sessionId": "0" * 32, "trackName": "mic",
          "endpoint": "ws://127.0.0.1:9/x", "outputCodec": "pcm"}
LOCAL = {"location": "local", "trackName": "tts", "endpoint": "ws://127.0.0.1:9/x",
         "inputCodec": "pcm"}


@pytest.mark.parametrize("body, status, code", [
    ({"tracks": "no"}, 400, "decoding_error"),
    ({"tracks": [7]}, 400, "decoding_error"),
    ({"tracks": [{**LOCAL, "trackName": 5}]}, 400, "decoding_error"),
    ({}, 406, "invalid_params"),
    ({"tracks": []}, 406, "invalid_params"),
    ({"tracks": [LOCAL] * 5}, 406, "invalid_params"),
    ({"tracks": [{**LOCAL, "endpoint": "http://127.0.0.1/"}]}, 406, "invalid_params"),
    ({"tracks": [{**LOCAL, "endpoint": "ws://127.0.0.1:99999/"}]}, 406, "invalid_params"),
    ({"tracks": [{**LOCAL, "endpoint": "ws://[::1/"}]}, 406, "invalid_params"),
    ({"tracks": [{**LOCAL, "endpoint": "wss://"}]}, 406, "invalid_params"),
    ({"tracks": [{k: v for k, v in LOCAL.items() if k != "endpoint"}]}, 406, "invalid_params"),
    ({"tracks": [{**LOCAL, "inputCodec": "opus"}]}, 406, "invalid_params"),
    ({"tracks": [{**REMOTE, "sessionId": ""}]}, 406, "invalid_params"),
    ({"tracks": [{**REMOTE, "outputCodec": "wav"}]}, 406, "invalid_params"),
    ({"tracks": [{**REMOTE, "location": "elsewhere"}]}, 406, "invalid_params"),
    ({"tracks": [{**REMOTE, "mode": "fast"}]}, 406, "invalid_params"),
])
@pytest_twisted.ensureDeferred
async def test_request_errors(service, body, status, code):
    got, answer = await service.post("/adapters/websocket/new", body)
    assert (got, answer["errorCode"]) == (status, code), answer
    assert set(answer) == {"errorCode", "errorDescription"}


@pytest_twisted.ensureDeferred
async def test_a_request_that_is_not_json_is_400(service):
    response = await treq.post(service.base + "/adapters/websocket/new", data=b"{",
                               headers=AUTH)
    assert response.code == 400
    assert (await response.json())["errorCode"] == "decoding_error"


@pytest_twisted.ensureDeferred
async def test_routes_authenticate_like_the_rest(service):
    response = await treq.post(service.base + "/adapters/websocket/close",
                               json={"tracks": [{"adapterId": "x"}]},
                               headers={"Authorization": "Bearer wrong"})
    assert response.code == 401


@pytest_twisted.ensureDeferred
async def test_item_errors_and_503_when_every_item_failed(service, monkeypatch):
    monkeypatch.setattr("realtime.api.adapters.CONNECT_TIMEOUT", 0.5)
    refusing = Endpoint(reactor, accept=False)
    silent = reactor.listenTCP(0, _Silent(), interface="127.0.0.1")   # never answers the upgrade
    closed_port = reactor.listenTCP(0, _Silent(), interface="127.0.0.1")
    unused = closed_port.getHost().port
    await closed_port.stopListening()
    try:
        status, body = await service.post("/adapters/websocket/new", {"tracks": [
            {**LOCAL, "endpoint": refusing.url},
            {**LOCAL, "endpoint": f"ws://127.0.0.1:{silent.getHost().port}/"},
            {**LOCAL, "endpoint": f"ws://127.0.0.1:{unused}/"},
            REMOTE,
        ]})
    finally:
        await refusing.stop()
        await silent.stopListening()
    assert status == 503, body
    assert [t.get("errorCode") for t in body["tracks"]] == [
        "websocket_handshake_failed", "websocket_connection_timeout",
        "websocket_handshake_failed", "not_found_track_error"]
    assert service.api.adapters.adapters == {}
    assert not service.api.switchboard.tracks          # nothing published for a failed item


@pytest_twisted.ensureDeferred
async def test_partial_success_is_200_and_close_answers_per_item(service):
    source = Endpoint(reactor)
    try:
        status, body = await service.post("/adapters/websocket/new", {"tracks": [
            {**LOCAL, "endpoint": source.url}, REMOTE]})
        assert status == 200, body
        made, failed = body["tracks"]
        assert "errorCode" not in made and failed["errorCode"] == "not_found_track_error"
        status, body = await service.post("/adapters/websocket/close", {"tracks": [
            {"adapterId": made["adapterId"]}, {"adapterId": "f" * 32}]})
        assert status == 200, body
        assert body["tracks"][0] == {"adapterId": made["adapterId"], "bytesProcessed": 0}
        assert body["tracks"][1]["errorCode"] == "adapter_not_found"
        assert (await source.closed) == 1000            # we closed the WebSocket cleanly
        assert not service.api.switchboard.tracks       # and unpublished its track
        status, body = await service.post("/adapters/websocket/close", {"tracks": [
            {"adapterId": "f" * 32}]})
        assert status == 503 and body["tracks"][0]["errorCode"] == "adapter_not_found"
    finally:
        await source.stop()


@pytest.mark.parametrize("tracks, status", [
    ([{}], 406), ([{"adapterId": ""}], 406), ([{"adapterId": 5}], 400), ([], 406)])
@pytest_twisted.ensureDeferred
async def test_close_request_errors(service, tracks, status):
    got, body = await service.post("/adapters/websocket/close", {"tracks": tracks})
    assert got == status, body


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "[::1]",
                                  "api.localhost", "0.0.0.0", "[::ffff:127.0.0.1]"])
@pytest_twisted.ensureDeferred
async def test_loopback_endpoints_are_refused_by_default(tmp_path, host):
    strict = Service(tmp_path, allow_loopback=False)
    try:
        status, body = await strict.post("/adapters/websocket/new", {"tracks": [
            {**LOCAL, "endpoint": f"wss://{host}:8443/in"}]})
    finally:
        await strict.stop()
    assert status == 503, body
    assert body["tracks"][0]["errorCode"] == "websocket_localhost_not_allowed"


class _Silent(Factory):
    """Accept TCP connections and say nothing (a WebSocket handshake never completes)."""

    def buildProtocol(self, addr):  # noqa: N802
        return Protocol()


@pytest_twisted.ensureDeferred
async def test_a_remote_adapter_closes_when_its_track_ends(service):
    source, sink = Endpoint(reactor, send_tone=(440.0, 2.0)), Endpoint(reactor)
    try:
        _, body = await service.post("/adapters/websocket/new", {"tracks": [
            {**LOCAL, "endpoint": source.url}]})
        local = body["tracks"][0]
        _, body = await service.post("/adapters/websocket/new", {"tracks": [
            {**REMOTE, "sessionId": local["sessionId"], "trackName": "tts",
             "endpoint": sink.url}]})
        remote = body["tracks"][0]
        await sleep(0.5)
        await service.post("/adapters/websocket/close", {"tracks": [
            {"adapterId": local["adapterId"]}]})
        assert (await sink.closed) == 1000               # the track ended: so did its egress
        status, body = await service.post("/adapters/websocket/close", {"tracks": [
            {"adapterId": remote["adapterId"]}]})
        assert (status, body) == (200, {"tracks": [{"adapterId": remote["adapterId"]}]})
    finally:
        await source.stop()
        await sink.stop()


class _Transport:
    def registerProducer(self, producer, streaming):  # noqa: N802
        self.producer = producer


class _Protocol:
    link = None

    def __init__(self) -> None:
        self.transport = _Transport()
        self.sent: list[bytes] = []

    def sendMessage(self, data, isBinary):  # noqa: N802,N803
        self.sent.append(data)


def test_a_backed_up_websocket_drops_and_counts_instead_of_queueing():
    """The transport pauses its producer past its high-water mark; the link then drops."""
    from realtime.api.adapter_links import Link

    protocol = _Protocol()
    link = Link("a" * 32, protocol, worker=None, reactor=None, on_closed=lambda link: None)
    assert protocol.transport.producer is link           # registered as a streaming producer
    link.send(Packet(1, 0, b"x"))
    link.pauseProducing()                                # the socket's send buffer is full
    link.send(Packet(2, 960, b"y"))
    link.send(Packet(3, 1920, b"z"))
    link.resumeProducing()
    link.send(Packet(4, 2880, b"w"))
    assert [Packet.decode(m).sequence_number for m in protocol.sent] == [1, 4]
    assert link.drops["websocket-slow"] == 2


@pytest_twisted.ensureDeferred
async def test_an_output_codec_that_does_not_fit_the_track_is_an_item_error(service):
    from realtime.adapters.ingest import AdapterSession, AdapterTrack
    from realtime.sdp.codecs import Codec
    from realtime.sdp.negotiated import NegotiatedMedia

    vp8 = NegotiatedMedia("0", "video", True, "recvonly", codecs=(Codec(96, "VP8", 90000),))
    track = AdapterTrack(AdapterSession(APP.app_id, "c" * 32), "0", "cam", vp8,
                         reactor.seconds())
    service.api.switchboard.publish(track)
    sink = Endpoint(reactor)
    try:
        status, body = await service.post("/adapters/websocket/new", {"tracks": [
            {**REMOTE, "sessionId": "c" * 32, "trackName": "cam", "endpoint": sink.url}]})
    finally:
        await sink.stop()
    assert status == 503, body
    assert body["tracks"][0]["errorCode"] == "invalid_params", body
    assert not sink.connections                        # refused before connecting


async def _resolves_to_loopback(host: str) -> list[str]:
    """A resolver answering like a DNS name planted to point at the server itself."""
    return ["203.0.113.9", "127.0.0.1"] if host == "inside.example" else ["203.0.113.9"]


@pytest_twisted.ensureDeferred
async def test_a_name_resolving_to_loopback_is_refused(tmp_path):
    strict = Service(tmp_path, settings=AdapterSettings(resolve=_resolves_to_loopback))
    try:
        status, body = await strict.post("/adapters/websocket/new", {"tracks": [
            {**LOCAL, "endpoint": "ws://inside.example:8080/in"}]})
    finally:
        await strict.stop()
    assert status == 503, body
    assert body["tracks"][0]["errorCode"] == "websocket_localhost_not_allowed"


@pytest_twisted.ensureDeferred
async def test_an_unresolvable_name_fails_the_handshake(tmp_path):
    async def nothing(host: str) -> list[str]:
        raise OSError("no such name")

    strict = Service(tmp_path, settings=AdapterSettings(resolve=nothing))
    try:
        status, body = await strict.post("/adapters/websocket/new", {"tracks": [
            {**LOCAL, "endpoint": "ws://nowhere.example/in"}]})
    finally:
        await strict.stop()
    assert status == 503, body
    assert body["tracks"][0]["errorCode"] == "websocket_handshake_failed"


@pytest_twisted.ensureDeferred
async def test_an_app_holds_at_most_its_adapter_limit(tmp_path):
    server = Endpoint(reactor)
    limited = Service(tmp_path, settings=AdapterSettings(allow_loopback=True, per_app=2))
    try:
        item = {**LOCAL, "endpoint": server.url}
        status, body = await limited.post("/adapters/websocket/new", {"tracks": [
            {**item, "trackName": f"t{n}"} for n in range(3)]})
        assert status == 200, body
        codes = [t.get("errorCode") for t in body["tracks"]]
        assert codes == [None, None, "adapter_limit_reached"], body
        first = body["tracks"][0]["adapterId"]
        await limited.post("/adapters/websocket/close", {"tracks": [{"adapterId": first}]})
        status, body = await limited.post("/adapters/websocket/new", {"tracks": [
            {**item, "trackName": "again"}]})
        assert status == 200 and "adapterId" in body["tracks"][0], body
    finally:
        await limited.stop()
        await server.stop()
