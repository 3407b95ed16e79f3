#!/usr/bin/env python3
"""
Record one headless-Chromium echo call against ``twistd -n realtime``, with keys.

::

    sudo .venv/bin/python pcaps/record_echo_call.py NAME [--profile SRTP_AEAD_AES_128_GCM] [--out pcaps]

writes, in ``--out``:

=====================  ==================================================
``NAME.pcap``          ``tcpdump -i lo -w`` of the media port (UDP only:
                       STUN, DTLS, SRTP, SRTCP); the HTTP signalling is
                       not captured
``NAME.keylog``        NSS key log of the DTLS handshake (``--dtls-keylog``)
``NAME.srtp.json``     SRTP master keys, one JSON object per line
                       (``--srtp-keylog``; see :mod:`realtime.testing.srtp_keys`)
``NAME.commands.txt``  the command lines, tool versions and the page's result
=====================  ==================================================

The call: ``tests/interop/pages/echo.html`` sends Chromium's fake camera
(640x360 VP8) and microphone (Opus) to ``POST /v1/apps/{app}/echo/new``
and the server sends both back for about four seconds.

Run as root (tcpdump).  Unless ``--no-netns`` is given, the script re-runs
itself under ``unshare -n`` with only ``lo`` up, so nothing else on the
machine can reach the capture.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.interop.realtime_server import APP_ID, APP_SECRET, Server  # noqa: E402

PAGES = ROOT / "tests" / "interop" / "pages"
RUN_PAGE = ROOT / "tests" / "interop" / "run_page.js"
IN_NETNS = "REALTIME_RECORD_IN_NETNS"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve_pages() -> ThreadingHTTPServer:
    """Serve tests/interop/pages on 127.0.0.1 (any port) in a daemon thread."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(PAGES)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def start_tcpdump(pcap: Path, port: int, log: list[str]) -> subprocess.Popen:
    """Start tcpdump on lo for UDP ``port``; return once it is capturing."""
    command = ["tcpdump", "-i", "lo", "-n", "-s", "0", "-U", "-w", str(pcap), "udp", "port", str(port)]
    log.append(" ".join(command))
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()  # "tcpdump: listening on lo, ..."
    if "listening" not in line:
        process.kill()
        raise SystemExit(f"tcpdump did not start: {line.strip()}")
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process


def run_echo_page(url: str, timeout: float) -> dict:
    """Open the echo page in headless Chromium (run_page.js); return its result."""
    node = shutil.which("node") or "node"
    result = subprocess.run(
        [node, str(RUN_PAGE), url, str(int(timeout * 1000))], capture_output=True, text=True,
        timeout=timeout + 30, cwd=RUN_PAGE.parent,
        env={**os.environ, "CHROMIUM": shutil.which("chromium") or "/usr/bin/chromium"},
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise SystemExit("the echo page gave no result:\n" + result.stdout + result.stderr)


def versions() -> list[str]:
    """Return one line per tool version that shaped the capture."""
    lines = []
    for command in (["chromium", "--version"], ["tcpdump", "--version"]):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=20)
            lines.append((out.stdout or out.stderr).splitlines()[0].strip())
        except (OSError, IndexError, subprocess.SubprocessError):
            lines.append(f"{command[0]}: unknown version")
    return lines


def record_page_call(name: str, out: Path, title: str, page: str, params: dict,
                     timeout: float = 40.0, srtp_keys: bool = True) -> dict:
    """Record one call of ``page`` against ``twistd -n realtime`` into ``out/NAME.*``.

    Starts the service on free ports with ``--dtls-keylog`` (and
    ``--srtp-keylog`` when ``srtp_keys``), tcpdump on its media port, and
    headless Chromium on ``page?api=...&app=...&secret=...&<params>``; writes
    NAME.pcap, NAME.keylog, NAME.srtp.json (with ``srtp_keys``) and
    NAME.commands.txt.  Returns the page's result.
    """
    out.mkdir(parents=True, exist_ok=True)
    log = [f"# {name}: {title}"]
    if os.environ.get(IN_NETNS):
        log.append("# inside: unshare -n (loopback-only network namespace); ip link set lo up")
    with tempfile.TemporaryDirectory(prefix="realtime-record-") as tmp:
        tmp_path = Path(tmp)
        keylog, srtp_log = tmp_path / "dtls.keylog", tmp_path / "srtp.jsonl"
        options = ["--dtls-keylog", str(keylog)]
        if srtp_keys:
            options += ["--srtp-keylog", str(srtp_log)]
        server = Server(tmp_path / "state", *options, app=True)
        log.append(" ".join(server.process.args).replace(tmp, "$TMP"))
        tcpdump = None
        httpd = serve_pages()
        try:
            server.wait_ready()
            tcpdump = start_tcpdump(out / f"{name}.pcap", server.media, log)
            query = urllib.parse.urlencode({"api": server.api_url(), "app": APP_ID,
                                            "secret": APP_SECRET, **params})
            url = f"http://127.0.0.1:{httpd.server_address[1]}/{page}?{query}"
            log.append(f"node tests/interop/run_page.js '{url}' {int(timeout * 1000)}")
            result = run_echo_page(url, timeout)
            time.sleep(0.5)  # let the last RTCP/SACKs and DTLS close_notify reach the capture
        finally:
            if tcpdump is not None:
                tcpdump.send_signal(signal.SIGINT)
                tcpdump.wait(10)
            httpd.shutdown()
            server.stop()
        shutil.copyfile(keylog, out / f"{name}.keylog")
        if srtp_keys:
            shutil.copyfile(srtp_log, out / f"{name}.srtp.json")
    log += ["# versions", *versions(), "# page result", json.dumps(result, sort_keys=True)]
    text = "\n".join(log).replace(f"{ROOT}/", "")
    (out / f"{name}.commands.txt").write_text(text + "\n")
    return result


def record(name: str, out: Path, profile: str, timeout: float = 40.0) -> dict:
    """Record one echo call into ``out/NAME.*``; return the page's result."""
    return record_page_call(
        name, out, f"headless Chromium echo call against twistd -n realtime ({profile})",
        "echo.html", {"profile": profile}, timeout)


def enter_fresh_netns(script: str, no_netns: bool) -> int | None:
    """Re-run ``script`` in a fresh network namespace (only our traffic on its ``lo``).

    Return the child's exit code when this process re-ran itself, None when
    it is to record here: inside the namespace (``lo`` brought up first) or
    with ``--no-netns``.
    """
    if not no_netns and not os.environ.get(IN_NETNS):
        command = ["unshare", "-n", "--", sys.executable, script, *sys.argv[1:]]
        return subprocess.run(command, env={**os.environ, IN_NETNS: "1"}).returncode
    if os.environ.get(IN_NETNS):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    return None


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, enter a fresh network namespace, record one call."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("name", help="base name of the files written")
    parser.add_argument("--profile", default="SRTP_AEAD_AES_128_GCM",
                        help="the one SRTP profile the server offers (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "pcaps", help="output folder")
    parser.add_argument("--no-netns", action="store_true",
                        help="capture on the machine's lo instead of a fresh namespace")
    args = parser.parse_args(argv)
    code = enter_fresh_netns(__file__, args.no_netns)
    if code is not None:
        return code
    result = record(args.name, args.out.resolve(), args.profile)
    print(json.dumps(result, sort_keys=True))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
