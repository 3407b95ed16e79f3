"""
bench/setup.py: server-side session setup time, first STUN check to DTLS connected.

Run: ``.venv/bin/python bench/setup.py [--sessions 200] [--rate 20]`` (as root: it
captures on ``lo`` with tcpdump).

One ``twistd realtime`` (``tests/interop/realtime_server.Server``, an app
configured) gets ``--sessions`` new sessions at ``--rate`` per second; each
is one publisher :class:`forward_peer.Leg` (the benchmark's light real
client: ICE controlling, DTLS-SRTP, built from the project's codecs; aiortc
would spend the two cores on itself) pushing audio+video through the
Cloudflare-compatible API (``sessions/new``, ``tracks/new``), then left
connected and idle (consent checks) until the end, so later sessions meet
a server already holding the earlier ones.

The times are the server's, read off the wire at its socket: ``tcpdump -i
lo`` captures the media port, and per client port

* **start** = the first STUN message (RFC 7983 first byte 0-3) the server
  receives from it (the first connectivity check);
* **connected** = the last DTLS record (first byte 20-63) the server sends
  to it within 10 s of the start: the server's final handshake flight,
  written the moment its DTLS side is done and SRTP keys exist.

It prints p50/p90/p99/max of connected - start, and the client-side time
(first check sent to the leg's own ``connected``) beside it, and writes
``bench/results/setup.json`` through ``bench/record.py`` (commit, date,
machine, parameters, printed lines; ``results``: params and rows).  It is not a test.  Everything stays on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from forward_peer import Leg  # noqa: E402
from forward_signal import OursSignalling, publisher_media  # noqa: E402
from realtime.dtls.certificate import Certificate  # noqa: E402
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server  # noqa: E402

CONNECT_TIMEOUT = 15.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def read_pcap(path: Path):
    """Yield ``(time, src port, dst port, payload)`` of the UDP/IPv4 packets of a pcap file."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    link = {1: 14, 113: 16, 276: 20}.get(linktype, 14)   # Ethernet, Linux cooked v1/v2
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack_from(endian + "IIII", data, offset)
        packet = data[offset + 16: offset + 16 + captured]
        offset += 16 + captured
        stamp = seconds + fraction / (1e9 if nano else 1e6)
        ip = packet[link:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        header = (ip[0] & 15) * 4
        src, dst = struct.unpack_from("!HH", ip, header)
        yield stamp, src, dst, ip[header + 8:]


def server_times(pcap: Path, media_port: int, clients: set[int]) -> dict[int, float]:
    """Return ``{client port: connected - start}`` read from the capture (see the docstring)."""
    start: dict[int, float] = {}
    done: dict[int, float] = {}
    for stamp, src, dst, payload in read_pcap(pcap):
        if not payload:
            continue
        first = payload[0]
        if dst == media_port and src in clients and first < 4 and src not in start:
            start[src] = stamp
        elif src == media_port and dst in start and 20 <= first < 64:
            if stamp - start[dst] < 10.0:
                done[dst] = stamp
    return {port: done[port] - start[port] for port in done}


def run(args) -> dict:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise SystemExit("tcpdump is needed (apt-get install tcpdump)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-setup-"))
    server = Server(workdir / "state", app=True)
    capture = workdir / "setup.pcap"
    dump = None
    legs: list[Leg] = []
    try:
        server.wait_ready()
        dump = subprocess.Popen(
            [tcpdump, "-i", "lo", "-n", "-U", "-B", "8192", "-s", "96", "-w", str(capture),
             f"udp and port {server.media}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        signalling = OursSignalling(server.api_url(), APP_ID, APP_SECRET)
        certificate = Certificate.generate(time.time())
        selector = selectors.DefaultSelector()
        checks: dict[Leg, float] = {}
        connected: dict[Leg, float] = {}
        begin = time.monotonic()
        deadline = begin + args.sessions / args.rate + CONNECT_TIMEOUT
        failures = 0

        def pump(timeout: float) -> None:
            for key, _ in selector.select(timeout):
                leg = key.data
                now = time.monotonic()
                while True:
                    try:
                        data, addr = leg.sock.recvfrom(2048)
                    except OSError:
                        break
                    leg.receive(data, addr, now)
            now = time.monotonic()
            for leg in legs:
                if leg.state == "checking" and leg not in checks:
                    checks[leg] = now
                leg.tick(now)
                if leg.state == "connected" and leg not in connected:
                    connected[leg] = now

        while time.monotonic() < deadline:
            due = begin + len(legs) / args.rate
            if len(legs) < args.sessions and time.monotonic() >= due:
                leg = Leg(certificate)
                leg.sock.setblocking(False)
                try:
                    signalling.publish(leg, publisher_media(len(legs) * 2 + 1, len(legs) * 2 + 2))
                except (OSError, RuntimeError) as error:
                    failures += 1
                    print(f"session {len(legs)}: {error}", file=sys.stderr)
                legs.append(leg)
                selector.register(leg.sock, selectors.EVENT_READ, leg)
                continue
            if len(legs) >= args.sessions and all(
                    leg.state in ("connected", "failed") for leg in legs):
                break
            pump(max(0.0, min(0.01, due - time.monotonic())))
        pump(0.5)
        elapsed = time.monotonic() - begin
    finally:
        if dump is not None:
            time.sleep(0.5)
            dump.terminate()
            dump.wait(10)
        for leg in legs:
            leg.close()
        server.stop()
    ports = {leg.port for leg in legs}
    wire = server_times(capture, server.media, ports)
    shutil.rmtree(workdir, ignore_errors=True)
    client = [connected[leg] - checks[leg] for leg in connected if leg in checks]
    wire_ms = [1000 * t for t in wire.values()]
    client_ms = [1000 * t for t in client]
    rows = []
    for name, values in (("server (wire at the media port)", wire_ms),
                         ("client (leg: first check -> connected)", client_ms)):
        rows.append({"measure": name, "sessions": len(values),
                     "p50_ms": percentile(values, 0.5), "p90_ms": percentile(values, 0.9),
                     "p99_ms": percentile(values, 0.99),
                     "max_ms": max(values) if values else float("nan")})
    return {"params": {"sessions": args.sessions, "rate_per_s": args.rate,
                       "client": "bench/forward_peer.Leg (publisher, audio+video)",
                       "elapsed_s": round(elapsed, 2), "signalling_failures": failures,
                       "not_connected": len(legs) - len(connected),
                       "load_average": os.getloadavg()[0]},
            "rows": rows}


def main(argv=None) -> int:
    """Measure; print the table; write bench/results/setup.json (bench/record.py)."""
    from record import Record

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="new sessions per second")
    parser.add_argument("--json", help="write the JSON here (default bench/results/setup.json)")
    args = parser.parse_args(argv)
    record = Record("setup", {"sessions": args.sessions, "rate_per_s": args.rate}, args.json)
    result = run(args)
    with record.capture():
        print(f"{result['params']['sessions']} sessions at {args.rate:g}/s, "
              f"{result['params']['not_connected']} not connected, "
              f"{result['params']['signalling_failures']} signalling failures")
        print(f"{'measure':42} {'n':>4} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for row in result["rows"]:
            print(f"{row['measure']:42} {row['sessions']:4d} {row['p50_ms']:8.1f} "
                  f"{row['p90_ms']:8.1f} {row['p99_ms']:8.1f} {row['max_ms']:8.1f}")
    record.save(result)
    return 0

if __name__ == "__main__":
    sys.exit(main())
