"""
bench/turn_relay.py: our TURN server and coturn side by side, same C load, same machine.

Run (full, ~5 min on an idle machine; ``--quick`` ~1.5 min)::

    .venv/bin/python bench/turn_relay.py
    .venv/bin/python bench/turn_relay.py --quick

The load is coturn's own C tools, so that the server, not a Python client, is
what saturates: ``turnutils_uclient`` (several processes, ``-m`` clients each,
UDP, one allocation and one channel per client, ``-c``: no second "RTCP"
allocation, ``-z 0``: send as fast as its timer allows, 100-byte messages)
and one ``turnutils_peer`` UDP echo peer on 127.0.0.1.  Every message
crosses the server twice (ChannelData client -> relay -> peer, peer -> relay
-> ChannelData client), so *relayed packets* = 2 x messages received back.

For each server (``twistd realtime`` with credentials from its API --
``ours``, or ``ours-workers2``: ``--workers 2``, its CPU summed over the
process tree -- and coturn's ``turnserver`` with a static long-term user) the number of clients
steps up (``--clients``); every step gets a fresh server process (so no
5-tuple of an earlier step can meet a leftover allocation: coturn's 437).
Two steps in a row that lose packets stop the sweep; a step that fails (a uclient
that cannot allocate or does not finish) is run again on a fresh server, up
to three times, and stops the sweep if it fails every time.  Per step, over the steady sending
window (from every uclient's first progress line with replies to the first
one to finish, each line time-stamped here as it is printed):

* relayed packets/s, and the loss (uclient's sent - received, whole step);
* server CPU (all threads, ``/proc/PID/task/*/schedstat``) in cores, and
  CPU-µs per relayed packet;
* the load generator's own CPU (all uclients + the peer) in cores: if it
  nears the machine's core count, the figure measures the client, not the
  server;
* where datagrams were dropped for a full receive buffer, per socket role
  (the ``drops`` column of /proc/net/udp, sampled every 0.5 s): the
  server's listening socket, its relayed sockets, the echo peer, the
  clients; a drop there means that socket was not read fast enough for
  uclient's bursts (the machine-wide ``RcvbufErrors`` is in the JSON).

Reported per server: the highest relayed packets/s of a step with zero loss,
and the CPU per packet of that step; and the highest of any step, with its
loss.  Then **allocations/s**
(bench/turn_allocate.py): ``--allocation-processes`` Python workers doing
Allocate + Refresh(0) against a fresh server, robust against coturn's 437
Allocation Mismatch (retried on a new 5-tuple, counted) and 508 Insufficient
Capacity (retried after a pause, counted).

Our server runs with ``--turn-user-allocations`` raised (all clients share
one username; the default, 16, would answer 486) and its default
``--turn-packet-rate`` (10,000 datagrams/s per allocation: far above the
~1,000/s one uclient client sends).  coturn runs with its defaults (relay
threads = cores).  Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from forward_servers import cpu_seconds, stop_process, tree_cpu_seconds  # noqa: E402
from record import Record  # noqa: E402
from turn_allocate import allocation_rate  # noqa: E402

PROGRESS = re.compile(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)")


def free_port(kind=socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_receive_errors() -> int:
    """The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets)."""
    names, values = [line.split()[1:] for line in Path("/proc/net/snmp").read_text().splitlines()
                     if line.startswith("Udp:")][:2]
    return int(values[names.index("RcvbufErrors")])


def socket_drops() -> dict[int, tuple[int, int]]:
    """Per UDP socket (inode): (local port, datagrams dropped so far), from /proc/net/udp."""
    found = {}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        found[int(fields[9])] = (int(fields[1].split(":")[1], 16), int(fields[-1]))
    return found


def classify_drops(seen: dict[int, tuple[int, int]], server, peer) -> dict[str, int]:
    """Sum the drops of every socket seen during a step by role: the server's listening
    socket, its relayed sockets (its --relay-ports range), the echo peer, the clients."""
    roles = {"server": 0, "relay": 0, "peer": 0, "client": 0}
    low, high = server.relay_ports
    for port, drops in seen.values():
        role = ("server" if port == server.port else "peer" if port == peer.port
                else "relay" if low <= port <= high else "client")
        roles[role] += drops
    return roles


def safe_cpu(pid: int, last: float) -> float:
    """CPU seconds of ``pid``; ``last`` if it has exited since."""
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return last


class Ours:
    name = "ours"
    label = "realtime (ours)"
    relay_ports = (46000, 47999)
    workers = 1

    def __init__(self, workdir: Path) -> None:
        api, self.port = free_port(socket.SOCK_STREAM), free_port()
        token = "bench-token-0123456789"
        # with --workers the ports are shared (SO_REUSEPORT), so none may be 0
        media = str(free_port()) if self.workers > 1 else "0"
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/twistd"), "-n", "--pidfile=", "realtime", "--state-dir",
             str(workdir / "ours"), "--api", f"tcp:{api}:interface=127.0.0.1", "--media-port", media,
             "--turn-port", str(self.port), "--turns-port", str(free_port(socket.SOCK_STREAM)),
             "--relay-ports", "%d-%d" % self.relay_ports, "--allow-loopback-peers",
             "--turn-user-allocations", "100000", "--turn-key", f"bench:{token}",
             *(("--workers", str(self.workers)) if self.workers > 1 else ())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 30
        while self.workers > 1 and self._bound() < self.workers:  # every worker's TURN socket
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"twistd realtime --workers {self.workers} did not start")
            time.sleep(0.1)
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{api}/v1/turn/keys/bench/credentials/generate-ice-servers",
                    data=b'{"ttl": 3600}', headers={"Authorization": f"Bearer {token}"})
                relay = json.load(urllib.request.urlopen(request, timeout=1))["iceServers"][1]
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("twistd realtime did not start")
                time.sleep(0.1)
        self.username, self.password = relay["username"], relay["credential"]

    def _bound(self) -> int:
        """How many UDP sockets are bound to the TURN port (one per worker)."""
        return sum(port == self.port for port, _ in socket_drops().values())

    def cpu(self, last: float) -> float:
        """CPU seconds of the server (its whole process tree with workers); ``last`` if gone."""
        try:
            return tree_cpu_seconds(self.process.pid) if self.workers > 1 \
                else cpu_seconds(self.process.pid)
        except (FileNotFoundError, ProcessLookupError):
            return last

    def stop(self) -> None:
        stop_process(self.process)


class OursWorkers2(Ours):
    """``--workers 2``: two processes share the TURN port (SO_REUSEPORT, the kernel spreads
    clients by 5-tuple) and the relay port range; CPU is the whole process tree's."""

    name = "ours-workers2"
    label = "realtime --workers 2"
    workers = 2


