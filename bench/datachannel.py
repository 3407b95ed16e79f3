"""
DataChannel benchmark: messages/s and MB/s through our SCTP stack and SFU, against aiortc.

Run (about three minutes; ``--quick`` well under two)::

    .venv/bin/python bench/datachannel.py
    .venv/bin/python bench/datachannel.py --quick
    .venv/bin/python bench/datachannel.py --via sfu --subscribers 1,10
    .venv/bin/python bench/datachannel.py --via echo,aiortc --small 5000 --bulk 400 --rounds 3

**Echo** (``--via echo,aiortc``): one aiortc client (in this process) opens
a reliable ordered DataChannel and, per workload, sends every message at
once and waits until each has come back on the same channel: a round trip
through the far side's SCTP association, DCEP channel and DTLS, both ways.
The far side:

    echo     ``twistd -n realtime`` on loopback, ``POST /v1/apps/{app}/echo/new``:
             our PeerConnection + SctpTransport echo every message
             (realtime/peer/echo.py);
    aiortc   the baseline: an aiortc RTCPeerConnection in a child process that
             sends every message back on its channel (aiortc's own SCTP).

Both far sides run in their own process, so the client's CPU is not theirs.
Workloads: ``small`` (``--small`` messages of 100 bytes: messages/s is the
figure) and ``bulk`` (``--bulk`` messages of 16 KiB: MB/s is the figure;
payload bytes one way per second of round trip).  Each (via, workload) is
run ``--rounds`` times on one connection and the best round is printed,
with the far side's CPU time per message (user + system, /proc/PID/stat),
the client's own CPU (share of a core over the round: near 100 %, the
client is the bottleneck) and the ratio of ours to aiortc.

**Fan-out** (``--via sfu``, bench/datachannel_fanout.py): one aiortc
publisher (this process) sends the same workloads on a reliable ordered
channel to N aiortc subscribers (one child process, each subscriber its own
session), for every N of ``--subscribers``: through **ours** (the SFU's
``datachannels`` routes, one publication, N subscriptions) and, as the
baseline, an **aiortc mesh** (the publisher holds N direct connections and
sends every message N times).  The time runs from the publisher's first
send to the last message's arrival at the last subscriber; figures are per
subscriber ("each") and summed over subscribers ("total").  Every round
gives up after 40 s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interop.realtime_server import APP_ID, APP_SECRET, Server  # noqa: E402

import datachannel_fanout  # noqa: E402  (bench/ is this script's directory)
from datachannel_fanout import cpu_seconds  # noqa: E402
from record import Record, aiortc_configuration  # noqa: E402  (iceServers=[], loopback only)

class Answerer:
    """A far side that answers the client's offer and echoes every message."""

    name = "?"
    pid = 0

    def start(self) -> None:
        """Start the far side's process."""

    def answer(self, offer_sdp: str) -> str:
        """Return the SDP answer to ``offer_sdp``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the far side's process."""


class EchoRoute(Answerer):
    """``twistd -n realtime`` and its diagnostic echo route."""

    name = "ours (echo route)"

    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="realtime-bench-dc-")
        self.server = Server(Path(self._tmp.name) / "state", app=True)
        self.server.wait_ready()
        self.pid = self.server.process.pid

    def answer(self, offer_sdp: str) -> str:
        status, body = self.server.post(
            "/echo/new", {"sessionDescription": {"type": "offer", "sdp": offer_sdp}})
        if status != 201:
            raise RuntimeError(f"echo/new answered {status}: {body}")
        return body["sessionDescription"]["sdp"]

    def stop(self) -> None:
        self.server.stop()
        self._tmp.cleanup()


