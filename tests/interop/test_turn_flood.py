"""
TURN over TCP and TLS stays usable during a flood of idle connections (issue 10 item 1).

The attack of the issue: open connections to the TURN TCP and TLS ports and
send nothing (or finish a TLS handshake and then send nothing), faster than
anything closes them.  Before the fix 4,096 such connections filled each
listener for good and coturn's ``turnutils_uclient`` got ``Connection reset``.

Here ``twistd realtime`` runs with a small global cap so that a bounded,
loopback-only flood overfills it many times: a thread opens idle
connections from 127.0.0.2-127.0.0.31 (three kinds: plain TCP, TCP to the
TLS port without a handshake, and TLS handshaken then silent) for as long as
the test runs, while ``turnutils_uclient`` over TCP and over TLS allocates
and relays through the server from 127.0.0.1.  Every uclient message must
arrive, and the server must have shed flood connections (the flood did fill
the cap).
"""

from __future__ import annotations

import collections
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from tests.conftest import require_tool
from tests.interop.test_turn_uclient import (
    KEY_ID, MESSAGES, ROOT, TOKEN, TWISTD, credentials, free_pair, free_port, uclient, wait_for,
)

pytestmark = pytest.mark.interop

#: the server's caps for this test: small, so the bounded flood overfills them quickly
LIMITS = ["--turn-max-connections", "48", "--turn-connections-per-address", "8",
          "--turn-auth-timeout", "5", "--turn-handshake-timeout", "3"]
#: flood sources (loopback /8 on Linux accepts any 127.x source address)
SOURCES = [f"127.0.0.{n}" for n in range(2, 32)]
#: the flood's bounds: connections opened per second, held at most (like the attacker, it
#: never lets go of a connection itself), and opened in all
FLOOD_RATE, FLOOD_HELD, FLOOD_TOTAL = 150, 2000, 6000


@pytest.fixture(scope="module")
def flooded_server(tmp_path_factory):
    tool = require_tool("turnutils_uclient")
    peer_tool = require_tool("turnutils_peer")
    api, turn, turns = free_port(socket.SOCK_STREAM), free_port(), free_port(socket.SOCK_STREAM)
    state = tmp_path_factory.mktemp("turn-flood")
    log = open(state / "twistd.log", "w+")
    server = subprocess.Popen(
        [str(TWISTD), "-n", "--pidfile=", "realtime", "--state-dir", str(state / "state"),
         "--api", f"tcp:{api}:interface=127.0.0.1", "--media-port", "0",
         "--turn-port", str(turn), "--turns-port", str(turns), "--relay-ports", "46000-46999",
         "--allow-loopback-peers", "--turn-key", f"{KEY_ID}:{TOKEN}", *LIMITS],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    peer_port = free_pair()
    peers = [subprocess.Popen([peer_tool, "-L", "127.0.0.1", "-p", str(p)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for p in (peer_port, peer_port + 1)]

    def listening():
        try:
            socket.create_connection(("127.0.0.1", turns), timeout=1).close()
            socket.create_connection(("127.0.0.1", api), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        assert wait_for(listening), "twistd realtime did not start"
        yield {"uclient": tool, "api": f"http://127.0.0.1:{api}", "turn": turn, "turns": turns,
               "peer": peer_port, "log": log}
    finally:
        for process in (*peers, server):
            process.terminate()
        for process in (*peers, server):
            process.wait(10)
        log.close()


class Flood(threading.Thread):
    """Open idle connections to ``tcp`` and ``tls`` ports until stopped (bounded)."""

    def __init__(self, tcp: int, tls: int) -> None:
        super().__init__(daemon=True)
        self.ports = (tcp, tls)
        self.stop = threading.Event()
        self.opened = self.failed = 0
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE
        self.context.set_alpn_protocols(["stun.turn"])

    def run(self) -> None:
        held: collections.deque[socket.socket] = collections.deque()
        try:
            while not self.stop.is_set() and self.opened + self.failed < FLOOD_TOTAL:
                kind = (self.opened + self.failed) % 3
                source = SOURCES[(self.opened + self.failed) % len(SOURCES)]
                sock = socket.socket()
                try:
                    sock.settimeout(2)
                    sock.bind((source, 0))
                    sock.connect(("127.0.0.1", self.ports[0 if kind == 0 else 1]))
                    if kind == 2:
                        sock = self.context.wrap_socket(sock)
                    held.append(sock)
                    self.opened += 1
                except OSError:
                    sock.close()
                    self.failed += 1
                while len(held) > FLOOD_HELD:
                    held.popleft().close()
                self.stop.wait(1 / FLOOD_RATE)
        finally:
            for sock in held:
                sock.close()


@pytest.mark.parametrize("flags", [["-t", "-c"], ["-t", "-S", "-c"], ["-t", "-s", "-c"]],
                         ids=["tcp-channels", "tls-channels", "tcp-indications"])
def test_uclient_allocates_and_relays_during_an_idle_connection_flood(flooded_server, flags):
    server = flooded_server
    flood = Flood(server["turn"], server["turns"])
    flood.start()
    try:
        time.sleep(1.5)                            # the cap (48) is overfilled several times
        username, password = credentials(server)
        port = server["turns"] if "-S" in flags else server["turn"]
        result = uclient(server, flags, username, password, port)
    finally:
        flood.stop.set()
        flood.join(30)
    output = result.stdout + result.stderr
    assert flood.opened + flood.failed > 3 * 48, (flood.opened, flood.failed)
    assert result.returncode == 0, output[-2000:]
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n", output)
    assert totals, output[-2000:]
    assert tuple(map(int, totals[-1])) == (MESSAGES, MESSAGES), output[-2000:]
    assert "Total lost packets 0 (0.000000%)" in output
    server["log"].seek(0)
    log = server["log"].read()
    assert "shed-global" in log, log[-3000:]     # the flood did fill the cap
