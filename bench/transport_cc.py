"""Per-packet cost of the SFU's transport-wide congestion control (docs/bandwidth.md).

Run: ``.venv/bin/python bench/transport_cc.py``.

The loop of bench/forward_core.py (one 1100-byte VP8 stream, four one-byte
header extensions, fanned out to N subscribers with the extension block
rewritten) is timed three ways, ns per packet per subscriber:

* ``baseline``: as today without transport-cc (mid appended);
* ``stamped``: the ExtensionPlan also appends the transport-wide placeholder
  and each subscriber's :class:`~realtime.sfu.estimate.SubscriberEstimate`
  stamps it (one hook call, find the element from the block's end, three
  array stores);

then the receive side and the estimate: recording arrivals
(:class:`~realtime.sfu.twcc.TransportFeedbackSender.receive`, per packet a
publisher sends), building one feedback of 100 packets, and one subscriber
feedback of 100 packets through GCC (ns per packet), and a probe burst.

Pacing (realtime/sfu/pacer.py): each subscriber's queued datagram goes out
through the connection's driver (``_Timed.datagrams_to_send`` in
realtime/net/peers.py, on a real :class:`~realtime.peer.connection.PeerConnection`),
ns per packet per subscriber at 100 subscribers, three ways:

* ``no pacer`` (``--no-pacer``, and the code before the pacer);
* ``idle``: the pacer on, its budget never spent (the common case: one
  comparison, one addition, the list returned as it is);
* ``deferring``: the estimate far below the stream, so every packet waits
  in the queue and leaves from the timer (classify, queue, release, and the
  departure time written back into the estimate's ring).

Run ``.venv/bin/python bench/transport_cc.py --out /tmp/transport_cc.json`` to
write elsewhere than bench/results; ``--pacing-only`` times the pacing alone.
"""

from __future__ import annotations

import time

from forward_core import PACKETS, PUBLISHER_EXTMAP, SUBSCRIBER_EXTMAP, make_packets

from realtime.dtls.certificate import Certificate
from realtime.ice.lite import IceLiteAgent
from realtime.media.keyframes import vp8_keyframe
from realtime.net.peers import _Timed
from realtime.peer.connection import PeerConnection
from realtime.sfu.pacer import Pacer
from realtime.media.simulcast import LayerSelector, SimulcastLayers, SimulcastPreferences
from realtime.sfu.estimate import SubscriberEstimate, padding_packet, transport_cc_block
from realtime.sfu.feedback import PublisherFeedback
from realtime.sfu.forwarder import ExtensionPlan, Forwarder, PublishedStream
from realtime.sfu.twcc import TransportFeedbackSender

SUBSCRIBERS = (1, 10, 100)


def run(subscribers: int, stamped: bool, packets: list[bytes]) -> float:
    """Return ns per packet per subscriber (bench/forward_core.py's loop)."""
    stream = PublishedStream(0x1234, 90000, vp8_keyframe, "f")
    upstream = PublisherFeedback(1)
    upstream.add_source(0x1234, 90000)
    layers = SimulcastLayers(["f"])
    legs = []
    for n in range(subscribers):
        estimate = SubscriberEstimate() if stamped else None
        plan = ExtensionPlan.between(PUBLISHER_EXTMAP, SUBSCRIBER_EXTMAP, mid=str(n),
                                     transport_cc=3 if stamped else None)
        legs.append((LayerSelector(layers, SimulcastPreferences("f")),
                     Forwarder(0x1000 + n, 90000, payload_types={96: 96}, extensions=plan,
                               require_keyframe=True,
                               stamp=None if estimate is None else estimate.stamp)))
    start = time.perf_counter()
    for i, packet in enumerate(packets):
        now = i / 1000
        key = stream.receive(packet)
        upstream.receive_rtp(0x1234, packet[2] << 8 | packet[3], 0, key, now)
        layers.packet_received("f", len(packet), now)
        for selector, forwarder in legs:
            if selector.accept("f", key, now):
                forwarder.forward(packet, stream, key, now)
    elapsed = time.perf_counter() - start
    return elapsed / (len(packets) * subscribers) * 1e9


def arrivals_cost() -> tuple[float, float]:
    """Return (ns per arrival recorded, ns per packet reported) for the publisher side."""
    twcc = TransportFeedbackSender(1)
    start = time.perf_counter()
    for i in range(100_000):
        twcc.receive(i & 0xFFFF, i * 0.001)
        if i % 100 == 99:
            twcc.flush()
    total = time.perf_counter() - start
    twcc = TransportFeedbackSender(1)
    for i in range(100):
        twcc.receive(i, i * 0.001)
    start = time.perf_counter()
    for round_ in range(1000):
        twcc._arrivals = {round_ * 100 + i: int((round_ * 0.1 + i * 0.001) * 1e6)
                          for i in range(100)}
        twcc._highest = round_ * 100 + 99
        twcc._next_base = round_ * 100
        twcc.flush()
    build = (time.perf_counter() - start) / 100_000 * 1e9
    return total / 100_000 * 1e9, build


