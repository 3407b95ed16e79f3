"""
coturn's ``turnutils_uclient`` against our TURN server, with credentials from our API.

Our server runs as ``twistd -n realtime`` on free loopback ports (never 3478:
Debian's coturn package may run a system turnserver there), with
``--allow-loopback-peers`` so that ``turnutils_peer`` echo servers on
127.0.0.1 can be the peers.  Every transport (UDP, TCP, TLS), with channels
(uclient's default) and without (``-s``: Send/Data indications), with and
without uclient's second "RTCP" allocation (``-c`` turns it off), and with an
IPv6 relay to a peer on ::1 (``-x``: REQUESTED-ADDRESS-FAMILY IPv6), must
deliver every one of :data:`MESSAGES` messages (per allocation, every 20 ms)
with zero loss; a wrong password ends in uclient's clean 401 failure.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from realtime.service import has_ipv6_loopback
from tests.conftest import require, require_tool

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
TWISTD = ROOT / ".venv" / "bin" / "twistd"
KEY_ID, TOKEN = "interop", "interop-token-0123456789"
MESSAGES = 100   # per allocation: 2 s at uclient's 20 ms interval (it used to be 5)


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_pair() -> int:
    """Return a port p with p and p+1 free for UDP (uclient sends RTCP to peer port + 1)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def turn_server(tmp_path_factory):
    uclient = require_tool("turnutils_uclient")
    peer_tool = require_tool("turnutils_peer")
    api, turn, turns = free_port(socket.SOCK_STREAM), free_port(), free_port(socket.SOCK_STREAM)
    state = tmp_path_factory.mktemp("turn-state")
    server = subprocess.Popen(
        [str(TWISTD), "-n", "--pidfile=", "realtime", "--state-dir", str(state),
         "--api", f"tcp:{api}:interface=127.0.0.1", "--media-port", "0",
         "--turn-port", str(turn), "--turns-port", str(turns), "--relay-ports", "45000-45999",
         "--allow-loopback-peers", "--turn-key", f"{KEY_ID}:{TOKEN}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    peer_port = free_pair()
    peers = [subprocess.Popen([peer_tool, "-L", host, "-p", str(p)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for p in (peer_port, peer_port + 1) for host in ("127.0.0.1", "::1")]
    base = f"http://127.0.0.1:{api}"

    def api_up():
        try:
            urllib.request.urlopen(base + "/v1/turn/keys/x/usage", timeout=1)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    try:
        assert wait_for(api_up), "twistd realtime did not start"
        yield {"uclient": uclient, "api": base, "turn": turn, "turns": turns, "peer": peer_port}
    finally:
        for process in (*peers, server):
            process.terminate()
        for process in (*peers, server):
            process.wait(10)


def api(server, method, path, body=None):
    request = urllib.request.Request(
        server["api"] + path, method=method, data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
        return response.status, json.loads(raw) if raw else None


def credentials(server):
    status, body = api(server, "POST", f"/v1/turn/keys/{KEY_ID}/credentials/generate-ice-servers",
                       {"ttl": 600, "customIdentifier": "uclient"})
    assert status == 201
    relay = body["iceServers"][1]
    assert f"turn:127.0.0.1:{server['turn']}?transport=udp" in relay["urls"]
    assert f"turns:127.0.0.1:{server['turns']}?transport=tcp" in relay["urls"]
    return relay["username"], relay["credential"]


def uclient(server, flags, username, password, port, peer="127.0.0.1"):
    command = [server["uclient"], *flags, "-n", str(MESSAGES), "-u", username, "-w", password,
               "-e", peer, "-r", str(server["peer"]), "-p", str(port), "127.0.0.1"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("flags", [
    [], ["-c"], ["-s", "-c"], ["-t"], ["-t", "-c"], ["-t", "-s", "-c"],
    ["-t", "-S"], ["-t", "-S", "-c"], ["-t", "-S", "-s", "-c"],
], ids=["udp-channels-rtcp", "udp-channels", "udp-indications", "tcp-channels-rtcp",
        "tcp-channels", "tcp-indications", "tls-channels-rtcp", "tls-channels",
        "tls-indications"])
def test_every_message_delivered(turn_server, flags):
    username, password = credentials(turn_server)
    port = turn_server["turns"] if "-S" in flags else turn_server["turn"]
    result = uclient(turn_server, flags, username, password, port)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    totals = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n", output)
    assert totals, output[-2000:]
    sent, received = map(int, totals[-1])
    assert sent == received == (MESSAGES if "-c" in flags else 2 * MESSAGES), output[-2000:]
    assert "Total lost packets 0 (0.000000%)" in output
    assert "ERROR" not in output


@pytest.mark.parametrize("flags", [[], ["-s", "-c"], ["-t", "-c"]],
                         ids=["udp-channels-rtcp", "udp-indications", "tcp-channels"])
def test_ipv6_relay_to_an_ipv6_peer(turn_server, flags):
    """``-x`` asks for an IPv6 relayed address (REQUESTED-ADDRESS-FAMILY); ``--relay-ipv6``
    defaults to ::1 beside the 127.0.0.1 public IP, so the relay is [::1]:port."""
    require(has_ipv6_loopback(), "this host has no ::1 (--relay-ipv6 defaults to none)")
    username, password = credentials(turn_server)
    result = uclient(turn_server, ["-v", "-x", *flags], username, password, turn_server["turn"],
                     peer="::1")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    sent, received = map(int, re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\n",
                                         output)[-1])
    assert sent == received == (MESSAGES if "-c" in flags else 2 * MESSAGES), output[-2000:]
    assert "Total lost packets 0 (0.000000%)" in output
    assert "ERROR" not in output
    assert "IPv6. Received relay addr: ::1:" in output  # uclient -v prints the relayed address


def test_wrong_password_gets_the_401_flow(turn_server):
    username, _ = credentials(turn_server)
    result = uclient(turn_server, ["-c"], username, "not-the-password", turn_server["turn"])
    output = result.stdout + result.stderr
    assert "Cannot complete Allocation" in output
    assert "tot_recv_msgs" not in output


def test_usage_is_metered_per_custom_identifier(turn_server):
    username, password = credentials(turn_server)
    assert uclient(turn_server, ["-c"], username, password, turn_server["turn"]).returncode == 0
    status, usage = api(turn_server, "GET",
                        f"/v1/turn/keys/{KEY_ID}/usage?customIdentifier=uclient&since=0")
    assert status == 200, usage
    assert usage["egressBytes"] > MESSAGES * 100 and usage["ingressBytes"] > MESSAGES * 100, usage
    status, _ = api(turn_server, "POST", f"/v1/turn/keys/{KEY_ID}/credentials/{username}/revoke")
    assert status == 204
    result = uclient(turn_server, ["-c"], username, password, turn_server["turn"])
    assert "Cannot complete Allocation" in result.stdout + result.stderr
