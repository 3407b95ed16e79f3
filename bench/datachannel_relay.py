"""
CPU cost of one DataChannel message crossing the node-to-node relay link, without sockets.

Per message size, the publisher node's work (``FeedSender.fragments`` + one
``RelayLink.send`` seal per fragment) and the subscribing node's work
(``RelayLink.receive_datagram`` open + ``DataChannelFragment.decode`` +
``FeedReceiver.receive``), in microseconds per message, and the fragments per
message.  The code is the server's own (realtime.cluster.datachannel_frames,
realtime.cluster.relay).

Run: ``.venv/bin/python bench/datachannel_relay.py [--n 2000]``.  Prints a table; not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.cluster.datachannel_frames import (  # noqa: E402
    DataChannelFragment, FeedReceiver, FeedSender,
)
from realtime.cluster.relay import RelayKind, RelayLink  # noqa: E402

A, B = ("10.0.0.1", 7000), ("10.0.0.2", 7000)
SECRET = b"a cluster secret for the bench"


def run(size: int, n: int) -> tuple[float, float, int]:
    a, b = RelayLink("node-a", SECRET, 1), RelayLink("node-b", SECRET, 1)
    a.set_members({"node-a": A, "node-b": B})
    b.set_members({"node-a": A, "node-b": B})
    sender, receiver = FeedSender("5e55" * 8, "chat"), FeedReceiver()
    message = b"x" * size
    frames = []
    started = time.perf_counter()
    for _ in range(n):
        for payload in sender.fragments(message):
            a.send(RelayKind.DATACHANNEL, 1, payload, [B])
        frames.extend(a.datagrams_to_send(0.0))
    send = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for frame, _ in frames:
        b.receive_datagram(frame, A, 0.0)
        packet = b.next_event()
        receiver.receive(DataChannelFragment.decode(packet.payload))
    receive = (time.perf_counter() - started) / n
    assert receiver.counters["messages"] == n and not b.dropped, (receiver.counters, b.dropped)
    return send * 1e6, receive * 1e6, len(frames) // n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    from record import Record

    record = Record("datachannel_relay", {"n": args.n})
    rows = []
    with record.capture():
        print(f"{'message bytes':>13}  {'fragments':>9}  {'send µs':>8}  {'receive µs':>10}")
        for size in (16, 1000, 16 * 1024, 64 * 1024):
            send, receive, fragments = run(size, max(50, args.n * 16 // max(16, size // 64)))
            print(f"{size:>13}  {fragments:>9}  {send:>8.1f}  {receive:>10.1f}")
            rows.append({"bytes": size, "fragments": fragments, "send_us": send,
                         "receive_us": receive})
    record.save(rows)


if __name__ == "__main__":
    main()
