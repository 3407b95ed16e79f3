"""
A private ``redis-server`` for ``--workers`` without ``--cluster``.

``twistd realtime --workers N`` on one machine needs a directory the workers
share, but a user who did not ask for a cluster should not have to install
and run a service.  So the parent process, before it forks workers, starts
its own ``redis-server``:

* listening **only on a Unix socket** inside the state directory (mode 0700,
  socket mode 0700: no TCP port, nothing reachable from the network, no
  password needed because only this user can connect);
* with persistence off (``--save ''``, ``--appendonly no``): it holds the
  sessions of this run only; apps and TURN keys stay in SQLite as they are
  in single-process mode;
* stopped when the parent stops.

When the binary is absent, :class:`RedisNotInstalled` says what to install.
This runs in the parent *before* the reactor starts, so waiting for the
socket with short sleeps blocks nothing.  (``--workers`` itself is not wired
yet; see ``docs/cluster.md``.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from realtime.cluster.resp import RespReader, encode_command, NEED_MORE

#: What to tell a user whose machine has no redis-server.
INSTALL_HINT = (
    "--workers needs redis-server for the directory its workers share, and none is "
    "installed: install it (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install "
    "redis; macOS: brew install redis), or point at a running one with "
    "--cluster redis://HOST:PORT"
)

#: Unix socket paths are limited to about 108 bytes (sockaddr_un.sun_path).
MAX_SOCKET_PATH = 100


class RedisNotInstalled(RuntimeError):
    """Raised when ``redis-server`` is needed but not installed; the message says what to do."""


class RedisDidNotStart(RuntimeError):
    """Raised when ``redis-server`` exited or did not answer in time; includes its log tail."""


@dataclass
class PrivateRedis:
    """A running private ``redis-server``: its process, socket and URL."""

    process: subprocess.Popen
    socket_path: Path
    log_path: Path

    @property
    def url(self) -> str:
        """Return the ``unix://`` URL the workers connect to."""
        return f"unix://{self.socket_path}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``) and remove its socket."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.socket_path.unlink(missing_ok=True)


def redis_argv(binary: str, run_dir: Path) -> list[str]:
    """Return the command line of a private, socket-only, non-persistent ``redis-server``."""
    return [
        binary,
        "--port", "0",                                # no TCP listener at all
        "--unixsocket", str(run_dir / "redis.sock"),
        "--unixsocketperm", "700",
        "--dir", str(run_dir),
        "--save", "",                                 # no RDB snapshots
        "--appendonly", "no",                         # no AOF
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]


def start_private_redis(run_dir: Path | str, *, binary: str | None = None,
                        timeout: float = 5.0) -> PrivateRedis:
    """Start ``redis-server`` on a Unix socket in ``run_dir``; return once it answers PING.

    :param binary: the program (default: ``redis-server`` on ``PATH``).
    :raises RedisNotInstalled: no binary; the message says what to install.
    :raises RedisDidNotStart: it exited or did not answer within ``timeout`` seconds.
    """
    found = binary if binary and os.path.exists(binary) else shutil.which(binary or "redis-server")
    if found is None:
        raise RedisNotInstalled(INSTALL_HINT)
    run_dir = Path(run_dir)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(run_dir, 0o700)
    socket_path = run_dir / "redis.sock"
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise RedisDidNotStart(f"socket path {socket_path} is too long for a Unix socket")
    socket_path.unlink(missing_ok=True)
    log_path = run_dir / "redis.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(redis_argv(found, run_dir), stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT)
    server = PrivateRedis(process, socket_path, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RedisDidNotStart(
                f"redis-server exited with status {process.returncode}: {_tail(log_path)}")
        if socket_path.exists() and ping(socket_path):
            return server
        time.sleep(0.02)
    server.stop()
    raise RedisDidNotStart(f"redis-server did not answer within {timeout:g} s: {_tail(log_path)}")


def ping(socket_path: Path | str, timeout: float = 1.0) -> bool:
    """Return whether Redis answers ``PING`` on ``socket_path`` (blocking: not for the reactor)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(socket_path))
            s.sendall(encode_command("PING"))
            reader = RespReader()
            while (reply := reader.next_reply()) is NEED_MORE:
                data = s.recv(64)
                if not data:
                    return False
                reader.feed(data)
            return reply == "PONG"
    except OSError:
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
