"""
Time to first frame through WHIP: ours (WHIP in, WHEP out) beside Janus.

Run (about a minute; as root, Janus and simple-whip-client installed)::

    flock /tmp/realtime-interop.lock .venv/bin/python bench/whip.py [--runs 5]

Measured, per run, from the moment the publisher sends its offer (t0) to
the first video frame an aiortc player has decoded (t1); every publisher
and player is a fresh process-local peer, every run a fresh stream:

    ours, simple-whip-client  Debian's whip-client (VP8 + Opus test pattern)
                              POSTs to /ingest/{name} (t0: the instant it
                              prints "Sending SDP offer"); the player POSTs
                              /play/{name} every 50 ms until 201 (WHEP), then
                              waits for a decoded frame.  The client runs as
                              tests/interop/whip_client.py does (UPnP stand-in,
                              its own network namespace).
    ours, aiortc              an aiortc publisher (VP8 + Opus) POSTs its offer
                              to /ingest/{name} (t0: just before the POST); the
                              player as above.
    janus, aiortc             the same aiortc publisher joins Janus 1.1's
                              VideoRoom as a publisher and sends its offer
                              (t0: just before "join"), through Janus's REST
                              API: the VideoRoom requests simple-whip-server
                              makes (over WebSocket) behind its WHIP endpoint,
                              without its HTTP hop; as soon as Janus
                              has answered, an aiortc subscriber joins the
                              feed (polling every 50 ms while Janus says "No
                              such feed", as the WHEP player polls for 201)
                              and answers Janus's offer; t1 as above.

    simple-whip-server -> janus, aiortc
                              Debian's simple-whip-server (Meetecho's WHIP
                              server, the package's own JavaScript) in front
                              of the same Janus, reached over Janus's
                              WebSocket API: the endpoint is made with its
                              POST /whip/create (room 1234), the aiortc
                              publisher POSTs its offer to
                              /whip/endpoint/{id} (t0: just before the POST;
                              simple-whip-server joins the room and publishes
                              for it); the subscriber polls the room's
                              "listparticipants" every 50 ms for the
                              publisher's display name, joins that feed over
                              REST and answers as in the row above.

``apt-get install simple-whip-server`` cannot work here: its ``node-websocket``
is built for Debian's Node 18 (``libnode108``), which conflicts with the
NodeSource Node 20 that playwright-core and puppeteer-core run on.  So
scripts/fetch-simple-whip-server takes the package with ``apt-get download``,
extracts it with ``dpkg-deb -x`` into bench/.cache/simple-whip-server
(gitignored) and installs the npm modules its code ``require()``s (express,
body-parser, cors, websocket, colors, debug, async; pinned) in place of
Debian's node-* packages; this bench runs that script when the cache is
missing, copies ``server.js`` and ``whip-janus.js`` unmodified into a temporary
directory beside a ``config.js`` of its own (Janus at ``ws://127.0.0.1:{port}``,
API on a free port, ``rest: '/whip'``) and runs ``node server.js`` with the
system Node and ``NODE_PATH`` at those modules.  Janus gets its WebSocket
transport from ``bench/janus/websockets/`` (127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from forward_servers import JanusServer, free_port  # noqa: E402
from forward_signal import JanusSignalling  # noqa: E402
import forward_servers  # noqa: E402
from record import Record  # noqa: E402

from tests.interop.realtime_server import APP_ID, APP_SECRET, Server  # noqa: E402

VIDEO = ("videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
         "framerate=30/1 ! videoconvert ! queue ! vp8enc deadline=1 cpu-used=8 "
         "! rtpvp8pay pt=96 ssrc=2 ! queue ! application/x-rtp,media=video,encoding-name=VP8,"
         "payload=96")
AUDIO = ("audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue "
         "! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue ! application/x-rtp,media=audio,"
         "encoding-name=OPUS,payload=111")
TIMEOUT = 20.0
PHASES: dict[str, float] = {}   # the last run's steps, seconds after t0 (printed per row)
HOST = ["127.0.0.1"]    # the address aiortc peers gather on (Janus's row: Janus's address)


def aiortc_configuration():
    """``RTCConfiguration(iceServers=[])``, host candidates on :data:`HOST` only."""
    import aioice.ice
    from aiortc import RTCConfiguration

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(HOST)
    return RTCConfiguration(iceServers=[])


def sdp_request(url: str, method: str = "POST", body: bytes | None = None) -> tuple[int, dict, bytes]:
    headers = {"Authorization": f"Bearer {APP_SECRET}"}
    if body is not None:
        headers["Content-Type"] = "application/sdp"
    sent = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(sent, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def first_frame(pc) -> asyncio.Future:
    """A future of when ``pc`` decodes its first video frame (monotonic); call before
    ``setRemoteDescription`` (the handler must be there when the track arrives)."""
    got: asyncio.Future = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def on_track(track) -> None:
        if track.kind == "video":
            async def pull() -> None:
                await track.recv()
                if not got.done():
                    got.set_result(time.monotonic())
            asyncio.ensure_future(pull())
        else:
            async def drain() -> None:
                try:
                    while True:
                        await track.recv()
                except Exception:
                    pass
            asyncio.ensure_future(drain())
    return got


async def whep_player(base: str, stream: str) -> float:
    """Poll ``/play/{stream}`` until 201, play it; return the time of the first decoded frame."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + TIMEOUT
    while True:
        pc = RTCPeerConnection(aiortc_configuration())
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        status, headers, body = await loop.run_in_executor(None, lambda: sdp_request(
            f"{base}/play/{stream}", body=pc.localDescription.sdp.encode()))
        if status == 201:
            PHASES["player_201"] = time.monotonic()
            break
        await pc.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"/play/{stream} never answered 201 (last {status})")
        await asyncio.sleep(0.05)
    waiting = first_frame(pc)
    await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
    try:
        return await asyncio.wait_for(waiting, TIMEOUT)
    finally:
        resource = urllib.parse.urljoin(base, headers["Location"])
        await loop.run_in_executor(None, lambda: sdp_request(resource, "DELETE"))
        await pc.close()


