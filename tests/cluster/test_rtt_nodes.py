"""
Inter-node RTT end to end: three ``twistd realtime --cluster`` nodes and a private redis-server
on loopback.  Each node probes the others over the sealed relay link (PING/PONG) and writes the
smoothed RTTs into its registry record, which is what the cascading trees read.
"""

from __future__ import annotations

import json
import time

import pytest

from realtime.cluster.options import SECRET_VARIABLE
from tests.interop.realtime_server import Server

pytestmark = pytest.mark.interop

NODES = ("node-a", "node-b", "node-c")
#: Seconds allowed for every record to carry both peers' RTTs: a member refresh (TTL/3,
#: 3.3 s), the wait before a new member is probed (3.8 s), the next probe round (2 s) and a
#: heartbeat (3.3 s): 12.4 s at worst, with margin for a loaded machine.
WITHIN = 16.0


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_VARIABLE, "a cluster secret for the tests")


def test_every_node_record_shows_measured_rtts_to_the_others(tmp_path, redis_server) -> None:
    servers = {name: Server(tmp_path / name, "--cluster", redis_server.url, "--node-id", name,
                            "--relay-address", "127.0.0.1:0", app=True) for name in NODES}
    try:
        for server in servers.values():
            server.wait_ready()
        started = time.monotonic()
        records: dict[str, dict] = {}
        while True:
            for name in NODES:
                value = redis_server.command("GET", f"rt:node:{name}")
                records[name] = json.loads(value) if value else {}
            if all(set(r.get("rtts", {})) == set(NODES) - {n} for n, r in records.items()):
                break
            assert time.monotonic() - started < WITHIN, (records, servers["node-a"].output())
            time.sleep(0.1)
        print(f"all RTTs in the registry {time.monotonic() - started:.1f} s after start-up:",
              {name: record["rtts"] for name, record in records.items()})
        for name, record in records.items():
            for peer, ms in record["rtts"].items():
                assert 0 < ms < 50, (name, peer, ms)      # loopback, a loaded 2-core machine
        status, body = servers["node-a"].get("/diagnostics")
        assert status == 200, body
        rtt = body["cluster"]["relay"]["rtt"]
        assert set(rtt["rtt_ms"]) == {"node-b", "node-c"}, rtt
        assert rtt["samples"] >= 2 and rtt["pings_answered"] >= 2 and rtt["dropped"] == {}, rtt
        assert body["cluster"]["relay"]["dropped"] == {}    # no PING reached a node too early
    finally:
        for server in servers.values():
            server.stop()
