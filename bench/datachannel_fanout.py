"""
DataChannel fan-out benchmark: one publisher to N subscribers, SFU against a mesh.

Used by ``bench/datachannel.py --via sfu``.  Three processes, so no side's
CPU is another's::

    this process            the SFU (twistd -n realtime)      child process
    aiortc publisher  ----> one published "bench" channel ---> N aiortc
    (1 connection)          N subscriber copies                subscribers,
                                                               each its own session
    baseline "aiortc mesh": the publisher holds N connections straight to the
    N subscribers and sends every message N times (no SFU in between).

SFU signalling is the Cloudflare-compatible flow (docs/datachannels.md):
``sessions/new`` -> ``datachannels/establish`` (the SFU offers) -> the
answer by ``PUT renegotiate`` -> ``datachannels/new`` (publisher:
``location: local``; subscriber: ``location: remote`` with the publisher's
session) -> ``createDataChannel(name, negotiated=True, id=<the id given>)``.
The channel is reliable and ordered.

A round arms the subscribers (each must receive ``count`` messages), then
the publisher sends every message at once; the time is from the first send
to the arrival of the last message at the last subscriber
(``time.monotonic``, CLOCK_MONOTONIC, shared by all processes).  A round
that does not finish within :data:`ROUND_TIMEOUT` seconds is reported, not
waited for.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from record import aiortc_configuration  # iceServers=[], host candidates on 127.0.0.1 only

#: seconds a round may take before it is given up
ROUND_TIMEOUT = 40.0
#: seconds connection set-up (all subscribers) may take
SETUP_TIMEOUT = 40.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of process ``pid`` (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def call(api_url: str, app: tuple[str, str], method: str, path: str,
         body: dict | None = None) -> dict:
    """Send one API request to ``{api_url}/v1/apps/{app id}{path}``; return its JSON body.

    :raises RuntimeError: on an error status or an ``errorCode`` in the body.
    """
    request = urllib.request.Request(
        f"{api_url}/v1/apps/{app[0]}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {app[1]}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, reply = response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        status, reply = error.code, json.loads(error.read() or b"{}")
    if status not in (200, 201) or "errorCode" in reply:
        raise RuntimeError(f"{method} {path} answered {status}: {reply}")
    for item in reply.get("dataChannels", []):
        if "errorCode" in item:
            raise RuntimeError(f"{method} {path}: {item}")
    return reply


async def api(api_url: str, app: tuple[str, str], method: str, path: str,
              body: dict | None = None) -> dict:
    """Run :func:`call` off the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, call, api_url, app, method, path, body)


async def sfu_session(api_url: str, app: tuple[str, str]):
    """Return ``(pc, session id)``: an aiortc peer with an SCTP association to a new SFU session."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    session = (await api(api_url, app, "POST", "/sessions/new"))["sessionId"]
    reply = await api(api_url, app, "POST", f"/sessions/{session}/datachannels/establish", {
        "dataChannel": {"location": "remote", "dataChannelName": "server-events"}})
    pc = RTCPeerConnection(aiortc_configuration())
    await pc.setRemoteDescription(RTCSessionDescription(reply["sessionDescription"]["sdp"],
                                                        "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await api(api_url, app, "PUT", f"/sessions/{session}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
    return pc, session


async def opened(channel, timeout: float = SETUP_TIMEOUT) -> None:
    """Wait until ``channel`` is open."""
    deadline = time.monotonic() + timeout
    while channel.readyState != "open":
        if time.monotonic() > deadline:
            raise RuntimeError(f"channel {channel.label!r} stayed {channel.readyState}")
        await asyncio.sleep(0.02)


class Subscribers:
    """The child process's N subscribers and their arrival counters."""

    def __init__(self) -> None:
        self.pcs: list = []
        self.counts: list[int] = []
        self.expected = 0
        self.complete = 0
        self.done = asyncio.Event()
        self.finished_at = 0.0

    def counter(self, index: int):
        """Return the ``message`` listener that counts arrivals at subscriber ``index``."""
        def on_message(message) -> None:
            counts = self.counts
            counts[index] += 1
            if counts[index] == self.expected:
                self.complete += 1
                if self.complete == len(counts):
                    self.finished_at = time.monotonic()
                    self.done.set()
        return on_message

    def add(self, pc):
        """Register ``pc``; return its counting listener."""
        self.pcs.append(pc)
        self.counts.append(0)
        return self.counter(len(self.pcs) - 1)

    async def answer(self, offer_sdp: str) -> str:
        """Answer a mesh offer with a new subscriber; return the answer SDP."""
        from aiortc import RTCPeerConnection, RTCSessionDescription

        pc = RTCPeerConnection(aiortc_configuration())
        listener = self.add(pc)
        pc.on("datachannel", lambda channel: channel.on("message", listener))
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    async def subscribe(self, api_url: str, app: tuple[str, str], publisher: str,
                        name: str) -> None:
        """Make a new SFU session subscribed to ``publisher``'s channel ``name``; wait until open."""
        pc, session = await sfu_session(api_url, app)
        listener = self.add(pc)
        reply = await api(api_url, app, "POST", f"/sessions/{session}/datachannels/new", {
            "dataChannels": [{"location": "remote", "sessionId": publisher,
                              "dataChannelName": name}]})
        channel = pc.createDataChannel(name, negotiated=True, id=reply["dataChannels"][0]["id"])
        channel.on("message", listener)
        await opened(channel)

    def arm(self, count: int) -> None:
        """Expect ``count`` more messages at every subscriber."""
        self.counts[:] = [0] * len(self.counts)
        self.expected, self.complete = count, 0
        self.done = asyncio.Event()


