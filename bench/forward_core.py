"""Pure per-packet cost of the forwarding core, no sockets, no SRTP.

Run: ``.venv/bin/python bench/forward_core.py``.

One published video stream (1100-byte VP8 packets with four one-byte header
extensions) fans out to N subscribers.  Per packet: one
``PublishedStream.receive`` (buffer + key frame check), one
``PublisherFeedback.receive_rtp`` (statistics + NACK generator), then per
subscriber ``LayerSelector.accept`` and ``Forwarder.forward``.  Printed:
ns per packet per subscriber, for forwarding the extension block as is and
for rewriting it to the subscriber's ids (drop mid/rid/transport-cc, append
the subscriber's mid): with a different mid for every subscriber (every plan
distinct), and with the same one (each subscriber's own session numbers its
sections alike, so they share one plan, the usual case); the last column
adds what the server does next per subscriber, ``SrtpSession.protect``
(AES-CM + HMAC-SHA1-80, its own keys each).  A last line times answering
NACKs from the buffer.
"""

from __future__ import annotations

import time

from realtime.media.keyframes import vp8_keyframe
from realtime.media.simulcast import LayerSelector, SimulcastLayers, SimulcastPreferences
from realtime.rtp.extensions import ExtensionUri, HeaderExtension
from realtime.rtp.packet import RtpPacket
from realtime.sfu.feedback import PublisherFeedback
from realtime.sfu.forwarder import ExtensionPlan, Forwarder, PublishedStream
from realtime.srtp import SrtpProtectionProfile, from_dtls_keying

CM80 = SrtpProtectionProfile.SRTP_AES128_CM_HMAC_SHA1_80

PUBLISHER_EXTMAP = {
    1: ExtensionUri.MID,
    2: ExtensionUri.ABS_SEND_TIME,
    3: ExtensionUri.TRANSPORT_WIDE_CC,
    10: ExtensionUri.RTP_STREAM_ID,
}
SUBSCRIBER_EXTMAP = {
    4: ExtensionUri.MID,
    2: ExtensionUri.ABS_SEND_TIME,
    3: ExtensionUri.TRANSPORT_WIDE_CC,
}
PACKETS = 3000


def make_packets() -> list[bytes]:
    """Return PACKETS consecutive 1100-byte VP8 packets, a key frame every 300."""
    out = []
    for i in range(PACKETS):
        payload = (b"\x10\x50" if i % 300 == 0 else b"\x10\x51") + bytes(1098)
        packet = RtpPacket(
            96, (40000 + i) & 0xFFFF, 3000 * (i // 3), 0x1234, marker=i % 3 == 2, payload=payload
        ).with_extensions(
            [
                HeaderExtension(1, b"0"),
                HeaderExtension(2, b"\x01\x02\x03"),
                HeaderExtension(3, b"\x00\x07"),
                HeaderExtension(10, b"f"),
            ]
        )
        out.append(packet.encode())
    return out


def run(subscribers: int, rewrite: bool, packets: list[bytes], shared_mid: bool = False,
        srtp: bool = False) -> float:
    """Return ns per packet per subscriber."""
    stream = PublishedStream(0x1234, 90000, vp8_keyframe, "f")
    upstream = PublisherFeedback(1)
    upstream.add_source(0x1234, 90000)
    layers = SimulcastLayers(["f"])
    legs = []
    for n in range(subscribers):
        plan = (
            ExtensionPlan.between(PUBLISHER_EXTMAP, SUBSCRIBER_EXTMAP,
                                  mid="1" if shared_mid else str(n))
            if rewrite
            else None
        )
        legs.append(
            (
                LayerSelector(layers, SimulcastPreferences("f")),
                Forwarder(
                    0x1000 + n,
                    90000,
                    payload_types={96: 96},
                    extensions=plan,
                    require_keyframe=True,
                ),
                from_dtls_keying(CM80, (bytes(16), n.to_bytes(14, "big")),
                                 (bytes(16), bytes(14))).protect if srtp else None,
            )
        )
    start = time.perf_counter()
    for i, packet in enumerate(packets):
        now = i / 1000
        key = stream.receive(packet)
        upstream.receive_rtp(0x1234, packet[2] << 8 | packet[3], 0, key, now)
        layers.packet_received("f", len(packet), now)
        for selector, forwarder, protect in legs:
            if selector.accept("f", key, now):
                out = forwarder.forward(packet, stream, key, now)
                if protect is not None and out is not None:
                    protect(bytes(out))  # as PublishedTrack.receive_rtp does
    elapsed = time.perf_counter() - start
    return elapsed / (len(packets) * subscribers) * 1e9


def nack_cost(packets: list[bytes]) -> float:
    """Return ns per retransmitted packet (plain resend, no extension rewriting)."""
    stream = PublishedStream(0x1234, 90000, vp8_keyframe)
    forwarder = Forwarder(7, 90000)
    for i, packet in enumerate(packets):
        forwarder.forward(packet, stream, stream.receive(packet), i / 1000)
    wanted = [forwarder.sequence_number - k for k in range(1, 1001, 10)]
    start = time.perf_counter()
    for _ in range(20):
        forwarder.retransmit(wanted, 10.0)
    return (time.perf_counter() - start) / (20 * len(wanted)) * 1e9


def main() -> None:
    """Print ns per packet per subscriber; write bench/results/forward_core.json."""
    from record import Record

    record = Record("forward_core", {"packets": PACKETS, "subscribers": [1, 10, 50, 100],
                                     "best_of": 3})
    data = make_packets()
    results = {"ns_per_packet_per_subscriber": {}}
    with record.capture():
        print(
            f"{PACKETS} packets of {len(data[0])} bytes, 4 one-byte extensions; "
            "ns per packet per subscriber"
        )
        print(f"{'subscribers':>12} {'ext as is':>12} {'ext rewritten':>14} "
              f"{'one plan':>10} {'+ SRTP':>8}")
        for count in (1, 10, 50, 100):
            plain = min(run(count, False, data) for _ in range(3))
            rewritten = min(run(count, True, data) for _ in range(3))
            shared = min(run(count, True, data, shared_mid=True) for _ in range(3))
            srtp = min(run(count, True, data, shared_mid=True, srtp=True) for _ in range(3))
            results["ns_per_packet_per_subscriber"][count] = {
                "ext_as_is": plain, "ext_rewritten": rewritten,
                "ext_rewritten_one_plan": shared, "one_plan_and_srtp": srtp}
            print(f"{count:>12} {plain:>12.0f} {rewritten:>14.0f} {shared:>10.0f} {srtp:>8.0f}")
        results["nack_ns_per_packet"] = nack_cost(data)
        print(f"NACK answer (plain resend): {results['nack_ns_per_packet']:.0f} ns per packet")
    record.save(results)


if __name__ == "__main__":
    main()