def estimate_cost() -> float:
    """Return ns per packet of a subscriber's feedback through GCC (100 packets a feedback)."""
    estimate = SubscriberEstimate()
    block = transport_cc_block(3)
    browser = TransportFeedbackSender(1)
    elapsed = 0.0
    for i in range(20_000):
        packet = padding_packet(1, 97, i, 0, block, 240)
        estimate.stamp(packet, i * 0.001)
        browser.receive(i & 0xFFFF, i * 0.001 + 0.02)
        if i % 100 == 99:
            (feedback,) = browser.flush()
            start = time.perf_counter()
            estimate.receive_feedback(feedback, i * 0.001)
            elapsed += time.perf_counter() - start
    assert estimate.feedback_received == 200
    return elapsed / 20_000 * 1e9


class _Host:
    """What ``_Timed`` needs of a PeerHost: the set a pacer that starts a queue joins."""

    def __init__(self) -> None:
        self._waking: set = set()


class _Subscriber:
    """What ``_Timed`` needs of a session: its connection and its pacer."""

    def __init__(self, connection: PeerConnection, pacer: Pacer | None) -> None:
        self.connection = connection
        self.pacer = pacer


def pacing_cost(subscribers: int, mode: str, packets: list[bytes]) -> float:
    """Return ns per packet per subscriber from the connection's queue to the socket's
    list (``mode``: "none", "idle" or "deferring"; see the module docstring)."""
    certificate = Certificate.generate(0.0)
    host = _Host()
    legs = []
    for n in range(subscribers):
        ice = IceLiteAgent(f"u{n:03}", "p" * 22, tiebreaker=n)
        connection = PeerConnection(ice, certificate, "server", [("sha-256", "00" * 32)])
        estimate = SubscriberEstimate()
        pacer = None
        if mode != "none":
            pacer = Pacer(estimate.departed)
            pacer.video = frozenset({0x1234})
            # 20 Mbit/s: never spent by this 1100-byte stream at 1000 packets/s (8.8 Mbit/s);
            # 300 kbit/s: always spent (every packet waits)
            pacer.set_rate(20_000_000 if mode == "idle" else 300_000)
        legs.append((connection, _Timed(host, _Subscriber(connection, pacer)), pacer))
    addr = ("127.0.0.1", 9)
    sent = 0
    start = time.perf_counter()
    for i, packet in enumerate(packets):
        now = i / 1000
        for connection, timed, pacer in legs:
            connection._outgoing.append((packet, addr))  # what the send path does
            sent += len(timed.datagrams_to_send(now))
            if pacer is not None and mode == "deferring":
                timer = pacer.get_timer()
                if timer is not None and timer <= now:  # the connection's timer fires
                    sent += len(timed.datagrams_to_send(now))
    elapsed = time.perf_counter() - start
    if mode == "deferring":
        assert all(p.deferred > len(packets) // 2 for _, _, p in legs if p is not None)
    assert sent >= len(packets) * subscribers * (0.5 if mode == "deferring" else 1), mode
    return elapsed / (len(packets) * subscribers) * 1e9


def pacing_rows(data: list[bytes], results: dict) -> None:
    """Time and print the pacing rows (100 subscribers)."""
    rows = {mode: min(pacing_cost(100, mode, data) for _ in range(3))
            for mode in ("none", "idle", "deferring")}
    results["pacing_ns_per_packet_per_subscriber_100"] = rows
    print("pacing at 100 subscribers, ns per packet per subscriber (queue -> socket list):")
    print(f"  no pacer {rows['none']:.0f}, idle {rows['idle']:.0f} "
          f"(+{rows['idle'] - rows['none']:.0f}), deferring {rows['deferring']:.0f} "
          f"(+{rows['deferring'] - rows['none']:.0f})")


def main(argv: list[str]) -> None:
    """Print the figures; write bench/results/transport_cc.json (or ``--out PATH``)."""
    from record import Record

    out = argv[argv.index("--out") + 1] if "--out" in argv else None
    record = Record("transport_cc", {"packets": PACKETS, "subscribers": list(SUBSCRIBERS),
                                     "best_of": 3}, path=out)
    data = make_packets()
    results: dict = {"ns_per_packet_per_subscriber": {}}
    if "--pacing-only" in argv:
        with record.capture():
            pacing_rows(data, results)
        record.save(results)
        return
    with record.capture():
        print(f"{PACKETS} packets of {len(data[0])} bytes; ns per packet per subscriber")
        print(f"{'subscribers':>12} {'baseline':>10} {'stamped':>10} {'added':>8}")
        for count in SUBSCRIBERS:
            base = min(run(count, False, data) for _ in range(3))
            stamped = min(run(count, True, data) for _ in range(3))
            results["ns_per_packet_per_subscriber"][count] = {"baseline": base,
                                                              "stamped": stamped}
            print(f"{count:>12} {base:>10.0f} {stamped:>10.0f} {stamped - base:>8.0f}")
        receive, build = arrivals_cost()
        gcc = estimate_cost()
        results.update({"arrival_ns": receive, "feedback_build_ns_per_packet": build,
                        "estimate_ns_per_packet": gcc})
        print(f"publisher side: record an arrival {receive:.0f} ns (with reporting), "
              f"build feedback {build:.0f} ns per packet reported")
        print(f"subscriber side: feedback through GCC {gcc:.0f} ns per packet reported")
        pacing_rows(data, results)
    record.save(results)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
