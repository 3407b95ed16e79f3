"""Micro-benchmark of the RTP hot path: prints ns/op (run: .venv/bin/python bench/rtp_codec.py)."""

from __future__ import annotations

import timeit

from realtime.rtcp import decode_compound
from realtime.rtp.extensions import HeaderExtension
from realtime.rtp.packet import (
    RtpPacket,
    find_extension,
    read_header_fields,
    rewrite_extension_ids,
    rewrite_header,
)

PACKET = RtpPacket(
    96, 1234, 90000, 0x11223344, marker=True, payload=bytes(1100)
).with_extensions(
    [HeaderExtension(2, b"\x01\x02\x03"), HeaderExtension(3, b"\x00\x07"), HeaderExtension(4, b"1"),
     HeaderExtension(10, b"f")]
)
DATA = PACKET.encode()
BUF = bytearray(DATA)
RTCP = bytes.fromhex(
    "81c8000c6d2453eade46475b151a005c66a8dd3e0000010d000034f58ef891ed00000000000000f60000007f0000000000000000"
)


RESULTS: dict[str, float] = {}


def measure(label: str, stmt, number: int = 200_000) -> None:
    """Print the best of five runs of ``stmt`` in nanoseconds per call (and keep it)."""
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    RESULTS[label] = best / number * 1e9
    print(f"{label:<40} {best / number * 1e9:8.0f} ns/op")


def main() -> None:
    """Print ns/op per operation; write bench/results/rtp_codec.json."""
    from record import Record

    record = Record("rtp_codec", {"best_of": 5})
    with record.capture():
        print(f"RTP packet of {len(DATA)} bytes, 4 one-byte extensions")
        measure("RtpPacket.decode", lambda: RtpPacket.decode(DATA))
        measure("RtpPacket.encode", PACKET.encode)
        measure("read_header_fields", lambda: read_header_fields(DATA))
        measure("rewrite_header (ssrc, seq, ts)", lambda: rewrite_header(BUF, 1, 2, 3))
        measure("rewrite_header (+ payload type)", lambda: rewrite_header(BUF, 1, 2, 3, 100))
        measure("bytearray copy + rewrite_header", lambda: rewrite_header(bytearray(DATA), 1, 2, 3))
        measure("find_extension (last element, id 10)", lambda: find_extension(DATA, 10))
        measure("find_extension (absent id)", lambda: find_extension(DATA, 7))
        measure("rewrite_extension_ids (2 ids)", lambda: rewrite_extension_ids(BUF, {2: 5, 4: 6}))
        measure("decode_compound (SR + 1 block)", lambda: decode_compound(RTCP), number=50_000)
    record.save({"ns_per_op": RESULTS})


if __name__ == "__main__":
    main()
