"""
``twistd realtime --workers 2`` with no ``--cluster``: the parent starts a private redis-server
on a Unix socket, two workers share the media and API ports (SO_REUSEPORT), and aiortc echo
sessions connect whichever worker the kernel hands the API request and the media to.  Each
session's record shows the worker that made it (owner when created) and the one its
PeerConnection lives on (owner once connected); the test needs both cases to occur.

With ``--metrics``, the parent serves the port and a scrape gathers both workers' registries,
each sample labelled with its worker (realtime/cluster/worker_metrics.py).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from realtime.cluster.launcher import ping
from realtime.cluster.resp import NEED_MORE, RespReader, encode_command
from tests.conftest import require_module, require_tool
from tests.interop.realtime_server import Server, free_port
from tests.cluster.test_jit import echo_call

pytestmark = pytest.mark.interop

SESSIONS = 12


def redis_get(socket_path: Path, key: str):
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(socket_path))
        s.sendall(encode_command("GET", key))
        reader = RespReader()
        while (reply := reader.next_reply()) is NEED_MORE:
            reader.feed(s.recv(65536))
        return reply


def owner(socket_path: Path, session_id: str) -> str:
    return json.loads(redis_get(socket_path, f"rt:session:{session_id}"))["owner_node"]


def test_two_workers_share_the_ports_and_act_as_one(tmp_path) -> None:
    require_tool("redis-server")
    require_module("aiortc")
    from prometheus_client.parser import text_string_to_metric_families
    api, metrics = free_port(), free_port()
    server = Server(tmp_path / "state", "--workers", "2", "--node-id", "box",
                    "--api", f"tcp:{api}:interface=127.0.0.1",
                    "--metrics", f"tcp:{metrics}:interface=127.0.0.1", app=True)
    socket_path = tmp_path / "state" / "run" / "redis.sock"
    rows = []
    try:
        server.wait_workers(2)
        assert ping(socket_path)
        for _ in range(SESSIONS):
            result = asyncio.run(echo_call(server, None, seconds=3.0, wanted_video=5,
                                           answered=lambda sid: owner(socket_path, sid)))
            rows.append((result["session"][:8], result["created_by"],
                         owner(socket_path, result["session"]),
                         result["connected"], result["frames"]["video"]))
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as page:
            families = {f.name: f for f in text_string_to_metric_families(page.read().decode())}
    finally:
        server.stop()
    print("\nsession   API worker  PeerConnection on  state      video frames")
    for row in rows:
        print("%-9s %-11s %-18s %-10s %d" % row)
    assert all(r[3] == "connected" and r[4] >= 5 for r in rows), rows
    assert {r[1] for r in rows} <= {"box-w0", "box-w1"}
    same = [r for r in rows if r[1] == r[2]]
    other = [r for r in rows if r[1] != r[2]]
    assert same and other, rows       # both cases happened (the kernel's hash decides)
    assert not socket_path.exists()   # the parent stopped its private redis-server
    # one scrape of the parent: both workers answered, their series told apart by a label
    up = {s.labels["worker"]: s.value for s in families["realtime_worker_scrape_up"].samples}
    assert up == {"box-w0": 1.0, "box-w1": 1.0}, up
    cpu = {s.labels["worker"] for s in families["process_cpu_seconds"].samples}
    assert cpu == {"box-w0", "box-w1"}, cpu
    made = sum(s.value for s in families["realtime_api_requests"].samples
               if s.labels.get("route", "").endswith("/echo/new") and s.labels["status"] == "201")
    assert made == SESSIONS, made     # the two workers' counts add up to the calls made