def subscribers_main(conn) -> None:
    """Child process: run subscribers on commands from ``conn`` until ``("stop",)``.

    Commands and replies: ``("answer", sdp)`` -> answer sdp; ``("subscribe",
    api_url, app, publisher, name, n)`` -> ``"ok"``; ``("arm", count)`` ->
    ``"armed"``, later ``("done", finished_at)`` or ``("timeout", least
    count)``; every failure -> ``("error", text)``.
    """
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        subscribers = Subscribers()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            try:
                if command[0] == "stop":
                    break
                if command[0] == "answer":
                    conn.send(await subscribers.answer(command[1]))
                elif command[0] == "subscribe":
                    api_url, app, publisher, name, n = command[1:]
                    await asyncio.wait_for(asyncio.gather(*(
                        subscribers.subscribe(api_url, app, publisher, name)
                        for _ in range(n))), SETUP_TIMEOUT)
                    conn.send("ok")
                elif command[0] == "arm":
                    subscribers.arm(command[1])
                    conn.send("armed")
                    try:
                        await asyncio.wait_for(subscribers.done.wait(), ROUND_TIMEOUT)
                        conn.send(("done", subscribers.finished_at))
                    except asyncio.TimeoutError:
                        conn.send(("timeout", min(subscribers.counts)))
            except Exception as exc:  # reported to the parent, which gives up the run
                conn.send(("error", repr(exc)))
        await asyncio.gather(*(pc.close() for pc in subscribers.pcs))

    asyncio.run(serve())


