"""
Counting the frames aiortc decodes, for the interop tests that use it as a subscriber.

Every aiortc test needs the same thing: read each incoming track until it
ends, count the decoded frames under some key (the track's kind, or its
transceiver's mid and kind), and wake the test once the counts are enough.
:meth:`FrameCounter.rates` then measures what a viewer gets: decoded frames
per second over a window of several seconds, after a warm-up.

Publishers can also make their media identifiable, so a test sees *whose*
media a subscriber decodes, not only that something decodes:
:class:`ColourTrack` sends solid frames of one luma level and
:class:`ToneTrack` a sine tone; :func:`luma` and :func:`tone_frequency`
read them back from decoded frames (VP8 and Opus keep both well within the
margins used here).
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import time
from typing import Callable

MIN_VIDEO_FPS = 20.0   # decoded video frames per second a viewer needs (aiortc sends 30)
MIN_AUDIO_FPS = 45.0   # decoded 20 ms audio frames per second (50 sent; <= 10 % missing)


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
    :param inspect: called as ``inspect(key, frame)`` for every 10th frame of a
        track (and its first), e.g. to read :func:`luma` or :func:`tone_frequency`.
    """

    def __init__(self, pc, key: Callable = by_kind, initial: dict[str, int] | None = None,
                 wanted: Callable[[dict[str, int]], bool] | None = None,
                 inspect: Callable | None = None) -> None:
        self.pc = pc
        self.key = key
        self.frames: dict[str, int] = dict(initial or {})
        self.wanted = wanted
        self.inspect = inspect
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
                frame = await track.recv()
                self.frames[key] += 1
                if self.inspect is not None and self.frames[key] % 10 == 1:
                    self.inspect(key, frame)
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

    async def rates(self, keys, seconds: float = 5.0, warmup: float = 1.0,
                    first_within: float = 10.0) -> dict[str, float]:
        """Decoded frames per second of each of ``keys`` over a ``seconds`` window.

        Waits up to ``first_within`` for a first frame on every key, then
        ``warmup`` seconds (the first key frame, jitter buffers filling), then
        measures.  A key that never decodes has rate 0.
        """
        keys = list(keys)
        deadline = time.monotonic() + first_within
        while time.monotonic() < deadline and not all(self.frames.get(k) for k in keys):
            await asyncio.sleep(0.05)
        await asyncio.sleep(warmup)
        start, before = time.monotonic(), {k: self.frames.get(k, 0) for k in keys}
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - start
        return {k: (self.frames.get(k, 0) - before[k]) / elapsed for k in keys}


def assert_rates(rates: dict[str, float], context=None) -> None:
    """Every video key decodes >= MIN_VIDEO_FPS, every audio key >= MIN_AUDIO_FPS."""
    for key, rate in rates.items():
        floor = MIN_VIDEO_FPS if key.endswith("video") else MIN_AUDIO_FPS
        assert rate >= floor, (key, rate, rates, context)


# -- identifiable media -------------------------------------------------------

def _video_track_base():
    from aiortc.mediastreams import VideoStreamTrack

    return VideoStreamTrack


class ColourTrack:
    """Factory of a video track of solid frames with luma ``y`` (16..235), 30 fps.

    Small frames (160x120) keep VP8 encoding cheap on a loaded 2-core machine.
    """

    def __new__(cls, y: int, width: int = 160, height: int = 120):
        base = _video_track_base()

        class _Colour(base):
            async def recv(self):
                from av import VideoFrame

                pts, time_base = await self.next_timestamp()
                frame = VideoFrame(width, height, "yuv420p")
                for plane, value in zip(frame.planes, (y, 128, 128)):
                    plane.update(bytes([value]) * plane.buffer_size)
                frame.pts, frame.time_base = pts, time_base
                return frame

        return _Colour()


def luma(frame) -> float:
    """Mean luma (Y) of a decoded video frame, 0..255."""
    plane = frame.reformat(format="yuv420p").planes[0]
    data, stride, width = bytes(plane), plane.line_size, plane.width   # rows are padded
    return sum(sum(data[row * stride: row * stride + width]) for row in range(plane.height)) / (
        width * plane.height)


class ToneTrack:
    """Factory of an audio track carrying a sine tone of ``frequency`` Hz (48 kHz mono, 20 ms)."""

    def __new__(cls, frequency: float, amplitude: int = 8000):
        from aiortc.mediastreams import MediaStreamTrack

        class _Tone(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self._start: float | None = None
                self._samples = 0

            async def recv(self):
                from av import AudioFrame

                rate, count = 48000, 960
                if self._start is None:
                    self._start = time.time()
                else:
                    self._samples += count
                    wait = self._start + self._samples / rate - time.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                step = 2 * math.pi * frequency / rate
                samples = array.array("h", (int(amplitude * math.sin(step * (self._samples + i)))
                                            for i in range(count)))
                frame = AudioFrame(format="s16", layout="mono", samples=count)
                frame.planes[0].update(samples.tobytes())
                frame.pts, frame.sample_rate = self._samples, rate
                frame.time_base = fractions.Fraction(1, rate)
                return frame

        return _Tone()


def tone_frequency(frame) -> float:
    """Estimate the tone of a decoded audio frame from its zero crossings (first channel)."""
    assert frame.format.name == "s16", frame.format.name   # packed: channels interleaved
    channels = len(frame.layout.channels)
    samples = array.array("h", bytes(frame.planes[0]))[: frame.samples * channels : channels]
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / frame.sample_rate) if samples else 0.0
