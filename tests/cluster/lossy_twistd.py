"""
``twistd`` whose relay link loses some RTP frames in transit: the user-space hook of test_cross_pull.

Run as ``python lossy_twistd.py -n realtime ...`` (arguments as for ``twistd``).
Every ``REALTIME_TEST_RELAY_DROP_EVERY``-th RTP frame this node sends over the
relay link (of payload type ``REALTIME_TEST_RELAY_DROP_PT`` only, when set),
after the first ``REALTIME_TEST_RELAY_DROP_AFTER`` and at most
``REALTIME_TEST_RELAY_DROP_LIMIT`` of them, is sealed (its relay sequence
number is spent, as on a real lossy path) and then not sent; each drop prints
one line ``relay-test-drop STREAM_ID SSRC SEQ`` so the test knows what was
lost.  Retransmissions (``RTP_REPAIR``) are never dropped.

With ``REALTIME_TEST_RELAY_DROP_KIND=datachannel`` it drops ``DATACHANNEL``
frames instead (fragments, their retransmissions and tail probes alike: a
repair may be lost too), the same way, printing ``relay-test-drop-datachannel
SEQUENCE INDEX`` per drop.  Test code only: nothing in ``realtime`` knows about it.
"""

from __future__ import annotations

import os
import sys

from realtime.cluster import relay_port
from realtime.cluster.relay import RelayKind

EVERY = int(os.environ.get("REALTIME_TEST_RELAY_DROP_EVERY", "40"))
AFTER = int(os.environ.get("REALTIME_TEST_RELAY_DROP_AFTER", "100"))
LIMIT = int(os.environ.get("REALTIME_TEST_RELAY_DROP_LIMIT", "12"))
KIND = os.environ.get("REALTIME_TEST_RELAY_DROP_KIND", "rtp")
PT = int(os.environ["REALTIME_TEST_RELAY_DROP_PT"]) if "REALTIME_TEST_RELAY_DROP_PT" in os.environ \
    else None

_send = relay_port.RelayPort.send
_state = {"rtp": 0, "dropped": 0}


def _lose(self, kind, stream_id, payload, destinations) -> bool:
    """Count the packet; every EVERY-th after AFTER (at most LIMIT) is sealed, then lost."""
    _state["rtp"] += 1
    n = _state["rtp"]
    if n > AFTER and n % EVERY == 0 and _state["dropped"] < LIMIT:
        _state["dropped"] += 1
        self.link.send(kind, stream_id, payload, destinations)
        self.link.datagrams_to_send(0.0)        # sealed, then lost on the way
        return True
    return False


def lossy_send(self, kind, stream_id, payload, destinations) -> None:
    if KIND == "datachannel":
        if kind == RelayKind.DATACHANNEL and _lose(self, kind, stream_id, payload, destinations):
            sequence = int.from_bytes(payload[1:5], "big")
            index = int.from_bytes(payload[5:7], "big")
            print(f"relay-test-drop-datachannel {sequence} {index}", flush=True)
            return
    elif kind == RelayKind.RTP and (PT is None or len(payload) > 1 and payload[1] & 0x7F == PT):
        if _lose(self, kind, stream_id, payload, destinations):
            ssrc = int.from_bytes(payload[8:12], "big")
            seq = int.from_bytes(payload[2:4], "big")
            print(f"relay-test-drop {stream_id} {ssrc} {seq}", flush=True)
            return
    _send(self, kind, stream_id, payload, destinations)


relay_port.RelayPort.send = lossy_send  # type: ignore[method-assign]

if __name__ == "__main__":
    from twisted.scripts.twistd import run

    sys.argv[0] = "twistd"
    run()
