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
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from record_echo_call import enter_fresh_netns, record_page_call  # noqa: E402

PAGE = "datachannel-echo.html"


def record(name: str, out: Path, count: int = 20, lossy: int = 10, timeout: float = 40.0) -> dict:
    """Record one DataChannel echo call into ``out/NAME.*``; return the page's result."""
    return record_page_call(
        name, out, "headless Chromium DataChannel echo call against twistd -n realtime",
        PAGE, {"count": count, "lossy": lossy}, timeout, srtp_keys=False)


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
    code = enter_fresh_netns(__file__, args.no_netns)
    if code is not None:
        return code
    result = record(args.name, args.out.resolve(), args.count, args.lossy)
    print(json.dumps(result, sort_keys=True))
    ok = "error" not in result and result.get("reliableInOrder") and result.get("bigEchoed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
