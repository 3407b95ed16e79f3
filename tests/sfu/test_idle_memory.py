"""
Memory of an idle SFU session (issue 14: <= 25 KB each, 10,000 in one process).

An idle session is what an application makes before its browser connects: ``sessions/new``
and ``tracks/new`` with an offer pushing audio and video, through the real API on a
``Clock`` (tests/api/test_sessions.Api).  Python's own allocation tracer counts what 200 of
them hold; bench/idle_sessions.py measures the server's resident set for 10,000.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc

from realtime.media.nack import RetransmissionBuffer
from realtime.storage import StateStore
from tests.api.test_sessions import Api
from tests.sfu.client import audio, push_offer, video

GOAL = 25_000  # bytes per idle session


def test_a_retransmission_buffer_makes_its_rings_on_the_first_store() -> None:
    buffer = RetransmissionBuffer(1024)
    assert sys.getsizeof(buffer._packets) < 100          # no 1024-slot ring yet
    assert buffer.get(0) is None and 0 not in buffer and 65535 not in buffer
    buffer.store(7, b"seven")
    assert buffer.get(7) == b"seven" and 7 in buffer and buffer.get(7 + 1024) is None
    assert len(buffer._packets) == 1024
    buffer.clear()
    assert buffer.get(7) is None


def test_an_idle_session_holds_less_than_25_kb(tmp_path) -> None:
    store = StateStore(tmp_path / "state.sqlite3")
    api = Api(store)
    offer = push_offer(audio("0", 1111), video("1", 2222))

    def idle_session(n: int) -> None:
        session_id = api.session()
        status, body = api.call("POST", f"/sessions/{session_id}/tracks/new", {
            "sessionDescription": {"type": "offer", "sdp": offer},
            "tracks": [{"location": "local", "mid": "0", "trackName": f"mic-{n}"},
                       {"location": "local", "mid": "1", "trackName": f"cam-{n}"}]})
        assert status == 200, body

    try:
        for n in range(20):  # first-use costs (caches, interned strings) before counting
            idle_session(n)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for n in range(200):
                idle_session(100 + n)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(api.board.sessions) == 220
        per_session = held / 200
        print(f"{per_session / 1024:.1f} KiB per idle session")
        assert per_session <= GOAL, per_session
    finally:
        store.close()
