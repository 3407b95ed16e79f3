"""
CPU cost of one DataChannel message crossing the node-to-node relay link, without sockets.

Per message size, the publisher node's work (``FeedSender.fragments``, each
fragment kept in its ``RetransmissionBuffer`` for NACKs, + one ``RelayLink.send``
seal per fragment) and the subscribing node's work (``RelayLink.receive_datagram``
open + ``DataChannelFragment.decode`` + ``FeedReceiver.receive``), in
microseconds per message, and the fragments per message; then the same with one
frame in 20 lost and repaired (the receiver's NACK, the sender's ``find`` in its
buffer, the resent frame sealed and opened), the repairs' cost included.  The
code is the server's own (realtime.cluster.datachannel_frames,
realtime.cluster.datachannel_repair, realtime.cluster.relay).

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
from realtime.cluster.datachannel_repair import RetransmissionBuffer  # noqa: E402
from realtime.cluster.relay import RelayKind, RelayLink  # noqa: E402

A, B, R = ("10.0.0.1", 7000), ("10.0.0.2", 7000), ("10.0.0.3", 7000)
SECRET = b"a cluster secret for the bench"


def run(size: int, n: int, lose: int = 0) -> tuple[float, float, int]:
    """Relay ``n`` messages of ``size`` bytes; with ``lose``, lose one frame in ``lose``
    and repair it (NACK, find, resend) as the nodes do."""
    a, b = RelayLink("node-a", SECRET, 1), RelayLink("node-b", SECRET, 1)
    # the repairs are sealed by a link of their own: the first loop seals every frame
    # before any is opened, and repairs from A's link would move B's replay window past them
    r = RelayLink("node-r", SECRET, 1)
    for link in (a, b, r):
        link.set_members({"node-a": A, "node-b": B, "node-r": R})
    # the first loop sends every message before the second receives any: a buffer that
    # keeps them all (the server's keeps 512 frames, 1 MiB, 5 s)
    sender = FeedSender("5e55" * 8, "chat", buffer=RetransmissionBuffer(
        max_frames=1 << 30, max_bytes=1 << 40, max_age=1e9))
    receiver = FeedReceiver()
    message = b"x" * size
    frames = []
    started = time.perf_counter()
    for i in range(n):
        for payload in sender.fragments(message, i * 1e-4):
            a.send(RelayKind.DATACHANNEL, 1, payload, [B])
        frames.extend(a.datagrams_to_send(0.0))
    send = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for i, (frame, _) in enumerate(frames):
        if lose and i % lose == lose // 2:
            continue                                    # lost on the way
        now = i * 1e-5
        b.receive_datagram(frame, A, now)
        packet = b.next_event()
        receiver.receive(DataChannelFragment.decode(packet.payload), now)
        receiver.take()
        if receiver.nack_at is not None and receiver.nack_at <= now:
            ranges = receiver.nack(now)      # the NACK: one frame each way, sealed and opened
            r.send(RelayKind.DATACHANNEL_NACK, 0, bytes(16 + 10 * len(ranges)), [B])
            for repair in sender.buffer.find(tuple(ranges), now):
                r.send(RelayKind.DATACHANNEL, 1, repair, [B])
            for resent, _ in r.datagrams_to_send(now):
                b.receive_datagram(resent, R, now)
                packet = b.next_event()
                if packet.kind == RelayKind.DATACHANNEL:
                    receiver.receive(DataChannelFragment.decode(packet.payload), now)
            receiver.take()
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
        print(f"{'message bytes':>13}  {'fragments':>9}  {'lost':>6}  {'send µs':>8}  "
              f"{'receive µs':>10}")
        for lose in (0, 20):
            for size in (16, 1000, 16 * 1024, 64 * 1024):
                send, receive, fragments = run(
                    size, max(50, args.n * 16 // max(16, size // 64)), lose)
                share = f"1/{lose}" if lose else "0"
                print(f"{size:>13}  {fragments:>9}  {share:>6}  {send:>8.1f}  {receive:>10.1f}")
                rows.append({"bytes": size, "fragments": fragments, "lost": share,
                             "send_us": send, "receive_us": receive})
    record.save(rows)


if __name__ == "__main__":
    main()
