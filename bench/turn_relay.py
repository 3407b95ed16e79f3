"""
bench/turn_relay.py: our TURN server and coturn side by side, same load, same machine.

Run: ``.venv/bin/python bench/turn_relay.py [--packets 20000] [--allocations 300]``

For each server (``twistd realtime`` and coturn's ``turnserver``, started on
free loopback ports with loopback peers allowed) it measures:

* **relayed packets/s**: eight client allocations, each with a channel to a
  UDP echo peer (this script), 100-byte ChannelData sent in windows of 32,
  round robin; every packet crosses the server twice (client -> peer,
  peer -> client);
* **CPU-seconds per relayed packet**: the server process's user+system time
  (``/proc/PID/stat``) over the run, divided by the packets it relayed;
* **allocations/s**: sequential 401 + Allocate + Refresh(0), one client
  socket each.

It prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.stun.attributes import (  # noqa: E402
    ChannelNumber, ErrorCode, Lifetime, Nonce, Realm, RequestedTransport, Username,
    XorPeerAddress,
)
from realtime.stun.credentials import long_term_key  # noqa: E402
from realtime.stun.message import StunClass, StunMessage, StunMethod, encode_message  # noqa: E402
from realtime.turn.channel_data import frame_channel_data  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Echo(threading.Thread):
    """A UDP echo peer on 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
                self.sock.sendto(data, addr)
            except OSError:
                return


class TurnClient:
    """A blocking UDP TURN client (long-term credentials, learns realm and nonce from 401)."""

    def __init__(self, server: tuple[str, int], username: str, password: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2.0)
        self.server, self.username, self.password = server, username, password
        self.realm = self.nonce = None
        self.counter = 0

    def request(self, method: int, attributes: list) -> StunMessage:
        self.counter += 1
        tid = os.urandom(8) + self.counter.to_bytes(4, "big")
        extra, key = [], None
        if self.realm is not None:
            extra = [Username(self.username), Realm(self.realm), Nonce(self.nonce)]
            key = long_term_key(self.username, self.realm, self.password)
        data = encode_message(method, StunClass.REQUEST, tid, [*attributes, *extra],
                              integrity_key=key, fingerprint=True)
        self.sock.sendto(data, self.server)
        while True:
            answer = StunMessage.decode(self.sock.recv(4096))
            if answer.transaction_id == tid:
                break
        error = answer.find(ErrorCode)
        if error is not None and error.code in (401, 438) and answer.find(Nonce):
            first = self.realm is None or error.code == 438
            self.realm, self.nonce = answer.find(Realm).value, answer.find(Nonce).value
            if first:
                return self.request(method, attributes)
        return answer

    def close(self) -> None:
        self.sock.close()


