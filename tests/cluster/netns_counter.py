"""
Light aiortc subscribers for tests/cluster/test_netns_cascade.py, run inside a client namespace.

Many subscribers in one process, cheap enough for a 2-core machine: aiortc still
does ICE, DTLS and SRTP, reassembles frames and sends NACKs and PLIs for what it
misses, but frames are **not decoded** (the decoder thread only drains its queue).
Each video receiver records the (extended) sequence number and arrival time of
every RTP packet it gets, RTX repairs unwrapped included::

    python netns_counter.py ROOT API_URL PUBLISHER TRACK_NAME COUNT DIRECTORY

makes COUNT sessions through API_URL, each pulling TRACK_NAME of PUBLISHER, prints
``READY`` once all are connected, then runs until the file DIRECTORY/stop exists;
it reads the kill time (``time.time()``) from DIRECTORY/kill if present, and prints
one JSON line: per receiver ``packets``, ``holes`` (sequence numbers never received
between its first and the last received before the kill, minus 1 s for packets in
flight), ``resumed`` (first arrival after the kill, seconds after it), ``outage``
(the longest silence between two packets from 0.5 s before the kill on), ``last`` (the
last arrival, seconds after the kill) and ``gaps`` (silences over 0.25 s, as [start, end]
in time.time()).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

RECEIVERS: list[dict] = []


def patch_aiortc() -> None:
    """No decoding; record every video packet the NACK generator sees."""
    from aiortc import rtcrtpreceiver

    def drain(loop, input_q, output_q, decode_error) -> None:
        while input_q.get() is not None:
            pass
        asyncio.run_coroutine_threadsafe(output_q.put(None), loop)

    rtcrtpreceiver.decoder_worker = drain
    original = rtcrtpreceiver.NackGenerator.add

    def add(self, packet) -> bool:
        record = self.__dict__.get("_record")
        seq = packet.sequence_number
        if record is None:
            record = self.__dict__["_record"] = {"top16": seq, "top": seq, "seqs": [],
                                                 "times": []}
            RECEIVERS.append(record)
        delta = (seq - record["top16"]) % 65536
        if delta < 32768:                       # newer (or the same): extend the top
            record["top"] += delta
            record["top16"] = seq
            ext = record["top"]
        else:                                   # older: a repair or a reordering
            ext = record["top"] - (65536 - delta)
        record["seqs"].append(ext)
        record["times"].append(time.time())
        return original(self, packet)

    rtcrtpreceiver.NackGenerator.add = add


def summary(record: dict, kill: float | None) -> dict:
    seqs, times = record["seqs"], record["times"]
    cutoff = (kill - 1.0) if kill is not None else times[-1] - 1.0
    before = [s for s, t in zip(seqs, times) if t <= cutoff]
    got = set(seqs)
    missing = [] if not before else [s for s in range(min(before), max(before) + 1)
                                     if s not in got]
    arrival = dict(zip(seqs, times))
    gaps = [[a, b] for a, b in zip(times, times[1:]) if b - a > 0.25]
    after = [t for t in times if kill is not None and t > kill]
    # the longest silence from the last packet before the kill on: how long the feed stopped
    since = [t for t in times if kill is not None and t > kill - 0.5]
    outage = max((b - a for a, b in zip(since, since[1:])), default=None)
    return {"packets": len(seqs), "holes": len(missing), "checked": len(before),
            # where the first holes are: (offset from the first packet, seconds after it)
            "first_holes": [(s - min(before), round(arrival.get(s - 1, 0) - times[0], 3))
                            for s in missing[:10]],
            "resumed": (after[0] - kill) if after else None, "outage": outage,
            "last": (times[-1] - kill) if kill is not None else None, "gaps": gaps}


async def run(url: str, publisher: str, name: str, count: int, directory: Path) -> list[dict]:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from tests.cluster.netns_peer import Api
    from tests.interop.test_sfu_aiortc import api, connected

    server = Api(url)
    pcs = []
    try:
        for _ in range(count):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.append(pc)
            session = (await api(server, "POST", "/sessions/new"))["sessionId"]
            reply = await api(server, "POST", f"/sessions/{session}/tracks/new", {
                "tracks": [{"location": "remote", "sessionId": publisher, "trackName": name}]})
            await pc.setRemoteDescription(RTCSessionDescription(**reply["sessionDescription"]))
            await pc.setLocalDescription(await pc.createAnswer())
            await api(server, "PUT", f"/sessions/{session}/renegotiate", {
                "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
            assert await connected(pc, seconds=10.0) == "connected"
        print("READY", flush=True)
        deadline = time.monotonic() + 120       # bounded, whatever the test does
        while not (directory / "stop").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        for pc in pcs:
            await pc.close()
    kill_file = directory / "kill"
    kill = float(kill_file.read_text()) if kill_file.exists() else None
    return [summary(r, kill) for r in RECEIVERS]


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    url, publisher, name, count, directory = sys.argv[2:7]
    patch_aiortc()
    result = asyncio.run(run(url, publisher, name, int(count), Path(directory)))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
