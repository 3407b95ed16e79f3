"""
Real STUN clients against the real ``twistd -n realtime`` on 127.0.0.1.

The service runs as a subprocess with every port chosen free; readiness is
its start-up banner plus an answered Binding probe.  Clients nobody here
wrote:

* coturn's ``turnutils_stunclient`` over UDP (it has no TCP mode) against
  the media port and the TURN port;
* Debian's ``stun`` (Vovida, RFC 3489-era) against the media port;
* TCP and TLS: no packaged STUN client speaks STUN over streams, so the
  request is *built and parsed by aioice's codec* (``aioice.stun.Message``,
  third-party code) and carried by a plain socket (TCP), Python's ``ssl``
  verifying our certificate (TLS), and ``openssl s_client`` (TLS);
* aioice's ICE agent gathering a server-reflexive candidate from us.

Also: ``twistd --help`` lists the plugin, the HTTP API answers through
twistd, and a built wheel ships ``twisted/plugins/realtime_plugin.py``
without a ``twisted/__init__.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile

import pytest

from tests.conftest import require, require_module, require_tool
from tests.interop.realtime_server import ROOT, TWISTD, Server

pytestmark = pytest.mark.interop



def binding_request() -> bytes:
    """Return an RFC 8489 Binding request from aioice's codec."""
    from aioice import stun

    return bytes(stun.Message(message_method=stun.Method.BINDING,
                              message_class=stun.Class.REQUEST))


def mapped_address(data: bytes) -> tuple[str, int]:
    """Parse a Binding success response with aioice and return XOR-MAPPED-ADDRESS."""
    from aioice import stun

    message = stun.parse_message(data)
    assert message.message_class == stun.Class.RESPONSE
    return message.attributes["XOR-MAPPED-ADDRESS"]



def read_message(read) -> bytes:
    """Read one STUN message from a stream via ``read(n)``."""
    header = b""
    while len(header) < 20:
        chunk = read(20 - len(header))
        assert chunk, "connection closed before a full header"
        header += chunk
    body = b""
    length = int.from_bytes(header[2:4], "big")
    while len(body) < length:
        chunk = read(length - len(body))
        assert chunk
        body += chunk
    return header + body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require(TWISTD.exists(), f"{TWISTD} is missing")
    running = Server(tmp_path_factory.mktemp("realtime") / "state")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


class UdpRelay:
    """A UDP relay on 127.0.0.1 whose server-facing socket has a known port.

    turnutils_stunclient cannot choose its source port; sent through the
    relay, the server sees the relay's :attr:`source` port, so the reflexive
    address the client prints must name exactly that port.  Runs in a thread
    for at most ``seconds``.
    """

    def __init__(self, server: tuple[str, int], seconds: float = 20.0) -> None:
        self.server = server
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port, self.source = self.front.getsockname()[1], self.back.getsockname()[1]
        self.deadline = time.monotonic() + seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "UdpRelay":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.front.close()
        self.back.close()

    def _run(self) -> None:
        client = None
        while not self.stopped.is_set() and time.monotonic() < self.deadline:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for sock in ready:
                data, addr = sock.recvfrom(65535)
                if sock is self.front:
                    client = addr
                    self.back.sendto(data, self.server)
                elif client is not None:
                    self.front.sendto(data, client)


@pytest.mark.parametrize("which", ["media", "turn"])
def test_turnutils_stunclient_udp(server, which) -> None:
    """The reflexive address is the source the server saw: the relay's port, exactly."""
    tool = require_tool("turnutils_stunclient")
    with UdpRelay(("127.0.0.1", getattr(server, which))) as relay:
        result = subprocess.run([tool, "-p", str(relay.port), "127.0.0.1"], capture_output=True,
                                text=True, timeout=20)
    output = result.stdout + result.stderr
    assert set(re.findall(r"UDP reflexive addr: ([\d.]+):(\d+)", output)) == {
        ("127.0.0.1", str(relay.source))}, output


def test_debian_stun_client_classic(server) -> None:
    """RFC 8489 §12: the RFC 3489 client gets MAPPED-ADDRESS (its CHANGE-REQUEST asks nothing).

    The client sends from a port it is told (``-p``); the mapped address must name it.
    """
    tool = require_tool("stun")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        source = probe.getsockname()[1]
    result = subprocess.run([tool, f"127.0.0.1:{server.media}", "1", "-v", "-p", str(source)],
                            capture_output=True, text=True, timeout=20)
    output = result.stdout + result.stderr
    mapped = set(re.findall(r"mappedAddr=([\d.]+):(\d+)", output))
    assert mapped == {("127.0.0.1", str(source))}, output