def relay_rate(server, username, password, echo_port, packets, allocations=8):
    """Relay ``packets`` ChannelData round trips, windows spread over ``allocations``
    allocations (ours limits each to 10 000 packets/s, as Cloudflare does)."""
    clients = []
    for _ in range(allocations):
        client = TurnClient(server, username, password)
        answer = client.request(StunMethod.ALLOCATE, [RequestedTransport(17)])
        assert answer.message_class is StunClass.SUCCESS, answer.summary()
        answer = client.request(StunMethod.CHANNEL_BIND,
                                [ChannelNumber(0x4000), XorPeerAddress.of("127.0.0.1", echo_port)])
        assert answer.message_class is StunClass.SUCCESS, answer.summary()
        client.sock.settimeout(0.5)
        clients.append(client)
    message = frame_channel_data(0x4000, b"x" * 100)
    received = 0
    start = time.perf_counter()
    window = 32
    for round_number in range(packets // window):
        sock = clients[round_number % allocations].sock
        for _ in range(window):
            sock.sendto(message, server)
        got = 0
        try:
            while got < window:
                sock.recv(2048)
                got += 1
        except socket.timeout:
            pass
        received += got
    elapsed = time.perf_counter() - start
    for client in clients:
        client.sock.settimeout(2.0)
        client.request(StunMethod.REFRESH, [Lifetime(0)])
        client.close()
    return received, elapsed


def allocation_rate(server, username, password, count):
    """Allocate and delete ``count`` times; clients reuse the first one's realm and nonce
    (a nonce is per client host), so only the first pays the 401 round trip."""
    realm = nonce = None
    clients = []
    start = time.perf_counter()
    for _ in range(count):
        for _attempt in range(3):
            client = TurnClient(server, username, password)
            client.realm, client.nonce = realm, nonce
            answer = client.request(StunMethod.ALLOCATE, [RequestedTransport(17)])
            error = answer.find(ErrorCode)
            if error is None or error.code != 437:
                break
            # 437 Allocation Mismatch (RFC 8656 §7.2): the kernel handed this
            # socket a port an earlier client used and the server still holds
            # that 5-tuple's allocation; try again from another port.
            clients.append(client)
        assert answer.message_class is StunClass.SUCCESS, answer.summary()
        client.request(StunMethod.REFRESH, [Lifetime(0)])
        realm, nonce = client.realm, client.nonce
        clients.append(client)  # kept open: a reused 5-tuple would look like a retransmission
    rate = count / (time.perf_counter() - start)
    for client in clients:
        client.close()
    return rate


def start_ours(workdir: Path):
    api, turn = free_port(socket.SOCK_STREAM), free_port()
    token = "bench-token-0123456789"
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/twistd"), "-n", "--pidfile=", "realtime", "--state-dir",
         str(workdir / "ours"), "--api", f"tcp:{api}:interface=127.0.0.1", "--media-port", "0",
         "--turn-port", str(turn), "--turns-port", str(free_port(socket.SOCK_STREAM)),
         "--relay-ports", "46000-46999", "--allow-loopback-peers", "--turn-key", f"bench:{token}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    body = None
    for _ in range(100):
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{api}/v1/turn/keys/bench/credentials/generate-ice-servers",
                data=b'{"ttl": 3600}', headers={"Authorization": f"Bearer {token}"})
            body = json.load(urllib.request.urlopen(request, timeout=1))
            break
        except OSError:
            time.sleep(0.1)
    relay = body["iceServers"][1]
    return process, ("127.0.0.1", turn), relay["username"], relay["credential"]


def start_coturn(workdir: Path):
    turn = free_port()
    process = subprocess.Popen(
        ["turnserver", "-n", "--no-cli", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
         f"--listening-port={turn}", "--min-port=47000", "--max-port=47999", "--no-tls",
         "--no-dtls", "--realm=example.org", "--allow-loopback-peers", "--lt-cred-mech",
         "--user=alice:wonderland", f"--pidfile={workdir}/coturn.pid", "--log-file=stdout",
         "--simple-log", "--no-stdout-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return process, ("127.0.0.1", turn), "alice", "wonderland"


def measure(name, start, workdir, echo, args):
    process, server, username, password = start(workdir)
    try:
        time.sleep(0.3)
        relay_rate(server, username, password, echo.port, 640)  # warm up
        cpu0 = cpu_seconds(process.pid)
        received, elapsed = relay_rate(server, username, password, echo.port, args.packets)
        cpu = cpu_seconds(process.pid) - cpu0
        relayed = 2 * received
        allocations = allocation_rate(server, username, password, args.allocations)
        return {"name": name, "relayed": relayed, "pps": relayed / elapsed,
                "cpu_per_packet": cpu / relayed if relayed else float("nan"),
                "lost": args.packets // 32 * 32 - received, "allocations": allocations}
    finally:
        process.terminate()
        process.wait(10)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--allocations", type=int, default=300)
    parser.add_argument("--ours-only", action="store_true", help="skip coturn")
    args = parser.parse_args(argv)
    echo = Echo()
    echo.start()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(measure("realtime (ours)", start_ours, Path(tmp), echo, args))
        if shutil.which("turnserver") and not args.ours_only:
            results.append(measure("coturn turnserver", start_coturn, Path(tmp), echo, args))
    print(f"{'server':20} {'relayed pkt/s':>14} {'CPU-µs/pkt':>11} {'lost':>6} {'alloc/s':>9}")
    for r in results:
        print(f"{r['name']:20} {r['pps']:14.0f} {r['cpu_per_packet'] * 1e6:11.1f} "
              f"{r['lost']:6d} {r['allocations']:9.0f}")
    if len(results) == 2:
        ours, coturn = results
        print(f"ratios ours/coturn: packets/s {ours['pps'] / coturn['pps']:.2f}, CPU per packet "
              f"{ours['cpu_per_packet'] / coturn['cpu_per_packet']:.2f}, allocations/s "
              f"{ours['allocations'] / coturn['allocations']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