def _aiortc_echo_main(conn) -> None:
    """Child process: answer one offer with aiortc and echo every channel message."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    async def serve() -> None:
        pc = RTCPeerConnection(aiortc_configuration())

        @pc.on("datachannel")
        def on_channel(channel) -> None:
            channel.on("message", channel.send)

        loop = asyncio.get_running_loop()
        offer = await loop.run_in_executor(None, conn.recv)
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        conn.send(pc.localDescription.sdp)
        await loop.run_in_executor(None, conn.recv)  # any message: stop
        await pc.close()

    asyncio.run(serve())


class AiortcEcho(Answerer):
    """An aiortc peer in a child process: the baseline."""

    name = "aiortc"

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_aiortc_echo_main, args=(child,), daemon=True)
        self.process.start()
        self.pid = self.process.pid

    def answer(self, offer_sdp: str) -> str:
        self.conn.send(offer_sdp)
        if not self.conn.poll(30):
            raise RuntimeError("the aiortc echo peer gave no answer")
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


VIAS: dict[str, type[Answerer]] = {"echo": EchoRoute, "aiortc": AiortcEcho}
"""``--via`` name -> echoing far side; ``sfu`` (fan-out) is run by :func:`fan_out`."""


async def connect(answerer: Answerer):
    """Return ``(pc, channel)``: an aiortc client with an open reliable channel to ``answerer``."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(aiortc_configuration())
    channel = pc.createDataChannel("bench")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    answer = await loop.run_in_executor(None, answerer.answer, pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.wait_for(opened.wait(), 15)
    return pc, channel


async def round_trip(channel, count: int, size: int, timeout: float = 120.0) -> float:
    """Send ``count`` messages of ``size`` bytes at once; return seconds until all came back."""
    payload = bytes(size)
    received = 0
    done = asyncio.Event()

    def on_message(message) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    channel.on("message", on_message)
    started = time.perf_counter()
    for _ in range(count):
        channel.send(payload)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        channel.remove_listener("message", on_message)
    return time.perf_counter() - started


async def measure(answerer: Answerer, workloads: list[tuple[str, int, int]], rounds: int
                  ) -> dict[str, tuple[float, float]]:
    """Return ``workload -> (best seconds, far-side CPU seconds, client CPU seconds)`` of the
    best round (the client is this process: its CPU shows when the load itself saturates)."""
    pc, channel = await connect(answerer)
    results = {}
    try:
        await round_trip(channel, 50, 100)  # warm up: congestion window, JIT-free paths
        for name, count, size in workloads:
            best = None
            for _ in range(rounds):
                cpu, client = cpu_seconds(answerer.pid), time.process_time()
                seconds = await round_trip(channel, count, size)
                cpu, client = cpu_seconds(answerer.pid) - cpu, time.process_time() - client
                if best is None or seconds < best[0]:
                    best = (seconds, cpu, client)
            results[name] = best
    finally:
        await pc.close()
    return results


def print_table(workloads, rows: dict[str, dict[str, tuple[float, float, float]]]) -> None:
    """Print one line per (workload, far side) and the ratio ours / aiortc."""
    print(f"{'workload':<22} {'far side':<18} {'msg/s':>9} {'MB/s':>8} {'far CPU-µs/msg':>15}"
          f" {'client CPU':>10}")
    for name, count, size in workloads:
        label = f"{name} {count} x {size} B"
        for via, results in rows.items():
            if name not in results:
                print(f"{label:<22} {via:<18} {'-':>9} {'-':>8} {'-':>15} {'-':>10}")
                continue
            seconds, cpu, client = results[name]
            print(f"{label:<22} {via:<18} {count / seconds:>9.0f} "
                  f"{count * size / seconds / 1e6:>8.2f} {cpu / count * 1e6:>15.1f}"
                  f" {client / seconds:>10.0%}")
        ours, base = rows.get(EchoRoute.name, {}), rows.get(AiortcEcho.name, {})
        if name in ours and name in base:
            print(f"{'':<22} {'ratio ours/aiortc':<18} {base[name][0] / ours[name][0]:>9.2f} "
                  f"{base[name][0] / ours[name][0]:>8.2f} "
                  f"{(ours[name][1] / base[name][1]) if base[name][1] else float('nan'):>15.2f}")


def fan_out(workloads, subscribers: list[int], rounds: int) -> dict:
    """Measure SFU and aiortc-mesh fan-out for every N; return ``(kind, N) -> results``."""
    rows: dict = {}
    with tempfile.TemporaryDirectory(prefix="realtime-bench-dc-sfu-") as tmp:
        for n in subscribers:
            for kind in ("sfu", "mesh"):
                server = None
                try:
                    if kind == "sfu":  # a fresh server per N: no leftovers
                        server = Server(Path(tmp) / f"state-{n}", app=True)
                        server.wait_ready()
                        rows[kind, n] = asyncio.run(datachannel_fanout.measure(
                            kind, n, workloads, rounds, server.api_url(), (APP_ID, APP_SECRET),
                            server.process.pid))
                    else:
                        rows[kind, n] = asyncio.run(
                            datachannel_fanout.measure(kind, n, workloads, rounds))
                except Exception as exc:  # reported, the run goes on
                    print(f"# {kind} N={n}: {exc!r}", file=sys.stderr)
                    rows[kind, n] = {}
                finally:
                    if server is not None:
                        server.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every ``--via`` far side through every workload and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--via", default="echo,aiortc,sfu",
                        help=f"comma-separated, from {sorted(VIAS) + ['sfu']} "
                             "(default: %(default)s)")
    parser.add_argument("--small", type=int, default=5000, help="100-byte messages per round")
    parser.add_argument("--bulk", type=int, default=400, help="16 KiB messages per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per workload; best is shown")
    parser.add_argument("--subscribers", default="1,10",
                        help="fan-out subscriber counts (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="2000 small and 200 bulk messages, 1 round (under 2 minutes)")
    parser.add_argument("--json", help="write the JSON here (default bench/results/datachannel.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.small, args.bulk, args.rounds = 2000, 200, 1
    record = Record("datachannel", {k: v for k, v in vars(args).items() if k != "json"}, args.json)
    with record.capture():
        rows, fanned = run(args, parser)
    record.save({"echo": rows, "fan_out": {f"{kind} {n}": value
                                           for (kind, n), value in (fanned or {}).items()}})
    return 0


def run(args, parser):
    """Measure what ``args`` asks for; print the tables; return the echo and fan-out rows."""
    workloads = [("small", args.small, 100), ("bulk", args.bulk, 16384)]
    vias = args.via.split(",")
    for via in vias:
        if via not in VIAS and via != "sfu":
            parser.error(f"--via {via!r} is not one of {sorted(VIAS) + ['sfu']}")
    rows: dict[str, dict[str, tuple[float, float, float]]] = {}
    for via in vias:
        if via == "sfu":
            continue
        answerer = VIAS[via]()
        answerer.start()
        try:
            rows[answerer.name] = asyncio.run(measure(answerer, workloads, args.rounds))
        except Exception as exc:  # a far side that fails is reported, the run goes on
            print(f"# {answerer.name}: {exc!r}", file=sys.stderr)
            rows[answerer.name] = {}
        finally:
            answerer.stop()
    if rows:
        print("echo: one client, every message back on the same channel")
        print_table(workloads, rows)
    if "sfu" in vias:
        subscribers = [int(n) for n in args.subscribers.split(",")]
        fanned = fan_out(workloads, subscribers, args.rounds)
        print("\nfan-out: one publisher to N subscribers, reliable ordered channel")
        datachannel_fanout.print_fan_out(workloads, fanned)
        return rows, fanned
    return rows, None


if __name__ == "__main__":
    sys.exit(main())
