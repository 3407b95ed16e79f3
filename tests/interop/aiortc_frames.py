"""
Counting the frames aiortc decodes, for the interop tests that use it as a subscriber.

Every aiortc test needs the same thing: read each incoming track until it
ends, count the decoded frames under some key (the track's kind, or its
transceiver's mid and kind), and wake the test once the counts are enough.
"""

from __future__ import annotations

import asyncio
from typing import Callable


def by_kind(pc, track) -> str:
    """Count under the track's kind: ``"audio"`` or ``"video"``."""
    return track.kind


def by_mid(pc, track) -> str:
    """Count under ``"<mid>:<kind>"`` (several tracks of one kind on one session)."""
    mid = next(t.mid for t in pc.getTransceivers() if t.receiver.track is track)
    return f"{mid}:{track.kind}"


class FrameCounter:
    """Count frames decoded on every track ``pc`` receives.

    :param pc: an aiortc ``RTCPeerConnection`` (attach before negotiating).
    :param key: how a track's frames are filed (:func:`by_kind`, :func:`by_mid`).
    :param initial: counts present before any track arrives.
    :param wanted: when it returns True for :attr:`frames`, :attr:`enough` is set.
    """

    def __init__(self, pc, key: Callable = by_kind, initial: dict[str, int] | None = None,
                 wanted: Callable[[dict[str, int]], bool] | None = None) -> None:
        self.pc = pc
        self.key = key
        self.frames: dict[str, int] = dict(initial or {})
        self.wanted = wanted
        self.enough = asyncio.Event()
        pc.on("track", self._track)

    def _track(self, track) -> None:
        key = self.key(self.pc, track)
        self.frames.setdefault(key, 0)
        asyncio.ensure_future(self._read(track, key))

    async def _read(self, track, key: str) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                await track.recv()
                self.frames[key] += 1
                if self.wanted is not None and self.wanted(self.frames):
                    self.enough.set()
        except MediaStreamError:
            pass

    async def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for :attr:`enough`; return whether it was reached."""
        try:
            await asyncio.wait_for(self.enough.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True
