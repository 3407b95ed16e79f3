"""
Round-trip latency of the cluster directory client (``realtime.cluster``) against a real
redis-server, beside redis-benchmark (Redis's own C client) as the floor.

Measures, on a private redis-server over a Unix socket (and over TCP loopback):

* ``PING``: one command, one reply, sequential (n round trips);
* ``get_session``: GET + JSON decode of a SessionRecord with a 2 KiB SDP;
* ``session_for_ufrag``: the lookup of the first STUN Binding at a node that
  does not know the session (two sequential round trips);
* pipelined ``SET``: 10 000 commands in flight, commands/s.

Run: ``.venv/bin/python bench/directory.py [--n 2000]``.  Prints a table; not a test.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import Deferred, gatherResults  # noqa: E402

from realtime.cluster.address import parse_redis_url  # noqa: E402
from realtime.cluster.directory import Directory  # noqa: E402
from realtime.cluster.launcher import start_private_redis  # noqa: E402
from realtime.cluster.records import SessionRecord  # noqa: E402

SESSION = SessionRecord(
    "5e55" * 8, "app", "srvUfrag", "p" * 24, "cliUfrag", ("sha-256 " + "AB:" * 31 + "AB",),
    "sha-256 " + "CD:" * 31 + "CD", "server", "a=x\r\n" * 400, "node-a", 1.0, 2.0)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6)


async def measure(url: str, n: int) -> list[tuple[str, str]]:
    directory = Directory(reactor, parse_redis_url(url))
    await directory.start()
    rows = []
    try:
        await directory.put_session(SESSION)
        for name, call in (("PING", lambda: directory.redis.execute("PING")),
                           ("get_session", lambda: directory.get_session(SESSION.session_id)),
                           ("session_for_ufrag", lambda: directory.session_for_ufrag("srvUfrag"))):
            samples = []
            for _ in range(n):
                start = time.perf_counter()
                await call()
                samples.append(time.perf_counter() - start)
            p50, p99 = percentiles(samples)
            rows.append((name, f"p50 {p50:6.0f} µs   p99 {p99:6.0f} µs"))
        count = 10_000
        start = time.perf_counter()
        await gatherResults([directory.redis.execute("SET", f"k{i}", "v") for i in range(count)])
        rate = count / (time.perf_counter() - start)
        rows.append(("pipelined SET", f"{rate:8.0f} commands/s"))
    finally:
        await directory.stop()
    return rows


def redis_benchmark(args: list[str], n: int) -> str:
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return "redis-benchmark not installed"
    out = subprocess.run([tool, *args, "-n", str(n), "-c", "1", "-t", "ping", "--csv"],
                         capture_output=True, text=True, timeout=120).stdout
    lines = [line for line in out.splitlines() if line.startswith('"PING_MBULK"')]
    if not lines:
        return "no result"
    fields = [f.strip('"') for f in lines[0].split(",")]
    return f"p50 {float(fields[4]) * 1000:6.0f} µs   p99 {float(fields[6]) * 1000:6.0f} µs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="round trips per measurement")
    n = parser.parse_args().n
    from record import Record

    record = Record("directory", {"round_trips": n})  # started now: its "seconds" cover the run
    run_dir = Path(tempfile.mkdtemp(prefix="rt-bench-"))
    private = start_private_redis(run_dir / "unix")
    port = free_port()
    tcp = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    results = {}

    async def run() -> None:
        results["unix"] = await measure(private.url, n)
        results["tcp"] = await measure(f"redis://127.0.0.1:{port}", n)

    def done(_):
        reactor.stop()

    def crashed(failure):
        failure.printTraceback()
        reactor.stop()

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(run()).addCallbacks(done, crashed))
    try:
        reactor.run()
        with record.capture():
            for transport in ("unix", "tcp"):
                print(f"\n{transport} socket, {n} sequential round trips each")
                for name, figure in results.get(transport, []):
                    print(f"  ours  {name:18s} {figure}")
            print("\nredis-benchmark (C client, -c 1, PING) for comparison")
            baseline = {"unix": redis_benchmark(["-s", str(private.socket_path)], n),
                        "tcp": redis_benchmark(["-h", "127.0.0.1", "-p", str(port)], n)}
            for transport, figure in baseline.items():
                print(f"  {transport:5s} {figure}")
        record.save({"ours": {t: dict(rows) for t, rows in results.items()},
                     "redis_benchmark_ping": baseline})
    finally:
        private.stop()
        tcp.terminate()
        tcp.wait(5)
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