def aiortc_publisher():
    from aiortc import RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    pc = RTCPeerConnection(aiortc_configuration())
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    return pc


async def ours_aiortc(base: str, stream: str) -> float:
    from aiortc import RTCSessionDescription

    loop = asyncio.get_running_loop()
    pc = aiortc_publisher()
    await pc.setLocalDescription(await pc.createOffer())
    t0 = time.monotonic()
    status, headers, body = await loop.run_in_executor(None, lambda: sdp_request(
        f"{base}/ingest/{stream}", body=pc.localDescription.sdp.encode()))
    if status != 201:
        raise RuntimeError(f"WHIP POST: {status} {body[:200]!r}")
    PHASES.clear()
    PHASES["answer"] = time.monotonic()
    player = asyncio.ensure_future(whep_player(base, stream))
    await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
    try:
        t1 = await player
        PHASES.update({k: v - t0 for k, v in PHASES.items()})
        return t1 - t0
    finally:
        resource = urllib.parse.urljoin(base, headers["Location"])
        await loop.run_in_executor(None, lambda: sdp_request(resource, "DELETE"))
        await pc.close()


async def ours_whip_client(base: str, stream: str, binary: str, stub: Path, namespace) -> float:
    from tests.interop.whip_client import WhipClient

    client = WhipClient(binary, stub, namespace, f"{base}/ingest/{stream}", APP_SECRET,
                        VIDEO, AUDIO, stamp=True)
    try:
        PHASES.clear()
        player = asyncio.ensure_future(whep_player(base, stream))
        t1 = await player
        t0 = client.stamp_of("Sending SDP offer")
        PHASES["answer"] = client.stamp_of("Received SDP answer")
        PHASES.update({k: v - t0 for k, v in PHASES.items()})
        return t1 - t0
    finally:
        client.stop()


