"""
What forwarding an API call to the session's owner costs: the same GET direct vs through another node.

Two ``twistd realtime --cluster`` nodes and one private redis-server on this machine.  A
session is made through node A; then ``GET /sessions/{id}`` is sent N times to A (served
there) and N times to B (B looks the owner up in Redis -- two GETs -- and forwards the call
over HTTPS on a pooled connection to A's private API port).  The cases alternate in blocks
so that machine load affects both alike; each call opens a new client connection, as
``urllib`` does, and calls are 25 ms apart (no queueing).  Usage::

    flock /tmp/realtime-interop.lock .venv/bin/python bench/api_forward.py [-n 300]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.cluster.launcher import start_private_redis  # noqa: E402
from realtime.cluster.options import SECRET_VARIABLE  # noqa: E402
from tests.cluster.test_forward import call  # noqa: E402
from tests.interop.realtime_server import Server  # noqa: E402

BLOCK = 50


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=300, help="calls per case")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rt-forward-bench-"))
    os.environ.setdefault(SECRET_VARIABLE, "bench secret bench secret")
    redis = start_private_redis(work / "run")
    common = ("--cluster", redis.url, "--relay-address", "127.0.0.1:0")
    a = Server(work / "a", *common, "--node-id", "a", app=True)
    b = Server(work / "b", *common, "--node-id", "b", app=True)
    samples: dict[str, list[float]] = {"direct": [], "forwarded": []}
    try:
        a.wait_ready()
        b.wait_ready()
        time.sleep(1.0)                  # both registered
        session = call(a, "POST", "/sessions/new", {})[1]["sessionId"]
        while min(len(v) for v in samples.values()) < args.n:
            for name, server in (("direct", a), ("forwarded", b)):
                for _ in range(BLOCK):
                    started = time.perf_counter()
                    status, body = call(server, "GET", f"/sessions/{session}")
                    samples[name].append(time.perf_counter() - started)
                    assert status == 200, (status, body)
                    time.sleep(0.025)
    finally:
        a.stop()
        b.stop()
        redis.stop()
    from record import Record

    record = Record("api_forward", {"calls_per_case": args.n})
    figures = {}
    with record.capture():
        print(f"GET /sessions/{{id}}, {args.n} calls per case, a new client connection each")
        for name, values in samples.items():
            figures[name] = {"p50_ms": percentile(values, 0.5) * 1000,
                             "p99_ms": percentile(values, 0.99) * 1000}
            print(f"  {name:<10} p50 {figures[name]['p50_ms']:5.2f} ms  "
                  f"p99 {figures[name]['p99_ms']:5.2f} ms")
    record.save(figures)


if __name__ == "__main__":
    main()
