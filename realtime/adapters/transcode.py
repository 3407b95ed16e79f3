"""
The adapters' codecs, through PyAV (FFmpeg's libavcodec): Opus <-> PCM, VP8/H.264 -> JPEG.

What goes over an adapter's WebSocket (Cloudflare's WebSocket adapter
documentation: "48 kHz stereo PCM"; docs/api.md states the layout)::

    PCM   signed 16-bit little-endian samples, 48,000 per second per channel,
          2 channels interleaved: L0 R0 L1 R1 ... (4 octets per sample frame);
          one 20 ms Opus packet decodes to 960 sample frames = 3840 octets
    JPEG  one baseline JFIF image per message (FFmpeg's ``mjpeg`` encoder,
          full-range YUV 4:2:0), at the decoded picture's size

Each class here holds one codec's state and is used by one thread at a time:
the adapter runs them on a worker thread (:mod:`realtime.api.adapter_links`),
never on the reactor.  A unit the codec rejects is counted in ``errors``,
never raised: what comes from a publisher is hostile input.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

__all__ = ["OpusToPcm", "PcmToOpus", "VideoToJpeg", "SAMPLE_RATE", "CHANNELS",
           "FRAME_SAMPLES", "FRAME_OCTETS"]

SAMPLE_RATE = 48000
CHANNELS = 2
#: sample frames in one 20 ms Opus frame (RFC 7587 §4.2: 48 kHz RTP clock)
FRAME_SAMPLES = 960
#: octets of one 20 ms frame of PCM: 960 x 2 channels x 2 octets
FRAME_OCTETS = FRAME_SAMPLES * CHANNELS * 2


class OpusToPcm:
    """Decode Opus packets (RFC 6716) to 48 kHz stereo s16 interleaved PCM."""

    def __init__(self) -> None:
        self.decoder = av.CodecContext.create("opus", "r")
        self.decoder.sample_rate = SAMPLE_RATE
        self.decoder.layout = "stereo"
        self.resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
        self.errors = 0

    def decode(self, packet: bytes) -> bytes:
        """Return the PCM of one Opus packet (b"" when it does not decode)."""
        out = bytearray()
        try:
            for frame in self.decoder.decode(av.Packet(packet)):
                for pcm in self.resampler.resample(frame):
                    out += bytes(pcm.planes[0])[:pcm.samples * CHANNELS * 2]
        except (av.FFmpegError, ValueError):
            self.errors += 1
            return b""
        return bytes(out)


class PcmToOpus:
    """Encode 20 ms frames of 48 kHz stereo s16 interleaved PCM to Opus packets.

    :param bit_rate: the encoder's target in bits per second.
    """

    def __init__(self, bit_rate: int = 64000) -> None:
        encoder = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = SAMPLE_RATE
        encoder.layout = "stereo"
        encoder.format = "s16"
        encoder.bit_rate = bit_rate
        encoder.time_base = Fraction(1, SAMPLE_RATE)
        self.encoder = encoder
        self.frames = 0
        self.errors = 0

    def encode(self, pcm: bytes) -> list[bytes]:
        """Return the Opus packets the encoder gives for one :data:`FRAME_OCTETS` frame."""
        if len(pcm) != FRAME_OCTETS:
            raise ValueError(f"a frame is {FRAME_OCTETS} octets, not {len(pcm)}")
        frame = av.AudioFrame(format="s16", layout="stereo", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm)
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = Fraction(1, SAMPLE_RATE)
        frame.pts = self.frames * FRAME_SAMPLES
        self.frames += 1
        try:
            return [bytes(packet) for packet in self.encoder.encode(frame)]
        except (av.FFmpegError, ValueError):
            self.errors += 1
            return []


class VideoToJpeg:
    """Decode VP8 or H.264 frames; encode the pictures asked for as JPEG.

    :param codec: ``vp8`` or ``h264`` (the publisher's negotiated codec).
    """

    def __init__(self, codec: str) -> None:
        self.decoder: Any = av.CodecContext.create(
            {"vp8": "vp8", "h264": "h264"}[codec.lower()], "r")
        self._encoder: Any = None
        self._size: tuple[int, int] = (0, 0)
        self.errors = 0
        self.decoded = 0

    def decode(self, frame: bytes, want_jpeg: bool) -> bytes | None:
        """Decode one frame; return it as JPEG when ``want_jpeg`` (and it decoded)."""
        try:
            pictures = self.decoder.decode(av.Packet(frame))
        except (av.FFmpegError, ValueError):
            self.errors += 1
            return None
        self.decoded += len(pictures)
        if not pictures or not want_jpeg:
            return None
        return self.jpeg(pictures[-1])

    def jpeg(self, picture: av.VideoFrame) -> bytes | None:
        """Encode one decoded picture as a JPEG image."""
        size = (picture.width, picture.height)
        if self._encoder is None or size != self._size:
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height = size
            encoder.pix_fmt = "yuvj420p"
            encoder.time_base = Fraction(1, 90000)
            self._encoder, self._size = encoder, size
        try:
            packets = self._encoder.encode(picture.reformat(format="yuvj420p"))
        except (av.FFmpegError, ValueError):
            self.errors += 1
            self._encoder = None
            return None
        return b"".join(bytes(p) for p in packets) or None
