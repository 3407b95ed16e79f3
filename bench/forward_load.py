"""
Load processes of ``bench/forward.py``: the publisher and the subscribers.

Each runs as its own process (``python bench/forward_load.py publish|subscribe
SERVER TARGET_JSON ...``) with one ``selectors`` loop over its
:class:`~forward_peer.Leg` sockets and stdin, and talks to the orchestrator
in JSON lines::

    publisher                                   orchestrator
      signal, connect, stream  ----------------> {"ready": true, "info": {...}}
                               <---------------- "stop"
      write frame log (ts, send time) ---------> {"frames": N}, exit

    subscribers
      signal + connect one by one -------------> {"ready": connected, "failed": [...]}
                               <---------------- "start"   (counters reset)
                               <---------------- "stop"
      per-leg counters and frames -------------> {"legs": [...], "window": s}, exit

Publisher pacing: video frame *k* leaves at ``t0 + ts_k / 90000`` (all its
packets back to back, as an encoder would), audio every 20 ms.  Times are
``time.monotonic()`` (CLOCK_MONOTONIC, shared by all processes on the host).
A subscriber's arrival time is the kernel's receive timestamp of the datagram
(SO_TIMESTAMPNS) brought onto that clock; the time this process read it is
kept beside it.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import struct
import sys
import time
from typing import Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from forward_media import VIDEO_PT, AUDIO_PT, encode_audio, encode_video, frame_intervals  # noqa: E402
from forward_peer import Leg  # noqa: E402
from forward_signal import publisher_media, signalling_for  # noqa: E402

from realtime.dtls.certificate import Certificate  # noqa: E402

CONNECT_TIMEOUT = 15.0

# The kernel's receive time of each datagram (socket(7) SO_TIMESTAMPNS: a struct timespec on
# CLOCK_REALTIME in a SCM_TIMESTAMPNS control message).  It is when the packet reached the
# subscriber's socket, before this process - one Python loop over 100 sockets - gets round to
# reading it: the server's added latency, not the load's own queue.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
ANCILLARY = socket.CMSG_SPACE(TIMESPEC.size)


def read_stamped(sock: socket.socket, now: float) -> Iterator[tuple[bytes, tuple[str, int], float]]:
    """Yield ``(datagram, address, arrival)`` for every datagram waiting on ``sock``.

    ``arrival`` is the kernel's receive time (SO_TIMESTAMPNS, set by :meth:`Loop.add`) on
    ``time.monotonic()``'s clock, or ``now`` (the time of reading) if the kernel gave none.
    """
    realtime_to_monotonic = time.time() - time.monotonic()  # drift over a run: microseconds
    while True:
        try:
            data, ancillary, _, addr = sock.recvmsg(2048, ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        arrived = now
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= TIMESPEC.size:
                seconds, nanoseconds = TIMESPEC.unpack_from(value)
                arrived = seconds + nanoseconds * 1e-9 - realtime_to_monotonic
        yield data, addr, arrived


def say(message: dict) -> None:
    """Write one JSON line to the orchestrator."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Loop:
    """A selectors loop over legs' sockets and stdin commands."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.legs: list[Leg] = []
        self.commands: list[str] = []
        self._stdin = b""
        os.set_blocking(0, False)
        self.selector.register(0, selectors.EVENT_READ, None)

    def add(self, leg: Leg) -> None:
        """Service ``leg``'s socket from now on."""
        self.legs.append(leg)
        leg.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.selector.register(leg.sock, selectors.EVENT_READ, leg)

    def run_once(self, timeout: float, remb: bool = False) -> None:
        """Wait up to ``timeout`` s, drain every readable socket, run timers."""
        for key, _ in self.selector.select(timeout):
            leg = key.data
            if leg is None:
                chunk = os.read(0, 4096)
                self._stdin += chunk if chunk else b"quit\n"
                *lines, self._stdin = self._stdin.split(b"\n")
                self.commands += [line.decode().strip() for line in lines if line.strip()]
                continue
            now = time.monotonic()
            for data, addr, arrived in read_stamped(leg.sock, now):
                leg.receive(data, addr, arrived, now)
        now = time.monotonic()
        for leg in self.legs:
            leg.tick(now, remb)

    def wait_connected(self, leg: Leg, timeout: float = CONNECT_TIMEOUT) -> bool:
        """Run until ``leg`` is connected (True) or failed / timed out (False)."""
        deadline = time.monotonic() + timeout
        while leg.state not in ("connected", "failed") and time.monotonic() < deadline:
            self.run_once(0.02)
        if leg.state != "connected" and not leg.error:
            leg.error = f"not connected after {timeout:.0f} s (state {leg.state})"
        return leg.state == "connected"