class Child:
    """The subscribers' process, seen from the publisher."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=subscribers_main, args=(child,), daemon=True)
        self.process.start()

    async def ask(self, *command, timeout: float = SETUP_TIMEOUT + 5):
        """Send ``command``; return the reply (raise on an error or no reply)."""
        self.conn.send(command)
        return await self.reply(timeout)

    async def reply(self, timeout: float):
        """Wait off the event loop for the next reply."""
        def wait():
            if not self.conn.poll(timeout):
                raise RuntimeError(f"the subscribers gave no reply within {timeout} s")
            return self.conn.recv()
        reply = await asyncio.get_running_loop().run_in_executor(None, wait)
        if isinstance(reply, tuple) and reply[0] == "error":
            raise RuntimeError(f"subscribers: {reply[1]}")
        return reply

    def stop(self) -> None:
        """Stop the process (politely, then for sure)."""
        try:
            self.conn.send(("stop",))
        except OSError:
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


async def mesh_publisher(child: Child, n: int):
    """Return ``(pcs, channels)``: ``n`` direct aiortc connections to the child's subscribers."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pcs, channels = [], []
    for _ in range(n):
        pc = RTCPeerConnection(aiortc_configuration())
        channel = pc.createDataChannel("bench")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await child.ask("answer", pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        pcs.append(pc)
        channels.append(channel)
    await asyncio.gather(*(opened(channel) for channel in channels))
    return pcs, channels


async def sfu_publisher(child: Child, api_url: str, app: tuple[str, str], n: int):
    """Return ``(pcs, channels)``: one publisher session whose channel ``n`` subscribers receive."""
    pc, session = await sfu_session(api_url, app)
    reply = await api(api_url, app, "POST", f"/sessions/{session}/datachannels/new", {
        "dataChannels": [{"location": "local", "dataChannelName": "bench"}]})
    channel = pc.createDataChannel("bench", negotiated=True, id=reply["dataChannels"][0]["id"])
    await opened(channel)
    await child.ask("subscribe", api_url, app, session, "bench", n)
    return [pc], [channel]


async def fan_out_round(child: Child, channels: list, count: int, size: int) -> float | str:
    """Send ``count`` messages of ``size`` bytes on every channel; return seconds, or why not."""
    await child.ask("arm", count)
    payload = bytes(size)
    started = time.monotonic()
    for _ in range(count):
        for channel in channels:
            channel.send(payload)
    reply = await child.reply(ROUND_TIMEOUT + 10)
    if reply[0] != "done":
        return f"timeout ({reply[1]}/{count} at the slowest)"
    return reply[1] - started


async def measure(kind: str, n: int, workloads, rounds: int, api_url: str = "",
                  app: tuple[str, str] = ("", ""), server_pid: int = 0) -> dict:
    """Return ``workload -> (best s, server CPU s, publisher CPU s, subscribers CPU s)``.

    ``kind`` is ``"sfu"`` (through the server at ``api_url``, process
    ``server_pid``) or ``"mesh"``.  A workload that timed out maps to the reason.
    """
    child = Child()
    pcs: list = []
    results: dict = {}
    try:
        if kind == "sfu":
            pcs, channels = await sfu_publisher(child, api_url, app, n)
        else:
            pcs, channels = await mesh_publisher(child, n)
        await fan_out_round(child, channels, 50, 100)  # warm up
        for name, count, size in workloads:
            best = None
            for _ in range(rounds):
                server = cpu_seconds(server_pid) if server_pid else 0.0
                mine, subs = time.process_time(), cpu_seconds(child.process.pid)
                seconds = await fan_out_round(child, channels, count, size)
                if isinstance(seconds, str):
                    best = seconds
                    break
                cost = ((cpu_seconds(server_pid) - server) if server_pid else 0.0,
                        time.process_time() - mine, cpu_seconds(child.process.pid) - subs)
                if best is None or seconds < best[0]:
                    best = (seconds, *cost)
            results[name] = best
    finally:
        await asyncio.gather(*(pc.close() for pc in pcs))
        child.stop()
    return results


def print_fan_out(workloads, rows: dict[tuple[str, int], dict]) -> None:
    """Print one line per (workload, N, route) and the ratio SFU / mesh."""
    print(f"{'workload':<20} {'N':>3} {'route':<12} {'msg/s each':>10} {'MB/s each':>9} "
          f"{'MB/s total':>10} {'SFU CPU-µs/copy':>15} {'pub CPU-µs/msg':>14} {'subs CPU':>8}")
    for name, count, size in workloads:
        label = f"{name} {count} x {size} B"
        for n in sorted({n for _, n in rows}):
            for kind in ("sfu", "mesh"):
                route = "ours (SFU)" if kind == "sfu" else "aiortc mesh"
                result = rows.get((kind, n), {}).get(name)
                if not isinstance(result, tuple):
                    print(f"{label:<20} {n:>3} {route:<12} {result or '-'}")
                    continue
                seconds, server, mine, subs = result
                sfu_cpu = f"{server / (count * n) * 1e6:.1f}" if kind == "sfu" else "-"
                print(f"{label:<20} {n:>3} {route:<12} {count / seconds:>10.0f} "
                      f"{count * size / seconds / 1e6:>9.2f} "
                      f"{count * size * n / seconds / 1e6:>10.2f} {sfu_cpu:>15} "
                      f"{mine / count * 1e6:>14.1f} {subs / seconds:>8.0%}")
            ours = rows.get(("sfu", n), {}).get(name)
            base = rows.get(("mesh", n), {}).get(name)
            if isinstance(ours, tuple) and isinstance(base, tuple):
                print(f"{'':<20} {n:>3} {'ratio':<12} {base[0] / ours[0]:>10.2f} "
                      f"{base[0] / ours[0]:>9.2f} {base[0] / ours[0]:>10.2f} {'':>15} "
                      f"{ours[2] / base[2] if base[2] else float('nan'):>14.2f}")