async def janus_aiortc(target: dict) -> float:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    loop = asyncio.get_running_loop()
    pc = aiortc_publisher()
    await pc.setLocalDescription(await pc.createOffer())
    signalling = await loop.run_in_executor(
        None, lambda: JanusSignalling(target["url"], target["room"]))
    subscriber = RTCPeerConnection(aiortc_configuration())
    try:
        t0 = time.monotonic()

        def publish() -> tuple[int, str]:
            handle = signalling._attach()
            joined = signalling._message(handle, {"request": "join", "room": target["room"],
                                                  "ptype": "publisher", "display": "whip"})
            event = signalling._message(handle, {"request": "publish", "audio": True,
                                                 "video": True},
                                        {"type": "offer", "sdp": pc.localDescription.sdp})
            return joined["plugindata"]["data"]["id"], event["jsep"]["sdp"]

        PHASES.clear()
        feed, answer = await loop.run_in_executor(None, publish)
        PHASES["answer"] = time.monotonic() - t0
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        handle = await loop.run_in_executor(None, signalling._attach)
        deadline = time.monotonic() + TIMEOUT
        while True:    # the feed exists once the publisher's PeerConnection is up: poll
            try:
                event = await loop.run_in_executor(None, lambda: signalling._message(
                    handle, {"request": "join", "room": target["room"], "ptype": "subscriber",
                             "streams": [{"feed": feed}]}))
                PHASES["player_joined"] = time.monotonic() - t0
                break
            except RuntimeError as error:
                if "No such feed" not in str(error) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        return await janus_first_frame(signalling, handle, subscriber, event) - t0
    finally:
        await subscriber.close()
        await pc.close()
        await loop.run_in_executor(None, lambda: signalling._request(
            f"{signalling.url}/{signalling.session}", {"janus": "destroy"}))


async def janus_first_frame(signalling, handle, subscriber, event: dict) -> float:
    """Answer Janus's subscriber offer (``event``), start the feed and return the
    monotonic time of the first decoded video frame."""
    from aiortc import RTCSessionDescription

    loop = asyncio.get_running_loop()
    waiting = first_frame(subscriber)
    await subscriber.setRemoteDescription(RTCSessionDescription(event["jsep"]["sdp"], "offer"))
    await subscriber.setLocalDescription(await subscriber.createAnswer())
    await loop.run_in_executor(None, lambda: signalling._message(
        handle, {"request": "start"}, {"type": "answer", "sdp": subscriber.localDescription.sdp}))
    return await asyncio.wait_for(waiting, TIMEOUT)


class JanusWebSockets(JanusServer):
    """Janus as :class:`JanusServer` runs it, plus its WebSocket transport on 127.0.0.1
    (``bench/janus/websockets/``, port replaced by a free one): simple-whip-server's
    only way to talk to Janus."""

    def __init__(self, host: str) -> None:
        self.ws_port = free_port()
        janus = HERE / "janus"
        folder = Path(tempfile.mkdtemp(prefix="bench-janus-ws-"))
        for source in janus.glob("*.jcfg"):
            (folder / source.name).write_text(source.read_text().replace(
                ",libjanus_websockets.so", ""))
        source = janus / "websockets" / "janus.transport.websockets.jcfg"
        (folder / source.name).write_text(
            source.read_text().replace("ws_port = 18188", f"ws_port = {self.ws_port}"))
        try:
            super().__init__(configs=folder, host=host)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.child.wait_for("WebSockets transport plugin initialized", 10)


class SimpleWhipServer:
    """Debian's simple-whip-server (its package's JavaScript, unmodified) under the system
    Node, with npm's modules (scripts/fetch-simple-whip-server) and a config.js of ours:
    Janus over ``ws://127.0.0.1:{ws_port}``, the WHIP API on 127.0.0.1:{port}/whip."""

    CACHE = HERE / ".cache" / "simple-whip-server"

    @classmethod
    def available(cls) -> str:
        if not shutil.which("node"):
            return "node is not installed"
        fetch = subprocess.run([str(HERE.parent / "scripts" / "fetch-simple-whip-server"),
                                str(cls.CACHE)], capture_output=True, text=True)
        if fetch.returncode:
            return "scripts/fetch-simple-whip-server failed: " + (fetch.stderr or fetch.stdout)[-300:]
        return ""

    def __init__(self, ws_port: int) -> None:
        package = self.CACHE / "usr" / "share" / "simple-whip-server"
        self.directory = Path(tempfile.mkdtemp(prefix="bench-sws-"))
        for name in ("server.js", "whip-janus.js"):
            shutil.copy(package / "src" / name, self.directory / name)
        self.port = free_port()
        (self.directory / "config.js").write_text(
            "module.exports = {\n"
            f"\tjanus: {{ address: 'ws://127.0.0.1:{ws_port}' }},\n"
            f"\tport: {self.port},\n\trest: '/whip',\n\tallowTrickle: true,\n"
            "\tstrictETags: false,\n\ticeServers: []\n};\n")
        # server.js calls listen(port, callback), i.e. every address (its config has no
        # host): a preloaded line of ours adds 127.0.0.1 so the WHIP API stays on loopback
        (self.directory / "loopback.js").write_text(
            "const net = require('net');\nconst listen = net.Server.prototype.listen;\n"
            "net.Server.prototype.listen = function (port, ...rest) {\n"
            "\tif (typeof port === 'number' && typeof rest[0] === 'function')\n"
            "\t\treturn listen.call(this, port, '127.0.0.1', ...rest);\n"
            "\treturn listen.call(this, port, ...rest);\n};\n")
        self.child = forward_servers._Process(
            ["env", f"NODE_PATH={package / 'node_modules'}", "NODE_ENV=production",
             "node", "--require", "./loopback.js", "server.js"], cwd=self.directory)
        self.child.wait_for("WHIP server prototype started", 20)
        self.url = f"http://127.0.0.1:{self.port}/whip"
        deadline = time.monotonic() + 20
        while self.request("GET", "/endpoints")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("simple-whip-server: no /endpoints")
            time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes | None = None,
                kind: str = "application/json") -> tuple[int, dict, bytes]:
        sent = urllib.request.Request(self.url + path, data=body, method=method,
                                      headers={"Content-Type": kind} if body is not None else {})
        try:
            with urllib.request.urlopen(sent, timeout=15) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def stop(self) -> None:
        self.child.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