def publish(server: str, target: dict, log_path: str) -> None:
    """Connect the publisher, stream until "stop", write the frame log."""
    video = encode_video(4.0)
    audio = encode_audio(1.0)
    loop = Loop()
    leg = Leg(Certificate.generate(time.time()), host=target.get("host", "127.0.0.1"))
    loop.add(leg)
    audio_ssrc, video_ssrc = 0x0A0D1000, 0x0B1DE000
    media = publisher_media(audio_ssrc, video_ssrc)
    info = signalling_for(server, target).publish(leg, media)
    if not loop.wait_connected(leg):
        say({"ready": False, "error": leg.error})
        return
    mids = {m.kind: m for m in leg.remote.media}
    audio_mid = (mids["audio"].mid_ext, b"0") if mids.get("audio") and mids["audio"].mid_ext else None
    video_mid = (mids["video"].mid_ext, b"1") if mids.get("video") and mids["video"].mid_ext else None
    intervals = frame_intervals(36000)
    t0 = time.monotonic() + 0.05
    video_ts = audio_ts = 90000
    frame_index = audio_index = 0
    video_seq, audio_seq = 1000, 5000
    next_video, next_audio = t0, t0
    log: list[tuple[int, float]] = []
    announced = False
    while "stop" not in loop.commands and "quit" not in loop.commands:
        now = time.monotonic()
        while now >= next_video:
            frame = video[frame_index % len(video)]
            log.append((video_ts, time.monotonic()))
            last = len(frame.payloads) - 1
            for i, payload in enumerate(frame.payloads):
                leg.send_rtp(VIDEO_PT, video_seq & 0xFFFF, video_ts, video_ssrc, payload, i == last, video_mid)
                video_seq += 1
            video_ts += intervals[frame_index % len(intervals)]
            frame_index += 1
            next_video = t0 + (video_ts - 90000) / 90000
        while now >= next_audio:
            leg.send_rtp(AUDIO_PT, audio_seq & 0xFFFF, audio_ts, audio_ssrc,
                         audio[audio_index % len(audio)], audio_index == 0, audio_mid)
            audio_seq += 1
            audio_ts += 960
            audio_index += 1
            next_audio = t0 + audio_index * 0.02
        if not announced and frame_index >= 30:  # a second of media: pulls find a live track
            say({"ready": True, "info": info})
            announced = True
        loop.run_once(max(0.0, min(next_video, next_audio) - time.monotonic()))
    with open(log_path, "w") as out:
        json.dump(log, out)
    say({"frames": len(log)})


def subscribe(server: str, target: dict, count: int, info: dict) -> None:
    """Connect ``count`` subscribers, count between "start" and "stop", report."""
    loop = Loop()
    certificate = Certificate.generate(time.time())
    signalling = signalling_for(server, target)
    failed: list[str] = []
    for index in range(count):
        leg = Leg(certificate, verify=index == 0, host=target.get("host", "127.0.0.1"))
        loop.add(leg)
        try:
            signalling.subscribe(leg, info)
        except Exception as error:  # report, keep the others
            leg.state, leg.error = "failed", f"signalling: {error}"
        if not loop.wait_connected(leg):
            failed.append(leg.error)
    connected = [leg for leg in loop.legs if leg.state == "connected"]
    say({"ready": len(connected), "failed": failed[:5], "failures": len(failed)})
    started = stopped = 0.0
    while "quit" not in loop.commands:
        if "start" in loop.commands and not started:
            for leg in connected:
                leg.counting = True
            started = time.monotonic()
        if "stop" in loop.commands and started and not stopped:
            stopped = time.monotonic()
            for leg in connected:
                leg.counting = False
            say({"window": stopped - started, "started": started, "stopped": stopped, "legs": [
                {"packets": leg.packets, "octets": leg.octets, "frames": leg.frames,
                 "auth_failures": leg.auth_failures, "verified": leg.verify} for leg in connected]})
            return
        loop.run_once(0.05, remb=True)


def main(argv: list[str]) -> None:
    """``publish SERVER TARGET LOG`` or ``subscribe SERVER TARGET COUNT INFO``."""
    role, server, target = argv[0], argv[1], json.loads(argv[2])
    if role == "publish":
        publish(server, target, argv[3])
    else:
        subscribe(server, target, int(argv[3]), json.loads(argv[4]))


if __name__ == "__main__":
    main(sys.argv[1:])
