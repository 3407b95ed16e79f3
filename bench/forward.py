"""
SFU forwarding benchmark (issue 4): one publisher, N subscribers, three servers.

Run (about a minute in quick mode; defaults 1,10,50,100 subscribers)::

    .venv/bin/python bench/forward.py --quick
    .venv/bin/python bench/forward.py --subscribers 1,10 --seconds 5 --servers ours,aiortc

For every N and every server, in the same run and on the same load:

    ours    ``twistd -n realtime`` through its Cloudflare-compatible API
            (push with tracks/new + offer; pull with tracks/new -> SFU offer,
            PUT renegotiate);
    aiortc  aiortc's ``MediaRelay`` (bench/forward_relay.py): one
            RTCPeerConnection from the publisher, ``relay.subscribe(track)``
            per subscriber RTCPeerConnection.  aiortc decodes and re-encodes,
            so it is a transcoding relay: the baseline the issue names;
    janus   Janus 1.1 (Debian package) with its videoroom plugin, REST over
            HTTP on loopback, ICE-lite, no STUN/NAT lookups (bench/janus/).
            If Janus cannot run, the reason is printed and the run goes on.

The load (bench/forward_load.py, bench/forward_peer.py), identical for all
three servers:

* publisher: one PeerConnection of our own endpoint sending pre-encoded real
  VP8 (640x480, 30 frames/s, ~1.55 Mbit/s, ~194 packets/s, a key frame a
  second; bench/forward_media.py) and Opus (20 ms, 64 kbit/s, 50 packets/s).
  Its CPU is measured and printed (a saturated load shows).  It is our
  endpoint rather than aiortc so that the send time of every frame is known
  exactly;
* subscribers: N PeerConnections of the same endpoint in one process; they
  do ICE, DTLS and send RR + REMB (2 Mbit/s) every second, and count RTP
  without decrypting (the first subscriber decrypts all video, to prove it
  is valid SRTP).  100 decoding aiortc peers would not fit on two cores.

Measured over a window of ``--seconds`` (after ``--warmup`` seconds):

* egress packets/s: RTP packets arriving at all subscribers (audio + video)
  per second of the window;
* CPU-µs per forwarded packet: the server process's CPU time, user +
  system, all threads (/proc/PID/task/*/schedstat, nanoseconds) over the
  window / packets counted.  It includes receiving the publisher's
  ~245 packets/s, so at N = 1 it is the cost of one packet in and one out;
* p50 / p99 added latency: per video frame, arrival of its first packet at a
  subscriber minus the publisher's send time of that frame, both on
  CLOCK_MONOTONIC.  Arrival is the kernel's receive timestamp of the
  datagram at the subscriber's socket (SO_TIMESTAMPNS).  "As read by load"
  is the time the one subscriber process got round to reading it, which
  adds that process's own queue: 100 sockets served by one Python loop
  read a server that sends a packet to all subscribers at once (one
  sendmmsg) last at the last socket, and one that trickles copies out
  (Janus's threads) as they come.  Frames are matched by RTP timestamp:
  the publisher's frame intervals are jittered so the timestamp
  differences identify each frame even when the server rewrote the
  timestamp base (aiortc re-stamps, Janus and ours may offset); the offset
  per subscriber is the value most of its first 40 frames agree on;
* delivered: per subscriber, the share of the video frames the publisher
  sent in the window (from its own send log, less the window's last second,
  whose frames may still be in flight) that reached it, matched by RTP
  timestamp; averaged over subscribers (aiortc drops frames when its
  encoders fall behind).

The load processes run SCHED_BATCH (sched(7)), so that one woken by a
datagram does not preempt the server on its core (see ``_batch_load``).
Each (server, N) gets a fresh server process; only 127.0.0.1 is used
(aiortc also announces this host's other addresses; our endpoint binds
127.0.0.1, so its packets never leave the host).  Everything stops by
itself: signalling and connection steps have timeouts, a run that fails
prints why and the table shows "-".
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from forward_servers import SERVERS, JanusServer, cpu_seconds, tree_cpu_seconds  # noqa: E402
from record import Record  # noqa: E402

LOAD = HERE / "forward_load.py"
MATCH_SAMPLE = 40
MAX_LATENCY = 30.0
TOLERANCE = 150  # 90 kHz ticks, see nearest()


def _batch_load() -> None:  # runs in the child between fork and exec
    # SCHED_BATCH (sched(7)): a load process woken by the server's datagrams does not preempt
    # the server.  A wakeup from a socket is "sync", so the scheduler puts the woken load on
    # the server's own core; as a normal task it then preempted the server mid-sendmmsg for
    # 0.5-2 ms while the other core sat idle (perf sched timehist), which remote subscribers
    # never do.  Both servers get the same load.
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


class Child:
    """A load process spoken to in JSON lines over stdin/stdout."""

    def __init__(self, args: list[str]) -> None:
        self.errors = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen([sys.executable, str(LOAD), *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.errors, text=True,
                                        preexec_fn=_batch_load)
        self.pid = self.process.pid
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def send(self, command: str) -> None:
        """Write one command line."""
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def receive(self, timeout: float) -> dict:
        """Return the next JSON line; raise with the child's stderr on exit or timeout."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if not line:
            self.errors.seek(0)
            tail = self.errors.read()[-1500:]
            raise RuntimeError(("timed out" if line is None else "exited") + f"\n{tail}")
        return json.loads(line)

    def stop(self) -> None:
        """Kill the process if still running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def match_offset(sent_times: list[float], sent_ts: list[int], frames: list) -> int | None:
    """Return the RTP timestamp offset (received - sent) most early frames agree on."""
    votes: Counter[int] = Counter()
    sample = frames[:MATCH_SAMPLE]  # a relay may lag by seconds: search MAX_LATENCY back
    for ts, arrival, *_ in sample:
        low = bisect.bisect_left(sent_times, arrival - MAX_LATENCY)
        high = bisect.bisect_right(sent_times, arrival)
        for p in sent_ts[low:high]:
            votes[(ts - p) & 0xFFFFFFFF] += 1
    if not votes:
        return None
    offset, count = votes.most_common(1)[0]
    return offset if count >= len(sample) // 2 else None


def nearest(ordered: list[int], ts: int) -> int | None:
    """The sent timestamp within TOLERANCE ticks of ``ts``, if any.

    A transcoding relay (aiortc) may move a frame's timestamp by a few ticks
    when it converts time bases; sent frames are >= 2,700 ticks apart, so a
    tolerance of 150 ticks (1.7 ms) still names exactly one sent frame."""
    i = bisect.bisect_left(ordered, ts)
    best = min((c for c in ordered[max(0, i - 1):i + 1]), key=lambda c: abs(c - ts), default=None)
    return best if best is not None and abs(best - ts) <= TOLERANCE else None


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def measure(server_class, count: int, seconds: float, warmup: float) -> dict:
    """Run one server with ``count`` subscribers; return its figures."""
    server = server_class()
    children: list[Child] = []
    log = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
    try:
        target = json.dumps(server.target)
        publisher = Child(["publish", server.name, target, log.name])
        children.append(publisher)
        ready = publisher.receive(60)
        if not ready.get("ready"):
            raise RuntimeError(f"publisher: {ready.get('error')}")
        subscribers = Child(["subscribe", server.name, target, str(count), json.dumps(ready["info"])])
        children.append(subscribers)
        joined = subscribers.receive(60 + 3 * count)
        if not joined["ready"]:
            raise RuntimeError(f"no subscriber connected: {joined['failed']}")
        time.sleep(warmup)
        cpu0, load0, t0 = tree_cpu_seconds(server.pid), cpu_seconds(subscribers.pid), time.monotonic()
        publisher0 = cpu_seconds(publisher.pid)
        subscribers.send("start")
        time.sleep(seconds)
        subscribers.send("stop")
        cpu1, load1, t1 = tree_cpu_seconds(server.pid), cpu_seconds(subscribers.pid), time.monotonic()
        publisher_cpu = (cpu_seconds(publisher.pid) - publisher0) / (t1 - t0)
        counted = subscribers.receive(60)
        publisher.send("stop")
        publisher.receive(30)
        with open(log.name) as source:
            sent = json.load(source)
    finally:
        for child in children:
            child.stop()
        server.stop()
        os.unlink(log.name)
    figures = summarize(count, joined, counted, sent, cpu1 - cpu0, (load1 - load0) / (t1 - t0))
    figures["publisher_cpu"] = publisher_cpu
    return figures


def summarize(count: int, joined: dict, counted: dict, sent: list, cpu: float, load: float) -> dict:
    """Turn the load processes' reports into the figures printed."""
    window = counted["window"]
    legs = counted["legs"]
    packets = sum(sum(leg["packets"].values()) for leg in legs)
    sent_ts = [ts for ts, _ in sent]
    sent_times = [t for _, t in sent]
    by_ts = dict(sent)
    latencies: list[float] = []
    read_latencies: list[float] = []
    delivered = []
    unmatched = 0
    # frames delivered: of the frames the publisher sent in the window (its own log, CLOCK_MONOTONIC
    # like the subscribers'), the share each subscriber received; the window's last GUARD seconds
    # are left out of both counts, so a frame still in flight at "stop" is not counted as lost
    guard = min(1.0, window / 2)
    ordered_ts = sorted(by_ts)
    in_window = {ts for ts, t in sent if counted["started"] <= t <= counted["stopped"] - guard}
    for leg in legs:
        frames = leg["frames"]
        if not frames or not in_window:
            delivered.append(0.0)
            continue
        offset = match_offset(sent_times, sent_ts, frames)
        if offset is None:
            unmatched += 1
            delivered.append(0.0)  # frames that cannot be matched to a sent frame are not counted
            continue
        received = set()
        for ts, arrival, read in frames:
            match = nearest(ordered_ts, (ts - offset) & 0xFFFFFFFF)
            if match is None:
                continue
            received.add(match)
            t = by_ts[match]
            if arrival >= t:
                latencies.append(arrival - t)
                read_latencies.append(read - t)
        delivered.append(len(received & in_window) / len(in_window))
    return {
        "connected": joined["ready"], "subscribers": count, "failures": joined["failures"],
        "window": window, "egress_pps": packets / window,
        "video_pps": sum(leg["packets"]["video"] for leg in legs) / window,
        "cpu_us_per_packet": cpu / packets * 1e6 if packets else None,
        "server_cpu": cpu / window, "load_cpu": load,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
        "read_p50_ms": percentile(read_latencies, 50) * 1000 if read_latencies else None,
        "read_p99_ms": percentile(read_latencies, 99) * 1000 if read_latencies else None,
        "delivered": statistics.mean(delivered) if delivered else None,
        "frames_sent": len(in_window),
        "received_fps": statistics.mean(len(leg["frames"]) for leg in legs) / window if legs else None,
        "sent_fps": sum(1 for _, t in sent if counted["started"] <= t <= counted["stopped"]) / window,
        "unmatched": unmatched,
        "auth_failures": sum(leg["auth_failures"] for leg in legs),
    }


