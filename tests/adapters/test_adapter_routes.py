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

    def __init__(self, tmp_path, allow_loopback: bool = True) -> None:
        self.store = StateStore(tmp_path / "state.sqlite3")
        self.api = compose(self.store, ServerConfig(apps=(APP,)), reactor,
                           adapters=AdapterSettings(allow_loopback=allow_loopback))
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
