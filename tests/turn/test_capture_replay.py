"""
Golden replay: coturn's TURN captures fed into our TurnServer machine.

For every capture in ``../shared/pcaps/generated/turn`` that is not
encrypted (TLS and DTLS are skipped: their STUN is inside records), each
client request must get the same class and error code from our machine as
it got from coturn, and as many datagrams must be relayed each way.  The
one deliberate exception is ``turn-tcp-relay-rfc6062``: RFC 6062 TCP
relaying is not offered, so its Allocate is answered 442 and the rest
follows from there.  ``turn_replay.golden.txt`` beside this file is the full
summary; regenerate it with ``REALTIME_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.turn.replay import replay

GOLDEN = Path(__file__).with_name("turn_replay.golden.txt")
DEVIATING = {"turn-tcp-relay-rfc6062.pcap"}
ENCRYPTED = ("turn-tls-channel.pcap", "turn-dtls-channel.pcap")


def _captures(shared: Path) -> list[Path]:
    folder = shared / "pcaps" / "generated" / "turn"
    return [p for p in sorted(folder.glob("*.pcap")) if p.name not in ENCRYPTED]


@pytest.fixture(scope="module")
def summaries(shared: Path) -> dict[str, list[str]]:
    return {path.name: replay(path) for path in _captures(shared)}


def _agrees(line: str) -> bool:
    if line.startswith("relayed"):
        return True
    coturn = line.split("coturn: ", 1)[1].split(" | ", 1)[0]
    return coturn == line.split("ours: ", 1)[1]


def test_every_request_answered_like_coturn(summaries: dict[str, list[str]]) -> None:
    assert len(summaries) == 14
    for name, lines in summaries.items():
        if name in DEVIATING:
            continue
        disagreements = [line for line in lines if not _agrees(line)]
        assert disagreements == [], name
        relayed = {line.rsplit(": ", 1)[0]: line.rsplit(": ", 1)[1]
                   for line in lines if line.startswith("relayed")}
        assert relayed["relayed coturn to peers"] == relayed["relayed ours to peers"], name
        assert relayed["relayed coturn to clients"] == relayed["relayed ours to clients"], name


def test_rfc6062_allocate_is_refused_with_442(summaries: dict[str, list[str]]) -> None:
    lines = summaries["turn-tcp-relay-rfc6062.pcap"]
    allocates = [line for line in lines if " ALLOCATE request " in line and "success" in line]
    assert allocates and all(line.endswith("ours: error 442") for line in allocates)


def test_golden_summary(summaries: dict[str, list[str]]) -> None:
    text = "".join(f"== {name}\n" + "".join(f"{line}\n" for line in lines)
                   for name, lines in summaries.items())
    if os.environ.get("REALTIME_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
