"""
The three servers ``bench/forward.py`` compares, each started fresh per run.

Every class starts one server process on 127.0.0.1, exposes its ``pid``
(whose ``utime + stime`` from ``/proc/PID/stat`` is the CPU being measured),
the ``target`` dict the load processes' signalling needs
(:func:`forward_signal.signalling_for`), and ``stop()``::

    OursServer   twistd -n realtime --app ID:SECRET  (tests/interop/realtime_server.Server)
    RelayServer  python bench/forward_relay.py        (aiortc MediaRelay)
    JanusServer  janus -F <copy of bench/janus>       (videoroom plugin, REST on HTTP)

Janus gathers ICE candidates through libnice, which skips loopback
addresses and does not answer checks from 127.0.0.1: for Janus (only) the
load endpoints bind this host's own IPv4 address (``target["host"]``).
Packets between two local addresses still only cross the ``lo`` device.

``JanusServer.available()`` says why Janus cannot run here, if it cannot;
the benchmark prints the reason and goes on with the other two.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.interop.realtime_server import (  # noqa: E402
    APP_ID, APP_SECRET, Server, free_port, stop_process,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """Return a process's CPU time so far, all threads, user + system.

    Nanosecond counters from ``/proc/PID/task/*/schedstat`` (time on CPU);
    ``utime + stime`` of ``/proc/PID/stat`` (10 ms ticks) if unavailable.
    """
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as stat:
                    total += int(stat.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that just ended
        return total / 1e9
    except (FileNotFoundError, PermissionError):
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: proc(5) 14, 15


def tree_cpu_seconds(pid: int) -> float:
    """Return :func:`cpu_seconds` of ``pid`` and of every process below it (``--workers``:
    the parent, its workers and their private redis-server)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])  # proc(5) field 4
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += cpu_seconds(current)
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo.extend(children.get(current, []))
    return total


def host_address() -> str:
    """Return this host's primary IPv4 address (no packet is sent to find it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.254", 9))  # TEST-NET-1: only the routing table is consulted
        return probe.getsockname()[0]


class _Process:
    """A child process whose output is kept for error messages."""

    def __init__(self, command: list[str], cwd: Path | None = None) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.pid = self.process.pid
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            if len(self.lines) > 2000:
                del self.lines[:1000]

    def wait_for(self, text: str, timeout: float) -> str:
        """Return the first output line containing ``text``; raise on exit or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{text!r} not seen:\n" + "".join(self.lines[-20:]))

    def stop(self) -> None:
        """Terminate, then kill after 10 s."""
        stop_process(self.process)


class OursServer:
    """``twistd -n realtime`` with one app, through its Cloudflare-compatible API."""

    name = "ours"
    options: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="bench-forward-"))
        # a load test opens up to 201 sessions at once: lift the per-app sessions/new
        # limit (default 20/s, burst 100; docs/operations.md) as an operator would
        self.server = Server(self.directory / "state", "--session-rate", "1000",
                             "--session-burst", "1000", *self.options, app=True)
        self.server.wait_ready()
        self.pid = self.server.process.pid
        self.target = {"api": self.server.api_url(), "app": APP_ID, "secret": APP_SECRET}

    def stop(self) -> None:
        """Stop twistd and remove its state directory."""
        self.server.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class OursWorkersServer(OursServer):
    """The same with ``--workers 2``: two processes share the ports (SO_REUSEPORT) and act
    as one through a private redis-server; CPU is counted over the whole process tree."""

    def __init__(self) -> None:
        # the workers share one API port, so it is chosen here rather than left to the kernel
        self.options = ("--workers", "2", "--api", f"tcp:{free_port()}:interface=127.0.0.1")
        super().__init__()
        deadline = time.monotonic() + 30
        while self.server.output().count("realtime API listening on") < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the two workers did not start:\n" + self.server.output())
            time.sleep(0.1)


class RelayServer:
    """aiortc's MediaRelay behind :mod:`forward_relay`'s HTTP signalling."""

    name = "aiortc"

    def __init__(self) -> None:
        self.child = _Process([sys.executable, str(HERE / "forward_relay.py"), "0"])
        port = int(self.child.wait_for("listening", 30).split()[1])
        self.pid = self.child.pid
        self.target = {"url": f"http://127.0.0.1:{port}"}

    def stop(self) -> None:
        """Stop the relay process."""
        self.child.stop()


class JanusServer:
    """Janus (Debian package) with its videoroom plugin, configured from bench/janus."""

    name = "janus"
    ROOM = 1234

    @staticmethod
    def available() -> str:
        """Return "" if Janus can run here, else why not (installing it as root if missing)."""
        if shutil.which("janus") is None and os.geteuid() == 0 and shutil.which("apt-get"):
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "janus"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, check=False)
        if shutil.which("janus") is None:
            return "janus is not installed (apt-get install janus, as root)"
        return ""

    def __init__(self, configs: Path = HERE / "janus", host: str | None = None) -> None:
        """Start Janus with a copy of the ``.jcfg`` files of ``configs`` (HTTP port replaced),
        its ICE on ``host`` (default: this host's primary IPv4 address)."""
        self.directory = Path(tempfile.mkdtemp(prefix="bench-janus-"))
        port = free_port()
        for source in configs.glob("*.jcfg"):
            text = source.read_text().replace("port = 18088", f"port = {port}")
            (self.directory / source.name).write_text(text)
        host = host or host_address()
        self.child = _Process(["janus", "--configs-folder", str(self.directory), "--disable-colors",
                               "--interface", host, "--ice-enforce-list", host, "--debug-level", "4"],
                              cwd=self.directory)
        self.child.wait_for("HTTP webserver started", 30)
        self.pid = self.child.pid
        self.target = {"url": f"http://127.0.0.1:{port}/janus", "room": self.ROOM, "host": host}

    def stop(self) -> None:
        """Stop Janus and remove its configuration copy."""
        self.child.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


# key: the name --servers takes; a class's ``name`` picks the signalling (forward_signal)
SERVERS = {"ours": OursServer, "ours-workers2": OursWorkersServer, "aiortc": RelayServer,
           "janus": JanusServer}