async def sws_aiortc(sws: SimpleWhipServer, target: dict, run: int) -> float:
    """aiortc publisher -> simple-whip-server (WHIP) -> Janus VideoRoom -> aiortc subscriber."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    loop = asyncio.get_running_loop()
    endpoint, label = f"bench{run}", f"whip-bench-{run}"
    status, _, body = await loop.run_in_executor(None, lambda: sws.request(
        "POST", "/create", json.dumps({"id": endpoint, "room": target["room"],
                                       "label": label}).encode()))
    if status != 200:
        raise RuntimeError(f"simple-whip-server /create: {status} {body[:200]!r}")
    pc = aiortc_publisher()
    await pc.setLocalDescription(await pc.createOffer())
    signalling = await loop.run_in_executor(
        None, lambda: JanusSignalling(target["url"], target["room"]))
    subscriber = RTCPeerConnection(aiortc_configuration())
    try:
        PHASES.clear()
        t0 = time.monotonic()
        deadline = t0 + TIMEOUT
        while True:     # 503 until simple-whip-server's WebSocket to Janus is up
            status, headers, body = await loop.run_in_executor(None, lambda: sws.request(
                "POST", f"/endpoint/{endpoint}", pc.localDescription.sdp.encode(),
                "application/sdp"))
            if status != 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        if status != 201:
            raise RuntimeError(f"WHIP POST to simple-whip-server: {status} {body[:200]!r}")
        PHASES["answer"] = time.monotonic() - t0
        await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
        handle = await loop.run_in_executor(None, signalling._attach)

        def feed() -> int | None:
            reply = signalling._message(handle, {"request": "listparticipants",
                                                 "room": target["room"]})
            for participant in reply["plugindata"]["data"].get("participants", []):
                if participant.get("display") == label and participant.get("publisher"):
                    return participant["id"]
            return None

        while True:    # the feed is listed once the publisher's PeerConnection is up: poll
            found = await loop.run_in_executor(None, feed)
            if found is not None:
                try:
                    event = await loop.run_in_executor(None, lambda: signalling._message(
                        handle, {"request": "join", "room": target["room"],
                                 "ptype": "subscriber", "streams": [{"feed": found}]}))
                    PHASES["player_joined"] = time.monotonic() - t0
                    break
                except RuntimeError as error:
                    if "No such feed" not in str(error):
                        raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"feed {label!r} never appeared in room {target['room']}")
            await asyncio.sleep(0.05)
        return await janus_first_frame(signalling, handle, subscriber, event) - t0
    finally:
        await subscriber.close()
        await pc.close()
        await loop.run_in_executor(None, lambda: sws.request("DELETE", f"/resource/{endpoint}"))
        await loop.run_in_executor(None, lambda: sws.request("DELETE", f"/endpoint/{endpoint}"))
        await loop.run_in_executor(None, lambda: signalling._request(
            f"{signalling.url}/{signalling.session}", {"janus": "destroy"}))


def summary(name: str, values: list[float], failures: list[str]) -> str:
    if not values:
        return f"{name:<36} {'-':>8} {'-':>8} {'-':>8} {0:>3}/{len(failures)}  {failures[:1]}"
    ms = [v * 1000 for v in values]
    return (f"{name:<36} {statistics.median(ms):8.0f} {min(ms):8.0f} {max(ms):8.0f} "
            f"{len(values):>3}/{len(values) + len(failures)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per row (default 5)")
    parser.add_argument("--json", help="where to write the record (default bench/results/whip.json)")
    options = parser.parse_args(argv)
    record = Record("whip", vars(options), options.json)
    results: dict[str, dict] = {}
    rows: list[tuple[str, list[float], list[str]]] = []

    def measure(name: str, make) -> None:
        values, failures = [], []
        phases: list[dict] = []
        for run in range(options.runs):
            try:
                values.append(asyncio.run(make(run)))
                phases.append(dict(PHASES))
            except Exception as error:   # a failed run is reported, the bench goes on
                failures.append(f"{type(error).__name__}: {error}"[:200])
                record.print(f"{name}: run {run} failed: {failures[-1]}")
        rows.append((name, values, failures))
        results[name] = {"seconds": values, "failures": failures, "phases": phases}

    import os

    from tests.interop.whip_client import Namespace, build_igd_stub

    binary = shutil.which("whip-client")
    if os.geteuid() != 0 or not shutil.which("ip"):
        record.print("not run: bench/whip.py makes a network namespace (needs root and iproute2)")
        return 1
    namespace = Namespace("wb").build()
    directory = Path(tempfile.mkdtemp(prefix="bench-whip-"))
    try:
        server = Server(directory / "state", "--api", f"tcp:0:interface={namespace.outside}",
                        "--media-interface", namespace.outside, app=True)
        try:
            server.wait_ready()
            base = f"{server.api_url()}/v1/apps/{APP_ID}"
            if binary:
                stub = build_igd_stub(directory / "igd")
                measure("ours WHIP->WHEP, simple-whip-client",
                        lambda run: ours_whip_client(base, f"swc{run}", binary, stub, namespace))
            else:
                record.print("simple-whip-client: not run (whip-client is not installed)")
            measure("ours WHIP->WHEP, aiortc", lambda run: ours_aiortc(base, f"aio{run}"))
        finally:
            server.stop()
        why = JanusServer.available()
        if why:
            record.print(f"janus: not run: {why}")
        else:
            # Janus's libnice gathers no loopback candidates: it and its aiortc peers use the
            # root end of the namespace's veth, an address of this machine only
            HOST[:] = [namespace.outside]
            janus = JanusServer(host=namespace.outside)
            try:
                measure("janus VideoRoom (REST), aiortc",
                        lambda run: janus_aiortc(janus.target))
            finally:
                janus.stop()
            why = SimpleWhipServer.available()
            if why:
                record.print(f"simple-whip-server: not run: {why}")
            else:
                name = "simple-whip-server -> janus, aiortc"
                janus = JanusWebSockets(namespace.outside)
                try:
                    sws = SimpleWhipServer(janus.ws_port)
                except RuntimeError as error:   # reported as the row's failure, bench goes on
                    sws = None
                    failure = f"simple-whip-server did not start: {error}"[:300]
                    record.print(failure)
                    rows.append((name, [], [failure]))
                    results[name] = {"seconds": [], "failures": [failure], "phases": []}
                try:
                    if sws:
                        measure(name, lambda run: sws_aiortc(sws, janus.target, run))
                finally:
                    if sws:
                        sws.stop()
                    janus.stop()
    finally:
        namespace.destroy()
        shutil.rmtree(directory, ignore_errors=True)
    record.print("time from the publisher's offer to the first decoded video frame at a player")
    record.print(f"{'publisher -> server -> aiortc player':<36} {'median':>8} {'min':>8} "
                 f"{'max':>8} {'ok':>5}   (ms)")
    for name, values, failures in rows:
        record.print(summary(name, values, failures))
    record.print("steps, median ms after the offer: answer = the publisher has the server's "
                 "answer; player_201 / player_joined = the player's POST /play answered 201 / "
                 "Janus accepted the subscriber's join (the feed is up)")
    for name, _, _ in rows:
        phases = results[name]["phases"]
        steps = sorted({key for phase in phases for key in phase})
        record.print(f"  {name:<34} " + ", ".join(
            f"{key} {statistics.median(p[key] for p in phases if key in p) * 1000:.0f}"
            for key in steps))
    record.save(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