def test_debian_stun_client_gets_an_answer(server) -> None:
    """The classic client's transaction completes (a response with its id comes back)."""
    tool = require_tool("stun")
    result = subprocess.run([tool, f"127.0.0.1:{server.media}", "1", "-v"],
                            capture_output=True, text=True, timeout=20)
    output = result.stdout + result.stderr
    assert "Got a response" in output and "Received stun message" in output, output


def test_stun_over_tcp_with_aioice_codec(server) -> None:
    require_module("aioice")
    with socket.create_connection(("127.0.0.1", server.turn), timeout=5) as tcp:
        first, second = binding_request(), binding_request()
        stream = first + second
        tcp.sendall(stream[:5])  # split inside the first header
        time.sleep(0.05)
        tcp.sendall(stream[5:])  # the rest and a second message, coalesced
        answers = [read_message(tcp.recv), read_message(tcp.recv)]
        local = tcp.getsockname()
    assert [mapped_address(a) for a in answers] == [local, local]
    assert [a[8:20] for a in answers] == [first[8:20], second[8:20]]


def test_stun_over_tls_python_ssl(server) -> None:
    require_module("aioice")
    context = ssl.create_default_context(cafile=str(server.state / "tls" / "cert.pem"))
    with socket.create_connection(("127.0.0.1", server.turns), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(binding_request())
            answer = read_message(tls.recv)
            assert mapped_address(answer) == tls.getsockname()


def test_stun_over_tls_openssl_s_client(server) -> None:
    tool = require_tool("openssl")
    require_module("aioice")
    process = subprocess.Popen(
        [tool, "s_client", "-quiet", "-connect", f"127.0.0.1:{server.turns}",
         "-CAfile", str(server.state / "tls" / "cert.pem"), "-verify_return_error"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        process.stdin.write(binding_request())
        process.stdin.flush()
        answer = read_message(process.stdout.read)
    finally:
        process.kill()
        process.wait()
    host, port = mapped_address(answer)
    assert host == "127.0.0.1" and port > 0


@pytest.mark.parametrize("which", ["media", "turn"])
def test_aioice_gathers_server_reflexive_candidate(server, which) -> None:
    aioice = require_module("aioice")

    async def gather():
        connection = aioice.Connection(
            ice_controlling=True, stun_server=("127.0.0.1", getattr(server, which)),
            use_ipv6=False,
        )
        try:
            await asyncio.wait_for(connection.gather_candidates(), 15)
            return list(connection.local_candidates)
        finally:
            await connection.close()

    candidates = asyncio.run(gather())
    host = [c for c in candidates if c.type == "host"]
    require(bool(host), "aioice found no non-loopback IPv4 interface to gather from")
    srflx = [c for c in candidates if c.type == "srflx"]
    assert srflx, [c.to_sdp() for c in candidates]
    assert {(c.host, c.port) for c in srflx} <= {(c.host, c.port) for c in host}


def test_api_through_twistd(server) -> None:
    url = server.value("realtime API listening on")
    app_id, secret = server.value("app id:"), server.value("app secret:")
    assert url.startswith("http://127.0.0.1:")
    for token, status in ((secret, 200), ("wrong", 401)):
        request = urllib.request.Request(f"{url}/v1/apps/{app_id}/",
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Origin": "http://localhost:8000"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                got, body, headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            got, body, headers = error.code, error.read(), error.headers
        assert got == status
        assert headers["access-control-allow-origin"] == "http://localhost:8000"
        body = json.loads(body)
        if status == 200:
            assert body["appId"] == app_id and body["media"]["port"] == server.media
        else:
            assert set(body) == {"errorCode", "errorDescription"}


def test_twistd_help_lists_realtime() -> None:
    require(TWISTD.exists(), f"{TWISTD} is missing")
    result = subprocess.run([str(TWISTD), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert any(line.split()[:1] == ["realtime"] for line in result.stdout.splitlines()), \
        result.stdout
    sub = subprocess.run([str(TWISTD), "realtime", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert "--media-port" in sub.stdout and "--app" in sub.stdout


def test_wheel_ships_the_plugin_without_twisted_init(tmp_path) -> None:
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache", "*.egg-info")
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("realtime", "twisted"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    require(result.returncode == 0, f"pip wheel failed (offline?): {result.stderr[-500:]}")
    [wheel] = (tmp_path / "out").glob("realtime-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/realtime_plugin.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert "realtime/service.py" in names
