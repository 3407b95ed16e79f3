"""
An aiortc client of the SFU for the network-namespace tests, run inside a client namespace.

It talks to the API itself, as an application's client would (the URL of the node whose
API it uses is an argument), and prints one JSON line with what it got::

    python netns_peer.py ROOT pull API_URL PUBLISHER_SESSION TRACK_NAME...

``pull``: a new session pulls the named tracks, answers the SFU's offer through
``renegotiate`` and counts decoded frames per kind (``subscribe`` of
tests/interop/test_sfu_aiortc.py); prints ``{"session", "state", "frames", "rates",
"status"}``.  No ICE servers: host candidates only (the namespace's one interface).
"""

from __future__ import annotations

import asyncio
import json
import sys


class Api:
    """What tests/interop/test_sfu_aiortc.api needs of a server: its base URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api_url(self) -> str:
        return self.url


async def pull(url: str, publisher: str, names: list[str]) -> dict:
    from tests.interop.test_sfu_aiortc import subscribe

    result = await subscribe(Api(url), publisher, names, seconds=15.0)
    return {**result, "frames": dict(result["frames"])}


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    mode, url, *rest = sys.argv[2:]
    if mode == "pull":
        result = asyncio.run(pull(url, rest[0], rest[1:]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
