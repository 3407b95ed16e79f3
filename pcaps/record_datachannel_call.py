#!/usr/bin/env python3
"""
Record one headless-Chromium DataChannel call against ``twistd -n realtime``, with keys.

::

    sudo .venv/bin/python pcaps/record_datachannel_call.py NAME [--count 20] [--lossy 10] [--out pcaps]

writes, in ``--out``:

=====================  ==================================================
``NAME.pcap``          ``tcpdump -i lo -w`` of the media port (UDP only:
                       STUN, DTLS carrying SCTP); the HTTP signalling is
                       not captured
``NAME.keylog``        NSS key log of the DTLS handshake (``--dtls-keylog``),
                       for ``realtime-replay --keylog`` and tshark
``NAME.commands.txt``  the command lines, tool versions and the page's result
=====================  ==================================================

The call: ``tests/interop/pages/datachannel-echo.html`` offers only an
application m-line to ``POST /v1/apps/{app}/echo/new``, opens ``reliable``
(ordered, reliable: DCEP channel type 0x00) and ``unordered`` (maxRetransmits
0: type 0x81), sends ``--count`` texts, 4 bytes, an empty string, a 64 KiB
binary message and ``last`` on ``reliable`` and ``--lossy`` texts on
``unordered``; the server echoes each on its channel.  The page then closes
both channels (SCTP RE-CONFIG stream resets) and the PeerConnection.

Run as root (tcpdump).  Unless ``--no-netns`` is given, the script re-runs
itself under ``unshare -n`` with only ``lo`` up, exactly like
``pcaps/record_echo_call.py``, whose helpers it uses.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from record_echo_call import (  # noqa: E402
    IN_NETNS, ROOT, run_echo_page, serve_pages, start_tcpdump, versions,
)
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server  # noqa: E402

PAGE = "datachannel-echo.html"


def record(name: str, out: Path, count: int = 20, lossy: int = 10, timeout: float = 40.0) -> dict:
    """Record one DataChannel echo call into ``out/NAME.*``; return the page's result."""
    out.mkdir(parents=True, exist_ok=True)
    log = [f"# {name}: headless Chromium DataChannel echo call against twistd -n realtime"]
    if os.environ.get(IN_NETNS):
        log.append("# inside: unshare -n (loopback-only network namespace); ip link set lo up")
    with tempfile.TemporaryDirectory(prefix="realtime-record-") as tmp:
        tmp_path = Path(tmp)
        keylog = tmp_path / "dtls.keylog"
        server = Server(tmp_path / "state", "--dtls-keylog", str(keylog), app=True)
        log.append(" ".join(server.process.args).replace(tmp, "$TMP"))
        tcpdump = None
        httpd = serve_pages()
        try:
            server.wait_ready()
            tcpdump = start_tcpdump(out / f"{name}.pcap", server.media, log)
            query = urllib.parse.urlencode({"api": server.api_url(), "app": APP_ID,
                                            "secret": APP_SECRET, "count": count, "lossy": lossy})
            url = f"http://127.0.0.1:{httpd.server_address[1]}/{PAGE}?{query}"
            log.append(f"node tests/interop/run_page.js '{url}' {int(timeout * 1000)}")
            result = run_echo_page(url, timeout)
            time.sleep(0.5)  # let the last SACKs and the DTLS close_notify reach the capture
        finally:
            if tcpdump is not None:
                tcpdump.send_signal(signal.SIGINT)
                tcpdump.wait(10)
            httpd.shutdown()
            server.stop()
        shutil.copyfile(keylog, out / f"{name}.keylog")
    log += ["# versions", *versions(), "# page result", json.dumps(result, sort_keys=True)]
    text = "\n".join(log).replace(f"{ROOT}/", "")
    (out / f"{name}.commands.txt").write_text(text + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, enter a fresh network namespace, record one call."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("name", help="base name of the files written")
    parser.add_argument("--count", type=int, default=20,
                        help="text messages on the reliable channel (default: %(default)s)")
    parser.add_argument("--lossy", type=int, default=10,
                        help="text messages on the unordered channel (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder")
    parser.add_argument("--no-netns", action="store_true",
                        help="capture on the machine's lo instead of a fresh namespace")
    args = parser.parse_args(argv)
    if not args.no_netns and not os.environ.get(IN_NETNS):
        command = ["unshare", "-n", "--", sys.executable, __file__, *sys.argv[1:]]
        return subprocess.run(command, env={**os.environ, IN_NETNS: "1"}).returncode
    if os.environ.get(IN_NETNS):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    result = record(args.name, args.out.resolve(), args.count, args.lossy)
    print(json.dumps(result, sort_keys=True))
    ok = "error" not in result and result.get("reliableInOrder") and result.get("bigEchoed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