ROWS = [
    ("connected", "connected subscribers", "{:.0f}"),
    ("egress_pps", "egress packets/s", "{:.0f}"),
    ("cpu_us_per_packet", "CPU-us per packet", "{:.1f}"),
    ("server_cpu", "server CPU (cores)", "{:.2f}"),
    ("p50_ms", "p50 added latency ms", "{:.1f}"),
    ("p99_ms", "p99 added latency ms", "{:.1f}"),
    ("read_p50_ms", "p50 as read by load ms", "{:.1f}"),
    ("read_p99_ms", "p99 as read by load ms", "{:.1f}"),
    ("delivered", "frames delivered", "{:.0%}"),
    ("sent_fps", "video frames/s sent", "{:.1f}"),
    ("received_fps", "video frames/s received", "{:.1f}"),
    ("load_cpu", "subscriber proc (cores)", "{:.2f}"),
    ("publisher_cpu", "publisher proc (cores)", "{:.2f}"),
]


def table(count: int, results: dict[str, dict | str]) -> str:
    """Return the side-by-side table for one N, with ours/baseline ratios."""
    names = list(results)
    baselines = [n for n in names if n != "ours"]
    width = {n: max(11, len(n) + 2) for n in names}
    ratio_width = {b: max(14, len(b) + 7) for b in baselines}
    header = f"{'N = ' + str(count):<26}" + "".join(f"{n:>{width[n]}}" for n in names)
    header += "".join(f"{'ours/' + b:>{ratio_width[b]}}" for b in baselines if "ours" in results)
    lines = [header]
    for key, label, fmt in ROWS:
        cells = []
        for name in names:
            value = results[name].get(key) if isinstance(results[name], dict) else None
            cells.append(f"{fmt.format(value) if value is not None else '-':>{width[name]}}")
        for base in baselines if "ours" in results else []:
            ours, other = (results[n].get(key) if isinstance(results[n], dict) else None
                           for n in ("ours", base))
            ratio = f"{ours / other:.2f}" if ours is not None and other else "-"
            cells.append(f"{ratio:>{ratio_width[base]}}")
        lines.append(f"{label:<26}" + "".join(cells))
    for name in names:
        if isinstance(results[name], str):
            lines.append(f"  {name}: {results[name]}")
        elif results[name].get("failures") or results[name].get("unmatched") or results[name].get("auth_failures"):
            r = results[name]
            lines.append(f"  {name}: {r['failures']} failed to connect, {r['unmatched']} subscribers"
                         f" without a timestamp match, {r['auth_failures']} SRTP failures")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse options, run every (N, server) and print a table per N."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,10,50,100", help="comma-separated N values")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds between connect and window")
    parser.add_argument("--servers", default="ours,aiortc,janus", help="any of ours,ours-workers2,aiortc,janus")
    parser.add_argument("--quick", action="store_true", help="N = 1,10 and 5 s windows (~1 minute)")
    parser.add_argument("--json", help="write the JSON here (default bench/results/forward.json)")
    options = parser.parse_args(argv)
    if options.quick:
        options.subscribers, options.seconds, options.warmup = "1,10", 5.0, 2.0
    counts = [int(n) for n in options.subscribers.split(",")]
    servers = options.servers.split(",")
    record = Record("forward", {k: v for k, v in vars(options).items() if k != "json"}, options.json)
    unavailable = {}
    if "janus" in servers and (why := JanusServer.available()):
        unavailable["janus"] = why
        record.print(f"janus: not run: {why}")
    record.print(f"{os.cpu_count()} CPUs; window {options.seconds:g} s after {options.warmup:g} s"
                 f" warm-up; servers {', '.join(servers)}; load processes SCHED_BATCH")
    everything = {}
    for count in counts:
        results: dict[str, dict | str] = {}
        for name in servers:
            if name in unavailable:
                results[name] = unavailable[name]
                continue
            started = time.monotonic()
            try:
                results[name] = measure(SERVERS[name], count, options.seconds, options.warmup)
            except Exception as error:  # one server failing must not stop the others
                results[name] = f"failed: {str(error).strip()[:400]}"
            print(f"  N={count} {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        record.print(table(count, results))
        record.print()
        everything[str(count)] = results
    record.save(everything)


if __name__ == "__main__":
    main()