class Coturn(Ours):
    name = "coturn"
    label = "coturn turnserver"
    relay_ports = (48000, 49999)

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.username, self.password = "alice", "wonderland"
        self.process = subprocess.Popen(
            ["turnserver", "-n", "--no-cli", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             f"--listening-port={self.port}", f"--min-port={self.relay_ports[0]}",
             f"--max-port={self.relay_ports[1]}", "--no-tls",
             "--no-dtls", "--realm=example.org", "--allow-loopback-peers", "--lt-cred-mech",
             f"--user={self.username}:{self.password}", f"--pidfile={workdir}/coturn.pid",
             "--log-file=stdout", "--simple-log", "--no-stdout-log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._listening():  # coturn has no readiness signal: probe with a Binding
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("turnserver did not start")
            time.sleep(0.1)

    def _listening(self) -> bool:
        binding = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            s.sendto(binding, ("127.0.0.1", self.port))
            try:
                return s.recv(2048)[:2] == b"\x01\x01"
            except OSError:
                return False


SERVERS = {"ours": Ours, "ours-workers2": OursWorkers2, "coturn": Coturn}


class Load:
    """One ``turnutils_uclient`` process; its progress lines, time-stamped on arrival."""

    def __init__(self, server, clients: int, messages: int, peer: int, length: int) -> None:
        command = ["turnutils_uclient", "-c", "-z", "0", "-m", str(clients), "-n", str(messages),
                   "-l", str(length), "-u", server.username, "-w", server.password,
                   "-e", "127.0.0.1", "-r", str(peer), "-p", str(server.port), "127.0.0.1"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, errors="replace")
        self.pid = self.process.pid
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, sent, received)
        self.final: tuple[int, int] | None = None
        self.tail: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            now = time.monotonic()
            self.tail = (self.tail + [line.rstrip()])[-8:]
            match = PROGRESS.search(line)
            if match and "msz=" in line:
                self.samples.append((now, int(match[1]), int(match[2])))
            elif match:
                self.final = (int(match[1]), int(match[2]))

    def received_at(self, t: float) -> float:
        """Messages received back by time ``t`` (linear between progress lines)."""
        points = [(s[0], s[2]) for s in self.samples]
        for (t0, r0), (t1, r1) in zip(points, points[1:]):
            if t0 <= t <= t1:
                return r0 + (r1 - r0) * (t - t0) / (t1 - t0) if t1 > t0 else r1
        return points[-1][1] if t > points[-1][0] else points[0][1]

    def replying_from(self) -> float | None:
        """Time of the last progress line before replies started (start of steady sending)."""
        for before, sample in zip(self.samples, self.samples[1:]):
            if sample[2] > 0:
                return before[0] if before[2] == 0 else sample[0]
        return None


def interpolate(series: list[tuple[float, float]], t: float) -> float:
    """Value of a (time, value) series at ``t``, linear between samples."""
    for (t0, v0), (t1, v1) in zip(series, series[1:]):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1
    return series[-1][1] if t > series[-1][0] else series[0][1]


def step(server, clients: int, options, peer) -> dict:
    """Run ``clients`` uclient clients (in processes of ``--per-process``) against ``server``."""
    processes = math.ceil(clients / options.per_process)
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    drops0 = udp_receive_errors()
    loads = [Load(server, share, options.messages, peer.port, options.length) for share in shares]
    server_series, load_series, cpu, seen = [], [], {}, {}
    baseline = socket_drops()  # sockets of other programs: only their growth counts
    next_scan = 0.0
    deadline = time.monotonic() + 60 + 3 * options.messages / 1000 + clients * 0.3
    while any(load.process.poll() is None for load in loads) and time.monotonic() < deadline:
        now = time.monotonic()
        server_series.append((now, server.cpu(server_series[-1][1] if server_series else 0.0)))
        for pid in [load.pid for load in loads] + [peer.pid]:
            cpu[pid] = safe_cpu(pid, cpu.get(pid, 0.0))
        load_series.append((now, sum(cpu.values())))
        if now >= next_scan:  # a socket's drop counter lives as long as the socket
            for inode, (port, drops) in socket_drops().items():
                before = baseline.get(inode, (port, 0))[1]
                seen[inode] = (port, max(seen.get(inode, (port, 0))[1], drops - before))
            next_scan = now + 0.5
        time.sleep(0.1)
    timed_out = [load for load in loads if load.process.poll() is None]
    for load in loads:
        if load.process.poll() is None:
            load.process.kill()
        load.process.wait()
        load.thread.join(5)
    result = {"clients": clients, "processes": processes, "timed_out": len(timed_out),
              "kernel_rcvbuf_drops": udp_receive_errors() - drops0,
              "drops_by_socket": classify_drops(seen, server, peer)}
    if any(load.final is None for load in loads):
        tails = next(load.tail for load in loads if load.final is None)
        result["error"] = "uclient did not finish: " + " | ".join(tails[-3:])[:400]
        return result
    sent = sum(load.final[0] for load in loads)
    received = sum(load.final[1] for load in loads)
    result.update(sent=sent, received=received, lost=sent - received,
                  loss=(sent - received) / sent if sent else None)
    starts = [load.replying_from() for load in loads]
    if None in starts:
        result["error"] = "no steady window (a uclient printed fewer than two progress lines)"
        return result
    t0 = max(starts)
    t1 = min(load.samples[-1][0] for load in loads)
    if t1 - t0 < 0.5:
        result["error"] = f"steady window too short ({t1 - t0:.2f} s): raise --messages"
        return result
    got = sum(load.received_at(t1) - load.received_at(t0) for load in loads)
    relayed = 2 * got
    server_cpu = interpolate(server_series, t1) - interpolate(server_series, t0)
    load_cpu = interpolate(load_series, t1) - interpolate(load_series, t0)
    result.update(window=t1 - t0, relayed_pps=relayed / (t1 - t0),
                  server_cores=server_cpu / (t1 - t0), load_cores=load_cpu / (t1 - t0),
                  cpu_us_per_packet=server_cpu / relayed * 1e6 if relayed else None)
    return result


class Peer:
    """The ``turnutils_peer`` echo peer on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


STEP_HEADER = (f"{'server':<13} {'clients':>7} {'procs':>5} {'relayed pkt/s':>13} {'lost':>7} "
               f"{'server cores':>12} {'CPU-µs/pkt':>10} {'load cores':>10} "
               f"{'drops server/relay/peer/client':>30}")


def step_row(name: str, r: dict) -> str:
    if "relayed_pps" not in r:
        return f"{name:<13} {r['clients']:>7} {r['processes']:>5}  {r.get('error', 'failed')}"
    return (f"{name:<13} {r['clients']:>7} {r['processes']:>5} {r['relayed_pps']:>13.0f} "
            f"{r['lost']:>7} {r['server_cores']:>12.2f} {r['cpu_us_per_packet']:>10.2f} "
            f"{r['load_cores']:>10.2f} {'/'.join(map(str, r['drops_by_socket'].values())):>30}")


def sweep(record: Record, cls, options, workdir: Path) -> dict:
    """Step the client count up on fresh servers until a step loses packets."""
    peer = Peer()
    steps, lossy = [], 0
    try:
        for clients in options.clients:
            started = time.monotonic()
            for attempt in (1, 2, 3):  # a step that fails (not: loses) is run again, fresh
                server = cls(workdir)
                try:
                    result = step(server, clients, options, peer)
                finally:
                    server.stop()
                result["attempt"] = attempt
                if not result.get("error"):
                    break
            result["step_seconds"] = round(time.monotonic() - started, 1)
            steps.append(result)
            record.print(step_row(cls.name, result))
            lossy = lossy + 1 if result.get("lost") else 0
            if result.get("error") or lossy == 2:
                break
    finally:
        peer.stop()
    clean = [s for s in steps if "relayed_pps" in s and s["lost"] == 0]
    best = max(clean, key=lambda s: s["relayed_pps"]) if clean else None
    measured = [s for s in steps if "relayed_pps" in s]
    peak = max(measured, key=lambda s: s["relayed_pps"]) if measured else None
    return {"steps": steps, "best": best, "peak": peak}


def allocations(cls, options, workdir: Path) -> dict:
    server = cls(workdir)
    try:
        return allocation_rate(("127.0.0.1", server.port), server.username, server.password,
                               options.allocations, options.allocation_processes)
    finally:
        server.stop()


SUMMARY = [  # (label, where in a server's results, format); ratio ours/coturn unless no_ratio
    ("max relayed pkt/s, zero loss", ("best", "relayed_pps"), "{:.0f}"),
    ("  at clients", ("best", "clients"), "{:.0f}"),
    ("  CPU-µs per relayed packet", ("best", "cpu_us_per_packet"), "{:.2f}"),
    ("  server CPU (cores)", ("best", "server_cores"), "{:.2f}"),
    ("  load generator CPU (cores)", ("best", "load_cores"), "{:.2f}"),
    ("peak relayed pkt/s, any loss", ("peak", "relayed_pps"), "{:.0f}"),
    ("  its loss", ("peak", "loss"), "{:.3%}"),
    ("  its CPU-µs per relayed packet", ("peak", "cpu_us_per_packet"), "{:.2f}"),
    ("allocations/s", ("allocate", "per_second"), "{:.0f}"),
    ("  allocation clients CPU (cores)", ("allocate", "client_cpu_cores"), "{:.2f}"),
    ("  437 answers (retried)", ("allocate", "mismatch_437"), "{}"),
    ("  508 answers (retried)", ("allocate", "capacity_508"), "{}"),
    ("  timeouts (retried)", ("allocate", "timeouts"), "{}"),
]
NO_RATIO = {"  at clients", "  its loss", "  437 answers (retried)", "  508 answers (retried)",
            "  timeouts (retried)"}


def summary(record: Record, results: dict) -> None:
    """Print one column per server and the ratio of each of ours to coturn."""
    ours = [name for name in results if name != "coturn"] if "coturn" in results else []
    record.print()
    record.print(f"{'':<34}" + "".join(f"{name:>14}" for name in results)
                 + "".join(f"{name + '/coturn':>21}" for name in ours))
    for label, (part, key), fmt in SUMMARY:
        values = {}
        for name, r in results.items():
            where = r["allocate"] if part == "allocate" else r["relay"][part]
            values[name] = (where or {}).get(key)
        cells = "".join(f"{fmt.format(v) if v is not None else '-':>14}" for v in values.values())
        ratios = ""
        for name in ours:
            if label in NO_RATIO or values[name] is None or not values["coturn"]:
                ratios += f"{'':>21}"
            else:
                ratios += f"{values[name] / values['coturn']:>21.2f}"
        record.print(f"{label:<34}{cells}{ratios}".rstrip())
    for name, r in results.items():
        for error in r["allocate"].get("errors", []):
            record.print(f"  {name} allocation worker: {error}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="ours,coturn",
                        help="any of ours,ours-workers2,coturn")
    parser.add_argument("--clients", default="10,25,50,100,200,300,400,600",
                        help="uclient clients per step (comma-separated, ascending)")
    parser.add_argument("--per-process", type=int, default=25, help="clients per uclient process")
    parser.add_argument("--messages", type=int, default=3000,
                        help="messages per client per step (uclient sends ~400-700/s per client)")
    parser.add_argument("--length", type=int, default=100, help="message bytes")
    parser.add_argument("--allocations", type=int, default=2000)
    parser.add_argument("--allocation-processes", type=int, default=4)
    parser.add_argument("--quick", action="store_true",
                        help="clients 25,100,200; 1,500 messages; 400 allocations (~1.5 min)")
    parser.add_argument("--json", help="write the JSON here (default bench/results/turn_relay.json)")
    options = parser.parse_args(argv)
    if options.quick:
        options.clients, options.messages, options.allocations = "25,100,200", 1500, 400
    options.clients = [int(n) for n in options.clients.split(",")]
    for tool in ("turnutils_uclient", "turnutils_peer", "turnserver"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found: apt-get install coturn (scripts/install-interop-tools)")
    record = Record("turn_relay", {k: v for k, v in vars(options).items() if k != "json"},
                    options.json)
    record.print(f"load: turnutils_uclient -c -z 0 -l {options.length} -n {options.messages}, "
                 f"{options.per_process} clients per process; echo peer turnutils_peer")
    record.print(STEP_HEADER)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in options.servers.split(","):
            relay = sweep(record, SERVERS[name], options, Path(tmp))
            allocate = allocations(SERVERS[name], options, Path(tmp))
            results[name] = {"relay": relay, "allocate": allocate}
    summary(record, results)
    record.save(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
